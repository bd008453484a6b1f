import { afterEach, describe, expect, it } from 'vitest';
import { createIngest, MAX_ENTRY_BYTES, MAX_ENTRY_MESSAGES, type StreamPayload } from '../src/collect/ingest.js';
import type { CollectedMessage } from '../src/collect/message.js';
import { TallyError } from '../src/errors.js';
import { openTestContext, type TestContext } from './helpers.js';

// The stream append behind every collect route: requests of a site arriving together share one
// entry, each request stays whole, and a refused append refuses every request waiting on it.

const message = (userId: string, extra = ''): CollectedMessage => ({
  type: 'page',
  messageId: `m-${userId}`,
  userId,
  properties: extra ? { extra } : {},
  traits: {},
  context: {},
  timestamp: '2026-01-01T00:00:00.000Z',
  receivedAt: '2026-01-01T00:00:00.000Z',
});

describe.each(['external', 'embedded'] as const)('ingest (%s)', (mode) => {
  let t: TestContext;
  afterEach(() => t.close());

  async function entries(): Promise<StreamPayload[]> {
    const { realtime, keys } = t.ctx;
    const reader = await realtime.queue.openConsumer(keys.stream(0), keys.streamGroup, 'test');
    try {
      return (await reader.read(100, 0)).map((e) => JSON.parse(e.payload) as StreamPayload);
    } finally {
      await reader.close();
    }
  }

  it('puts the requests of one turn into one entry per site, each request whole', async () => {
    t = await openTestContext(mode, { TALLY_STREAM_SHARDS: '1' });
    const accepted: number[] = [];
    const ingest = createIngest(t.ctx, (n) => accepted.push(n));
    await Promise.all([ingest('site_a', [message('1'), message('2')]), ingest('site_b', [message('3')]), ingest('site_a', [message('4')])]);
    const stored = await entries();
    expect(stored.map((e) => [e.s, e.m.map((m) => m.userId)])).toEqual([
      ['site_a', ['1', '2', '4']],
      ['site_b', ['3']],
    ]);
    expect(stored[0]?.m[0]).toEqual(message('1'));
    expect(accepted.sort()).toEqual([1, 1, 2]);
  });

  it('starts a new entry rather than let one grow past MAX_ENTRY_BYTES', async () => {
    t = await openTestContext(mode, { TALLY_STREAM_SHARDS: '1' });
    const ingest = createIngest(t.ctx);
    const big = 'x'.repeat(MAX_ENTRY_BYTES * 0.6);
    await Promise.all([ingest('site_a', [message('1', big)]), ingest('site_a', [message('2', big)]), ingest('site_a', [message('3')])]);
    const stored = await entries();
    expect(stored.map((e) => e.m.map((m) => m.userId))).toEqual([['1'], ['2', '3']]);
  });

  it('starts a new entry rather than let one hold more than MAX_ENTRY_MESSAGES', async () => {
    t = await openTestContext(mode, { TALLY_STREAM_SHARDS: '1' });
    const ingest = createIngest(t.ctx);
    const many = (from: number, n: number) => Array.from({ length: n }, (_, i) => message(String(from + i)));
    await Promise.all([
      ingest('site_a', many(0, MAX_ENTRY_MESSAGES - 1)),
      ingest('site_a', many(1000, 2)),
      ingest('site_a', many(2000, 1)),
    ]);
    const stored = await entries();
    expect(stored.map((e) => e.m.length)).toEqual([MAX_ENTRY_MESSAGES - 1, 3]);
  });

  it('refuses every request of an entry the full backlog refused, and stores none of them', async () => {
    t = await openTestContext(mode, { TALLY_STREAM_SHARDS: '1', TALLY_STREAM_MAX_BACKLOG: '100' });
    const ingest = createIngest(t.ctx);
    for (let i = 0; i < 100; i++) await ingest('site_a', [message(String(i))]);
    const results = await Promise.allSettled([ingest('site_a', [message('a')]), ingest('site_a', [message('b')])]);
    for (const result of results) {
      expect(result.status).toBe('rejected');
      const reason = (result as PromiseRejectedResult).reason as TallyError;
      expect(reason).toBeInstanceOf(TallyError);
      expect(reason.code).toBe('overloaded');
    }
    expect(await t.ctx.realtime.queue.length(t.ctx.keys.stream(0))).toBe(100);
  });
});
