import { describe, expect, it } from 'vitest';
import { normalizeMessage } from '../src/collect/message.js';
import { TallyError } from '../src/errors.js';

const facts = { receivedAt: Date.parse('2026-01-01T12:00:10.000Z'), ip: '203.0.113.9', userAgent: 'Mozilla/5.0' };

describe('normalizeMessage', () => {
  it("corrects the sender's clock skew with sentAt, as Segment does", () => {
    // The device clock is 1 h behind: it stamped the event 5 s before it sent it.
    const m = normalizeMessage(
      { type: 'page', userId: 'u', timestamp: '2026-01-01T11:00:00.000Z', sentAt: '2026-01-01T11:00:05.000Z' },
      [],
      facts,
    );
    expect(m.timestamp).toBe('2026-01-01T12:00:05.000Z');
    expect(m.receivedAt).toBe('2026-01-01T12:00:10.000Z');
  });

  it('takes sentAt from the batch when the message has none (analytics-node)', () => {
    const m = normalizeMessage({ type: 'page', userId: 'u', timestamp: '2026-01-01T11:59:00.000Z' }, ['batch', 0], facts, {
      sentAt: '2026-01-01T11:59:30.000Z',
    });
    expect(m.timestamp).toBe('2026-01-01T11:59:40.000Z');
  });

  it('keeps the timestamp without sentAt, and uses the arrival time without either', () => {
    expect(normalizeMessage({ type: 'page', userId: 'u', timestamp: '2025-12-31T00:00:00Z' }, [], facts).timestamp).toBe(
      '2025-12-31T00:00:00.000Z',
    );
    expect(normalizeMessage({ type: 'page', userId: 'u' }, [], facts).timestamp).toBe('2026-01-01T12:00:10.000Z');
  });

  it('fills context.ip and userAgent from the request, generates a messageId, and stringifies numeric ids', () => {
    const m = normalizeMessage({ type: 'track', userId: 42, event: 'E' }, [], facts, { context: { locale: 'fr' } });
    expect(m).toMatchObject({
      userId: '42',
      messageId: expect.stringMatching(/^api-/),
      context: { ip: facts.ip, userAgent: 'Mozilla/5.0', locale: 'fr' },
    });
    const own = normalizeMessage({ type: 'page', anonymousId: 'a', context: { ip: '198.51.100.1' } }, [], facts);
    expect(own.context['ip']).toBe('198.51.100.1');
    expect(own.userId).toBeUndefined();
  });

  it('names the bad field of a bad sentAt', () => {
    const call = () => normalizeMessage({ type: 'page', userId: 'u', sentAt: 'soon' }, ['batch', 3], facts);
    expect(call).toThrow(TallyError);
    expect(call).toThrow(expect.objectContaining({ code: 'invalid_event', path: '/batch/3/sentAt' }));
  });
});
