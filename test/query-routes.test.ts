import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EventRow } from '../src/events/event-row.js';
import { MAX_GOALS_PER_SITE } from '../src/goals/goal.js';
import { eventRow } from './event-store-fixture.js';
import { type Mode, openTestApp, type TestApp } from './helpers.js';

// The query API, goals and the GET stats routes' filters through the real app (both modes),
// over events written to the app's own event store.

const at = (day: number, hh: number, mm: number) => Date.UTC(2026, 0, day, hh, mm);

function events(siteId: string): EventRow[] {
  const row = (over: Partial<EventRow> & Pick<EventRow, 'ts' | 'visitor'>) => eventRow({ site_id: siteId, ...over });
  return [
    row({ ts: at(10, 10, 0), visitor: 'A', session: 'A1', page: '/', country: 'DE', source: 'Google' }),
    row({ ts: at(10, 10, 5), visitor: 'A', session: 'A1', page: '/pricing', country: 'DE', source: 'Google' }),
    row({
      ts: at(10, 10, 6),
      visitor: 'A',
      session: 'A1',
      type: 'track',
      kind: 'event',
      name: 'Signed Up',
      page: '/pricing',
      country: 'DE',
      source: 'Google',
      props: { plan: 'pro' },
    }),
    row({ ts: at(10, 12, 0), visitor: 'B', session: 'B1', page: '/blog/x', entry_page: '/blog/x', country: 'FR' }),
    row({ ts: at(11, 9, 0), visitor: 'C', session: 'C1', page: '/', country: 'DE' }),
    row({
      ts: at(11, 9, 1),
      visitor: 'C',
      session: 'C1',
      type: 'track',
      kind: 'event',
      name: 'Product Clicked',
      product: 'p9',
      page: '/',
      country: 'DE',
    }),
    row({ ts: at(11, 9, 2), visitor: 'C', session: 'C1', type: 'track', kind: 'engagement', page: '/', country: 'DE', engaged_ms: 12_000 }),
    row({ ts: at(11, 9, 3), visitor: 'Z', session: 'Z1', page: '/', country: 'DE', bot: true }),
  ];
}

describe.each<Mode>(['external', 'embedded'])('query API and goals (%s)', (mode) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await openTestApp(mode);
    await t.ctx.events.append(t.site.id, events(t.site.id), { dirty: false });
  }, 120_000);
  afterAll(async () => {
    await t?.close();
  });

  const post = (url: string, payload: unknown, auth = t.bearer) =>
    t.app.inject({ method: 'POST', url, headers: { authorization: auth }, payload: payload as object });
  const get = (url: string, auth = t.bearer) => t.app.inject({ method: 'GET', url, headers: { authorization: auth } });
  const query = (body: Record<string, unknown>) => post('/v1/stats/query', { date_range: ['2026-01-10', '2026-01-11'], ...body });

  it('answers a query with API.md’s shape', async () => {
    const res = await query({ metrics: ['visitors', 'pageviews'], dimensions: ['country'], filters: ['contains', 'page', ['/']] });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({
      results: [
        { dimensions: ['DE'], metrics: [2, 3] },
        { dimensions: ['FR'], metrics: [1, 1] },
      ],
      meta: {
        date_range: ['2026-01-10T00:00:00.000Z', '2026-01-11T23:59:59.999Z'],
        time_zone: 'UTC',
        metrics: ['visitors', 'pageviews'],
        dimensions: ['country'],
        total_rows: 2,
      },
    });
  });

  it('refuses a bad query with the path of its bad part, and a missing or wrong key', async () => {
    const bad = await query({
      metrics: ['visitors'],
      filters: [
        'and',
        [
          ['is', 'page', ['/']],
          ['like', 'page', ['/']],
        ],
      ],
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toEqual({ error: { code: 'invalid_request', message: expect.any(String), path: '/filters/1/1/0' } });
    expect((await query({ metrics: 'visitors' })).json().error.path).toBe('/metrics');
    expect((await post('/v1/stats/query', { metrics: ['visitors'], date_range: '7d' }, t.basic)).statusCode).toBe(403);
    expect((await post('/v1/stats/query', { metrics: ['visitors'], date_range: '7d' }, '')).statusCode).toBe(401);
  });

  it('refuses a query body over 64 KB, and compact filters over 4,000 characters', async () => {
    const big = await query({ metrics: ['visitors'], filters: ['is', 'page', Array.from({ length: 70 }, () => 'x'.repeat(1000))] });
    expect([big.statusCode, big.json().error.code]).toEqual([413, 'payload_too_large']);
    const long = await get(`/v1/stats/summary?filters=page==${'x'.repeat(4001)}`);
    expect([long.statusCode, long.json().error.path]).toEqual([400, '/filters']);
  });

  it('creates, lists and deletes goals; a new goal answers for past events', async () => {
    const created = await post('/v1/goals', { name: 'Pro signup', event: 'Signed Up', props: { plan: 'pro' } });
    expect(created.statusCode).toBe(201);
    const goal = created.json();
    expect(goal).toEqual({ id: expect.any(String), name: 'Pro signup', event: 'Signed Up', props: { plan: 'pro' } });
    const pricing = (await post('/v1/goals', { name: 'Pricing', page: '/pric*' })).json();
    expect((await get('/v1/goals')).json()).toEqual({ goals: [goal, { id: pricing.id, name: 'Pricing', page: '/pric*' }] });

    const answer = await query({ metrics: ['visitors', 'conversions', 'conversion_rate'], dimensions: ['goal'] });
    expect(answer.json().results).toEqual([
      { dimensions: ['Pricing'], metrics: [1, 1, 33.33] },
      { dimensions: ['Pro signup'], metrics: [1, 1, 33.33] },
    ]);

    const deleted = await t.app.inject({ method: 'DELETE', url: `/v1/goals/${pricing.id}`, headers: { authorization: t.bearer } });
    expect(deleted.json()).toEqual({ deleted: true });
    expect(
      (await t.app.inject({ method: 'DELETE', url: `/v1/goals/${pricing.id}`, headers: { authorization: t.bearer } })).statusCode,
    ).toBe(404);
    const unknown = await query({ metrics: ['conversions'], filters: ['is', 'goal', ['Pricing']] });
    expect(unknown.json().error).toMatchObject({ code: 'invalid_request', path: '/filters/2/0' });
    await t.app.inject({ method: 'DELETE', url: `/v1/goals/${goal.id}`, headers: { authorization: t.bearer } });
  });

  it('refuses bad goals with the path of the bad field', async () => {
    const cases: [unknown, number, string][] = [
      [{ name: 'x', page: '/a', event: 'E' }, 400, '/event'],
      [{ name: 'x' }, 400, '/page'],
      [{ name: 'x', page: '/a', props: { a: 'b' } }, 400, '/props'],
      [{ name: 'x', page: 'a' }, 400, '/page'],
      [{ name: '', event: 'E' }, 400, '/name'],
      [{ name: 'x', event: 'E', props: Object.fromEntries(Array.from({ length: 11 }, (_, i) => [`k${i}`, 'v'])) }, 400, '/props'],
      [{ name: 'x\u0000', event: 'E' }, 400, '/name'],
    ];
    for (const [body, status, path] of cases) {
      const res = await post('/v1/goals', body);
      expect([res.statusCode, res.json().error?.path], JSON.stringify(body)).toEqual([status, path]);
    }
    expect((await post('/v1/goals', { name: 'Twice', event: 'E' })).statusCode).toBe(201);
    const again = await post('/v1/goals', { name: 'Twice', page: '/' });
    expect([again.statusCode, again.json().error.code, again.json().error.path]).toEqual([409, 'conflict', '/name']);
  });

  it(`holds at most ${MAX_GOALS_PER_SITE} goals a site`, async () => {
    const have = (await get('/v1/goals')).json().goals.length;
    for (let i = have; i < MAX_GOALS_PER_SITE; i++)
      expect((await post('/v1/goals', { name: `g${i}`, page: `/p${i}` })).statusCode).toBe(201);
    const over = await post('/v1/goals', { name: 'one more', page: '/more' });
    expect([over.statusCode, over.json().error.code]).toEqual([409, 'conflict']);
    for (const g of (await get('/v1/goals')).json().goals) {
      await t.app.inject({ method: 'DELETE', url: `/v1/goals/${g.id}`, headers: { authorization: t.bearer } });
    }
    expect((await get('/v1/goals')).json()).toEqual({ goals: [] });
  }, 120_000);

  describe('GET stats routes with filters', () => {
    const period = 'period=custom&from=2026-01-10&to=2026-01-11';

    it('answer summary, top and timeseries from the event store when filtered', async () => {
      const summary = await get(`/v1/stats/summary?${period}&filters=${encodeURIComponent('country==DE')}`);
      expect(summary.json()).toEqual({ visitors: 2, pageviews: 3, events: 2, clicks: 1, bounceRate: 0.5, avgEngagedSeconds: 12, bots: 1 });
      const top = await get(`/v1/stats/top?${period}&dimension=page&filters=${encodeURIComponent('source!=Google')}`);
      expect(top.json()).toEqual({
        results: [
          { value: '/', count: 1 },
          { value: '/blog/x', count: 1 },
        ],
      });
      const series = await get(`/v1/stats/timeseries?${period}&interval=day&metric=visitors&filters=${encodeURIComponent('page=~/')}`);
      expect(series.json()).toEqual({
        results: [
          { t: '2026-01-10T00:00:00.000Z', count: 2 },
          { t: '2026-01-11T00:00:00.000Z', count: 1 },
        ],
      });
      const hours = (await get(`/v1/stats/timeseries?${period}&interval=hour&filters=country==FR`)).json().results;
      expect(hours).toHaveLength(48);
      expect(hours.filter((p: { count: number }) => p.count > 0)).toEqual([{ t: '2026-01-10T12:00:00.000Z', count: 1 }]);
    });

    it('ranks countries (a dimension only the event store has) without filters too', async () => {
      const top = await get(`/v1/stats/top?${period}&dimension=country&metric=visitors`);
      expect(top.json()).toEqual({
        results: [
          { value: 'DE', count: 2 },
          { value: 'FR', count: 1 },
        ],
      });
      const csv = await get(`/v1/stats/export?${period}&format=csv&dimension=country&filters=${encodeURIComponent('page==/blog/x')}`);
      expect(csv.body.trim().split(/\r?\n/)).toEqual(['value,count', 'FR,1']);
    });

    it('keep answering unfiltered queries from the counters', async () => {
      // These events went to the event store only: the counters never saw them.
      expect((await get(`/v1/stats/summary?${period}`)).json()).toMatchObject({ visitors: 0, pageviews: 0 });
      expect((await get(`/v1/stats/summary?${period}&filters=page=~/`)).json()).toMatchObject({ visitors: 3, pageviews: 4 });
    });

    it('refuse bad filters at /filters', async () => {
      for (const filters of ['country=DE', 'planet==Mars', 'goal==Nope', 'time:day==x']) {
        const res = await get(`/v1/stats/summary?${period}&filters=${encodeURIComponent(filters)}`);
        expect([res.statusCode, res.json().error.path], filters).toEqual([400, '/filters']);
      }
    });
  });
});
