import { Redis } from 'ioredis';
import { beforeEach, describe, expect, it } from 'vitest';
import { createKeys, type Keys } from '../src/storage/keys.js';
import type { Realtime } from '../src/storage/realtime.js';
import { createRedisRealtime } from '../src/storage/redis/index.js';
import {
  MAX_SESSIONS_PER_VISITOR,
  SESSION_GAP_MS,
  SESSION_STATE_TTL_SECONDS,
  type SessionFields,
  type SessionVisit,
} from '../src/storage/sessions.js';
import { REDIS_URL, uniqueName } from './helpers.js';
import { realtimeLayers } from './realtime-layers.js';

// The sessions seam (src/storage/sessions.ts), for every implementation: which session each
// event joins, which fields it carries, and that assigning again changes nothing.

const T0 = Date.UTC(2026, 11, 3, 23, 40); // twenty minutes before midnight
const MIN = 60_000;

const fields = (entry: string, extra: Partial<SessionFields> = {}): SessionFields => ({
  entry_page: entry,
  source: 'Direct',
  referrer: null,
  referrer_host: null,
  utm_source: null,
  utm_medium: null,
  utm_campaign: null,
  utm_term: null,
  utm_content: null,
  ...extra,
});

/** A visit whose session id and entry page are named after the event (`e1` starts session `s-e1`). */
const visit = (event: string, at: number, visitor = 'v1', extra: Partial<SessionFields> = {}): SessionVisit => ({
  visitor,
  at,
  id: `s-${event}`,
  fields: fields(`/${event}`, extra),
});

const layers = realtimeLayers();

describe.each(layers)('sessions: %s', (name, open) => {
  let rt: Realtime;
  let keys: Keys;
  const ids = async (visits: SessionVisit[], site = 'site') => (await rt.sessions.assign(site, visits)).map((a) => a.session);
  beforeEach(async () => {
    keys = createKeys(uniqueName('sess'));
    rt = await open(keys);
  });

  it('keeps events at most 30 minutes apart in one session, across midnight, and starts another after a longer gap', async () => {
    expect(
      await ids([
        visit('e1', T0),
        visit('e2', T0 + 20 * MIN), // the next day, UTC
        visit('e3', T0 + 20 * MIN + SESSION_GAP_MS), // exactly the gap: same session
        visit('e4', T0 + 20 * MIN + 2 * SESSION_GAP_MS + 1), // a millisecond more: a new one
      ]),
    ).toEqual(['s-e1', 's-e1', 's-e1', 's-e4']);
    // Later calls see the state the earlier ones left.
    expect(await ids([visit('e5', T0 + 20 * MIN + 2 * SESSION_GAP_MS + 5 * MIN)])).toEqual(['s-e4']);
  });

  it("gives every event of a session its first event's fields", async () => {
    const google = { source: 'google.com', referrer: 'https://google.com/', referrer_host: 'google.com' };
    const got = await rt.sessions.assign('site', [
      visit('e1', T0, 'v1', google),
      visit('e2', T0 + MIN, 'v1', { utm_source: 'news', source: 'news' }),
    ]);
    expect(got).toEqual([
      { session: 's-e1', fields: fields('/e1', google) },
      { session: 's-e1', fields: fields('/e1', google) },
    ]);
    const later = await rt.sessions.assign('site', [visit('e3', T0 + 2 * MIN)]);
    expect(later).toEqual([{ session: 's-e1', fields: fields('/e1', google) }]);
  });

  it('lets an event arriving late join the session it falls into, which keeps its fields', async () => {
    await ids([visit('e1', T0 + 60 * MIN)]);
    // Earlier, but within the gap of the session's start: it joins and stretches it back.
    expect(await rt.sessions.assign('site', [visit('e0', T0 + 35 * MIN)])).toEqual([{ session: 's-e1', fields: fields('/e1') }]);
    // Now within the gap of the stretched start.
    expect(await ids([visit('e-1', T0 + 10 * MIN)])).toEqual(['s-e1']);
    // Far earlier: a session of its own, before the other.
    expect(await ids([visit('early', T0 - 60 * MIN)])).toEqual(['s-early']);
    expect(await ids([visit('x', T0 - 45 * MIN), visit('y', T0 + 70 * MIN)])).toEqual(['s-early', 's-e1']);
  });

  it('puts an event between two sessions in the nearer one, the earlier on a tie', async () => {
    await ids([visit('a', T0), visit('b', T0 + 50 * MIN)]);
    expect(await ids([visit('near-b', T0 + 30 * MIN)])).toEqual(['s-b']); // 30 from a, 20 from b
    // Now b starts at +30: +15 is 15 from each.
    expect(await ids([visit('tie', T0 + 15 * MIN)])).toEqual(['s-a']);
    expect(await ids([visit('in-a', T0 + 15 * MIN), visit('in-b', T0 + 30 * MIN)])).toEqual(['s-a', 's-b']);
  });

  it('gives redelivered events the same sessions and changes nothing', async () => {
    const batch = [visit('e1', T0), visit('e2', T0 + 25 * MIN), visit('e3', T0 + 90 * MIN), visit('e4', T0 + 100 * MIN)];
    const first = await rt.sessions.assign('site', batch);
    expect(first.map((a) => a.session)).toEqual(['s-e1', 's-e1', 's-e3', 's-e3']);
    expect(await rt.sessions.assign('site', batch)).toEqual(first);
    expect(await rt.sessions.assign('site', [...batch].reverse())).toEqual([...first].reverse());
    // Had the redelivery stretched a session, this would join it; it is 31 minutes past e2.
    expect(await ids([visit('e5', T0 + 56 * MIN)])).toEqual(['s-e5']);
  });

  it('keeps visitors and sites apart', async () => {
    expect(
      await ids([
        visit('a1', T0, 'anna'),
        visit('b1', T0 + MIN, 'bob'),
        visit('a2', T0 + 2 * MIN, 'anna'),
        visit('b2', T0 + 3 * MIN, 'bob'),
      ]),
    ).toEqual(['s-a1', 's-b1', 's-a1', 's-b1']);
    expect(await ids([visit('o1', T0 + 4 * MIN, 'anna')], 'other-site')).toEqual(['s-o1']);
    // Visitor ids that look like key syntax stay apart from each other.
    expect(await ids([visit('c1', T0, 'x:y'), visit('c2', T0, 'x%3Ay'), visit('c3', T0, '{s:site}')])).toEqual(['s-c1', 's-c2', 's-c3']);
  });

  it(`remembers a visitor's ${MAX_SESSIONS_PER_VISITOR} latest sessions`, async () => {
    const starts = Array.from({ length: MAX_SESSIONS_PER_VISITOR + 1 }, (_, n) => visit(`k${n}`, T0 + n * 2 * SESSION_GAP_MS));
    expect(await ids(starts)).toEqual(starts.map((v) => v.id));
    // The second one is still known; the first was forgotten: a late event there starts anew.
    expect(await ids([visit('late1', T0 + 2 * SESSION_GAP_MS + MIN)])).toEqual(['s-k1']);
    expect(await ids([visit('late0', T0 + MIN)])).toEqual(['s-late0']);
  });

  it('answers an empty batch with nothing', async () => {
    expect(await rt.sessions.assign('site', [])).toEqual([]);
  });

  if (name !== 'redis') return;

  it('shares the state between processors and keeps it for a day and an hour', async () => {
    expect(await ids([visit('e1', T0)])).toEqual(['s-e1']);
    const other = createRedisRealtime(new Redis(REDIS_URL), keys);
    try {
      expect((await other.sessions.assign('site', [visit('e2', T0 + MIN)])).map((a) => a.session)).toEqual(['s-e1']);
    } finally {
      await other.close();
    }
    const redis = new Redis(REDIS_URL);
    try {
      const ttl = await redis.ttl(keys.sessionState('site', 'v1'));
      expect(ttl).toBeGreaterThan(SESSION_STATE_TTL_SECONDS - 60);
      expect(ttl).toBeLessThanOrEqual(SESSION_STATE_TTL_SECONDS);
    } finally {
      redis.disconnect();
    }
  });
});
