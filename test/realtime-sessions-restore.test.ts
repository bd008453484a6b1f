import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EventRow } from '../src/events/event-row.js';
import { restoreSessions } from '../src/process/restore-sessions.js';
import { createEmbeddedSessions } from '../src/storage/embedded/sessions.js';
import { createKeys } from '../src/storage/keys.js';
import {
  type AssignedSession,
  SESSION_STATE_TTL_SECONDS,
  type SessionFields,
  type Sessions,
  type SessionVisit,
} from '../src/storage/sessions.js';
import { eventRow, openTestEventStore } from './event-store-fixture.js';
import { propertyParams, uniqueName } from './helpers.js';

// The embedded session state rebuilt from the event store (src/process/restore-sessions.ts) goes
// on as the state of a process that never stopped: the same sessions for every later event, for
// redelivered events the store holds, and for a lost batch (assigned, never stored) delivered
// again. Real DuckDB over real Parquet files; the sessions' clock is injected.

const MIN = 60_000;
const MIDNIGHT = Date.UTC(2026, 11, 4);
const NOW = MIDNIGHT + 3 * 60 * MIN;
const TTL_MS = SESSION_STATE_TTL_SECONDS * 1000;

const fields = (entry: string, source = 'Direct'): SessionFields => ({
  entry_page: entry,
  source,
  referrer: null,
  referrer_host: null,
  utm_source: source === 'Direct' ? null : source,
  utm_medium: null,
  utm_campaign: null,
  utm_term: null,
  utm_content: null,
});

const rowsOf = (siteId: string, visits: readonly SessionVisit[], got: readonly AssignedSession[]): EventRow[] =>
  visits.map((v, i) => {
    const a = got[i] as AssignedSession;
    return eventRow({ site_id: siteId, message_id: v.id, ts: v.at, visitor: v.visitor, session: a.session, ...a.fields });
  });

describe('embedded sessions restored from the event store', () => {
  let store: Awaited<ReturnType<typeof openTestEventStore>>;
  beforeAll(async () => {
    store = await openTestEventStore();
  });
  afterAll(() => store.close());

  it('go on as if the process had never stopped', async () => {
    type Event = { visitor: string; minute: number; off: number; entry: string; source: string };
    const event: fc.Arbitrary<Event> = fc.record({
      visitor: fc.constantFrom('v1', 'v2', 'ü:{x}'),
      minute: fc.integer({ min: -120, max: 120 }),
      off: fc.constantFrom(0, 0, 1, -1),
      entry: fc.constantFrom('/', '/a', '/é'),
      source: fc.constantFrom('Direct', 'news'),
    });
    const scenario = fc.record({
      batches: fc.array(fc.array(event, { minLength: 1, maxLength: 6 }), { minLength: 1, maxLength: 10 }),
      restartAt: fc.nat(10),
      lastLost: fc.boolean(),
      redeliver: fc.nat(10),
    });
    await fc.assert(
      fc.asyncProperty(scenario, async ({ batches, restartAt, lastLost, redeliver }) => {
        const siteId = uniqueName('site');
        const keys = createKeys(uniqueName('sess'));
        let n = 0;
        // In time order within a batch, as the processor's event rows assign them.
        const visitsOf = (events: Event[]): SessionVisit[] =>
          events
            .map((e) => ({ visitor: e.visitor, at: MIDNIGHT + e.minute * MIN + e.off, id: `e${n++}`, fields: fields(e.entry, e.source) }))
            .sort((x, y) => x.at - y.at);
        const all = batches.map(visitsOf);
        const cut = Math.min(restartAt, all.length);
        const never = createEmbeddedSessions(keys, () => NOW);
        const before: { visits: SessionVisit[]; got: AssignedSession[] }[] = [];
        for (const visits of all.slice(0, cut)) before.push({ visits, got: await never.assign(siteId, visits) });
        // A lost batch was assigned but never reached the store (nor was it acknowledged).
        const lost = lastLost ? before.pop() : undefined;
        const rows = before.flatMap((b) => rowsOf(siteId, b.visits, b.got));
        if (rows.length > 0) await store.append(siteId, rows, { dirty: false });

        const restarted = createEmbeddedSessions(keys, () => NOW);
        await restoreSessions({ events: store, sessions: restarted }, siteId, NOW);
        if (lost) expect(await restarted.assign(siteId, lost.visits)).toEqual(lost.got);
        const stored = before[redeliver % Math.max(1, before.length)];
        if (stored) expect(await restarted.assign(siteId, stored.visits)).toEqual(stored.got);
        for (const visits of all.slice(cut)) expect(await restarted.assign(siteId, visits)).toEqual(await never.assign(siteId, visits));
      }),
      propertyParams(40, 100_000),
    );
  }, 120_000);

  it('restores a visitor for the state TTL after their last event, and not one whose state expired', async () => {
    const siteId = uniqueName('site');
    const keys = createKeys(uniqueName('sess'));
    const visit = (visitor: string, at: number, id: string): SessionVisit => ({ visitor, at, id, fields: fields(`/${id}`) });
    const lastKept = NOW - TTL_MS + MIN;
    const old = [visit('kept', lastKept - 10 * MIN, 'k1'), visit('kept', lastKept, 'k2'), visit('gone', NOW - TTL_MS - MIN, 'g1')];
    const first = createEmbeddedSessions(keys, () => NOW - TTL_MS);
    await store.append(siteId, rowsOf(siteId, old, await first.assign(siteId, old)), { dirty: false });

    const restart = async (clock: () => number) => {
      const sessions = createEmbeddedSessions(keys, clock);
      return { sessions, visitors: await restoreSessions({ events: store, sessions }, siteId, NOW) };
    };
    const ids = async (sessions: Sessions, visits: SessionVisit[]) => (await sessions.assign(siteId, visits)).map((a) => a.session);
    const atNow = await restart(() => NOW);
    expect(atNow.visitors).toBe(1);
    // 'kept' is known for a TTL after its last event: an event 20 minutes after it joins its session.
    expect(await ids(atNow.sessions, [visit('kept', lastKept + 20 * MIN, 'k3'), visit('gone', NOW - TTL_MS + 10 * MIN, 'g2')])).toEqual([
      'k1',
      'g2',
    ]);
    // Not a moment longer: then the same event starts a session.
    let clock = NOW;
    const later = await restart(() => clock);
    clock = lastKept + TTL_MS;
    expect(await ids(later.sessions, [visit('kept', lastKept + 20 * MIN, 'k3')])).toEqual(['k3']);
  });
});
