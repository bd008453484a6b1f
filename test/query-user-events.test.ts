import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EventRow } from '../src/events/event-row.js';
import { decodeUserEventsCursor, encodeUserEventsCursor, queryUserEvents } from '../src/query/user-events.js';
import { openTestEventStore, type TestEventStore } from './event-files.js';
import { eventRow } from './event-store-fixture.js';
import { propertyParams, uniqueName } from './helpers.js';

// A user's events: the cursor codec, and pages against a plain sort of the stored events.

describe('the user-events cursor', () => {
  it('round-trips every position (fixed seed)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 8.64e12 }), fc.string({ minLength: 1, maxLength: 256, unit: 'grapheme' }), (ts, messageId) => {
        expect(decodeUserEventsCursor(encodeUserEventsCursor({ ts, messageId }))).toEqual({ ts, messageId });
      }),
      propertyParams(500, 20_000),
    );
  });

  it('refuses what it did not make', () => {
    for (const text of [
      '',
      'x',
      Buffer.from('12:').toString('base64url'),
      Buffer.from('-1:m').toString('base64url'),
      `${encodeUserEventsCursor({ ts: 5, messageId: 'm' })}=`,
    ]) {
      expect(decodeUserEventsCursor(text)).toBeNull();
    }
  });
});

describe('pages of a user’s events', () => {
  let store: TestEventStore;
  beforeAll(async () => {
    store = await openTestEventStore();
  });
  afterAll(() => store.close());

  it('list every event of the user once, newest first, whatever the page size (fixed seed)', async () => {
    const T0 = Date.UTC(2026, 4, 1);
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ at: fc.integer({ min: 0, max: 6 }), mine: fc.boolean(), named: fc.boolean(), id: fc.nat(99) }), {
          maxLength: 40,
        }),
        fc.integer({ min: 1, max: 7 }),
        fc.boolean(),
        async (drawn, limit, onlyNamed) => {
          const site = uniqueName('ue');
          const rows: EventRow[] = drawn.map((d, i) =>
            eventRow({
              site_id: site,
              message_id: `m${d.id}-${i}`,
              // Spread over three UTC days, with many events in the same millisecond.
              ts: T0 + (d.at % 3) * 86_400_000 + d.at,
              visitor: d.mine ? 'me' : 'other',
              user_id: d.mine ? 'me' : 'other',
              ...(d.named ? { type: 'track', kind: 'event', name: 'Clicked' } : {}),
            }),
          );
          if (rows.length > 0) await store.write(rows);
          const expected = rows
            .filter((r) => r.user_id === 'me' && (!onlyNamed || r.name === 'Clicked'))
            .sort((a, b) => b.ts - a.ts || (a.message_id < b.message_id ? 1 : -1))
            .map((r) => r.message_id);
          const seen: string[] = [];
          let after: { ts: number; messageId: string } | undefined;
          for (let page = 0; page <= expected.length; page++) {
            const answer = await queryUserEvents(store.events, {
              siteId: site,
              userId: 'me',
              fromMs: 0,
              toMs: T0 + 10 * 86_400_000,
              limit,
              ...(onlyNamed ? { event: 'Clicked' } : {}),
              ...(after ? { after } : {}),
            });
            seen.push(...answer.items.map((i) => i.messageId));
            if (answer.nextCursor === null) break;
            after = decodeUserEventsCursor(answer.nextCursor) ?? undefined;
          }
          expect(seen).toEqual(expected);
        },
      ),
      propertyParams(60, 100_000),
    );
  }, 120_000);
});
