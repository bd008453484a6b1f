import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EventRow } from '../src/events/event-row.js';
import { MAX_USER_EVENTS_LIMIT } from '../src/query/user-events.js';
import { eventRow } from './event-store-fixture.js';
import { type Mode, openTestApp, type TestApp } from './helpers.js';

// POST /v1/stats/funnel, POST /v1/stats/retention and GET /v1/users/:userId/events through the
// app, over events appended to the context's own event store, in both modes; every bad input is
// a 400 invalid_request whose path names it.

const DAY = 86_400_000;
const T0 = Date.UTC(2026, 1, 10, 12);

describe.each<Mode>(['embedded', 'external'])('analysis routes (%s)', (mode) => {
  let t: TestApp;
  let seq = 0;
  const row = (over: Partial<EventRow> & Pick<EventRow, 'ts' | 'visitor'>) =>
    eventRow({ site_id: t.site.id, message_id: `m${String(++seq).padStart(4, '0')}`, ...over });
  const post = (url: string, payload: unknown, auth = t.bearer) =>
    t.app.inject({ method: 'POST', url, headers: { authorization: auth }, payload: payload as object });
  const get = (url: string, auth = t.bearer) => t.app.inject({ method: 'GET', url, headers: { authorization: auth } });
  const range = ['2026-02-01', '2026-02-28'];

  beforeAll(async () => {
    t = await openTestApp(mode);
    const rows = [
      row({ ts: T0, visitor: 'a', page: '/pricing', country: 'DE' }),
      row({ ts: T0 + 60_000, visitor: 'a', type: 'track', kind: 'event', name: 'Signed Up', country: 'DE' }),
      row({ ts: T0, visitor: 'b', page: '/pricing/pro', country: 'FR' }),
      row({ ts: T0 + 2 * DAY, visitor: 'b', type: 'track', kind: 'event', name: 'Signed Up', country: 'FR' }),
      row({ ts: T0 + DAY, visitor: 'a', page: '/', country: 'DE' }),
    ];
    // A signed-in user's events: three in the same millisecond, ordered by messageId.
    for (let i = 0; i < 5; i++) {
      rows.push(
        row({
          ts: T0 + (i < 3 ? 0 : i) * 1000,
          visitor: 'u1',
          user_id: 'u1',
          ...(i % 2 === 0 ? { page: `/p${i}` } : { type: 'track', kind: 'event', name: 'Clicked', page: '/p', props: { n: String(i) } }),
        }),
      );
    }
    rows.push(row({ ts: T0, visitor: 'u2', user_id: 'u2', page: '/other' }));
    await t.ctx.events.append(t.site.id, rows, { dirty: false });
    // Opening PGlite takes long on a busy machine.
  }, 180_000);
  afterAll(() => t.close());

  it('answers a funnel with its window and filters', async () => {
    const steps = [{ page: '/pricing*' }, { event: 'Signed Up' }];
    const all = await post('/v1/stats/funnel', { date_range: range, steps });
    expect(all.statusCode, all.body).toBe(200);
    expect(all.json()).toEqual({
      steps: [
        { visitors: 2, conversion_rate: 100, dropoff: 0 },
        { visitors: 2, conversion_rate: 100, dropoff: 0 },
      ],
    });
    const day = await post('/v1/stats/funnel', { date_range: range, steps, window: '1d' });
    expect(day.json().steps.map((s: { visitors: number }) => s.visitors)).toEqual([2, 1]);
    const fr = await post('/v1/stats/funnel', { date_range: range, steps, filters: ['is', 'country', ['FR']] });
    expect(fr.json().steps.map((s: { visitors: number }) => s.visitors)).toEqual([1, 1]);
  });

  it('answers retention cohorts in the site zone', async () => {
    const res = await post('/v1/stats/retention', { date_range: ['2026-02-10', '2026-02-12'], interval: 'day' });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toEqual({
      cohorts: [
        { start: '2026-02-10', visitors: 4, returning: [1, 1] },
        { start: '2026-02-11', visitors: 0, returning: [0] },
        { start: '2026-02-12', visitors: 0, returning: [] },
      ],
    });
  });

  it('pages through a user’s events, newest first, without repeating or skipping one', async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const q: string = `/v1/users/u1/events?limit=2${cursor ? `&cursor=${cursor}` : ''}`;
      const res = await get(q);
      expect(res.statusCode, res.body).toBe(200);
      const body = res.json() as { items: { messageId: string; timestamp: string }[]; nextCursor: string | null };
      expect(body.items.length).toBeLessThanOrEqual(2);
      seen.push(...body.items.map((i) => i.messageId));
      cursor = body.nextCursor;
      pages += 1;
    } while (cursor !== null && pages < 10);
    const all = (await get('/v1/users/u1/events')).json() as { items: { messageId: string }[]; nextCursor: null };
    expect(all.nextCursor).toBeNull();
    expect(seen).toEqual(all.items.map((i) => i.messageId));
    expect(seen).toHaveLength(5);
    expect(pages).toBe(3);
  });

  it('gives each event its type, name, page, properties and time', async () => {
    const res = await get('/v1/users/u1/events?event=Clicked&limit=1');
    expect(res.json()).toEqual({
      items: [
        {
          type: 'track',
          event: 'Clicked',
          page: '/p',
          properties: { n: '3' },
          timestamp: new Date(T0 + 3000).toISOString(),
          messageId: expect.any(String),
        },
      ],
      nextCursor: expect.any(String),
    });
    const bounded = await get(`/v1/users/u1/events?from=${new Date(T0 + 3000).toISOString()}&to=${new Date(T0 + 3000).toISOString()}`);
    expect(bounded.json().items.map((i: { timestamp: string }) => i.timestamp)).toEqual([new Date(T0 + 3000).toISOString()]);
    const other = await get('/v1/users/u2/events?from=2026-02-10&to=2026-02-10');
    expect(other.json().items.map((i: { page: string }) => i.page)).toEqual(['/other']);
    expect((await get('/v1/users/nobody/events')).json()).toEqual({ items: [], nextCursor: null });
  });

  it('refuses bad input with a 400 whose path names it', async () => {
    const steps = [{ page: '/a' }, { event: 'B' }];
    const cases: [() => Promise<{ statusCode: number; json(): unknown }>, string][] = [
      [() => post('/v1/stats/funnel', { date_range: range, steps: [{ page: '/a' }] }), '/steps'],
      [() => post('/v1/stats/funnel', { date_range: range, steps: Array.from({ length: 9 }, () => ({ page: '/a' })) }), '/steps'],
      [() => post('/v1/stats/funnel', { date_range: range, steps: [{ page: 'a' }, { event: 'B' }] }), '/steps/0/page'],
      [() => post('/v1/stats/funnel', { date_range: range, steps: [{ page: '/a', event: 'B' }, { event: 'B' }] }), '/steps/0'],
      [() => post('/v1/stats/funnel', { date_range: range, steps, window: '0d' }), '/window'],
      [() => post('/v1/stats/funnel', { date_range: range, steps, window: '366d' }), '/window'],
      [() => post('/v1/stats/funnel', { date_range: range, steps, window: '1y' }), '/window'],
      [() => post('/v1/stats/funnel', { date_range: 'yesterday', steps }), '/date_range'],
      [() => post('/v1/stats/funnel', { date_range: ['2026-02-01', 'soon'], steps }), '/date_range/1'],
      [() => post('/v1/stats/funnel', { steps }), '/date_range'],
      [() => post('/v1/stats/funnel', { date_range: range, steps, filters: ['is', 'colour', ['red']] }), '/filters/1'],
      [() => post('/v1/stats/retention', { date_range: range, interval: 'month' }), '/interval'],
      [() => post('/v1/stats/retention', { date_range: 'all', interval: 'day' }), '/date_range'],
      [() => post('/v1/stats/retention', { date_range: range, filters: ['maybe', 'country', ['DE']] }), '/filters/0'],
      [() => get(`/v1/users/u1/events?limit=${MAX_USER_EVENTS_LIMIT + 1}`), '/limit'],
      [() => get('/v1/users/u1/events?limit=0'), '/limit'],
      [() => get('/v1/users/u1/events?cursor=bm90LWEtY3Vyc29y'), '/cursor'],
      [() => get('/v1/users/u1/events?from=yesterday'), '/from'],
      [() => get('/v1/users/u1/events?to=2026-02-10T10:00:00'), '/to'],
      [() => get('/v1/users/u1/events?from=2026-02-11&to=2026-02-10'), '/to'],
      [() => get(`/v1/users/u1/events?event=${'e'.repeat(201)}`), '/event'],
      [() => get(`/v1/users/${'u'.repeat(257)}/events`), '/userId'],
    ];
    for (const [send, path] of cases) {
      const res = await send();
      expect({ status: res.statusCode, body: res.json() }).toMatchObject({
        status: 400,
        body: { error: { code: 'invalid_request', path } },
      });
    }
  });

  it('needs the secret key', async () => {
    expect((await get('/v1/users/u1/events', t.basic)).statusCode).toBe(403);
    expect((await get('/v1/users/u1/events', '')).statusCode).toBe(401);
    expect((await post('/v1/stats/funnel', { date_range: range, steps: [{ page: '/a' }, { page: '/b' }] }, 'Bearer nope')).statusCode).toBe(
      401,
    );
  });
});
