import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EventRow } from '../src/events/event-row.js';
import type { Goal } from '../src/goals/goal.js';
import { GOAL_METRICS, METRICS } from '../src/query/metrics.js';
import { parseQuery } from '../src/query/parse-query.js';
import { createQueryEngine, type QueryAnswer } from '../src/query/run-query.js';
import { eventRow, openTestEventStore } from './event-store-fixture.js';

// The query engine over real Parquet files (written by the event store's writer, read by its
// DuckDB): a small data set whose every answer below was worked out by hand.

const SITE = 'site_q';
const at = (day: number, hh: number, mm: number, ss = 0) => Date.UTC(2026, 0, day, hh, mm, ss);
const row = (over: Partial<EventRow> & Pick<EventRow, 'ts' | 'visitor'>) => eventRow({ site_id: SITE, ...over });

const google = { source: 'Google', referrer: 'https://google.com/', referrer_host: 'google.com' };
const DATA: EventRow[] = [
  // Visitor A, session A1 on the 10th: from Google, Germany; signs up for pro on /pricing.
  row({ ts: at(10, 10, 0), visitor: 'A', session: 'A1', page: '/', entry_page: '/', country: 'DE', ...google }),
  row({ ts: at(10, 10, 1), visitor: 'A', session: 'A1', page: '/pricing', entry_page: '/', country: 'DE', ...google }),
  row({
    ts: at(10, 10, 2),
    visitor: 'A',
    session: 'A1',
    type: 'track',
    kind: 'engagement',
    page: '/pricing',
    entry_page: '/',
    country: 'DE',
    engaged_ms: 30_000,
    ...google,
  }),
  row({
    ts: at(10, 10, 3),
    visitor: 'A',
    session: 'A1',
    user_id: 'user-a',
    type: 'track',
    kind: 'event',
    name: 'Signed Up',
    page: '/pricing',
    entry_page: '/',
    country: 'DE',
    props: { plan: 'pro', 'a/b~c': 'odd' },
    revenue: 20,
    ...google,
  }),
  // Visitor B, session B1: direct, France, Firefox; clicks a product on a blog post.
  row({ ts: at(10, 11, 0), visitor: 'B', session: 'B1', page: '/blog/a', entry_page: '/blog/a', country: 'FR', browser: 'Firefox' }),
  row({
    ts: at(10, 11, 0, 30),
    visitor: 'B',
    session: 'B1',
    type: 'track',
    kind: 'event',
    name: 'Product Clicked',
    product: 'p1',
    page: '/blog/a',
    entry_page: '/blog/a',
    country: 'FR',
    browser: 'Firefox',
  }),
  // Visitor C: a newsletter visit (C1), then a direct one (C2) in the afternoon.
  row({
    ts: at(10, 12, 0),
    visitor: 'C',
    session: 'C1',
    page: '/blog/b',
    entry_page: '/blog/b',
    country: 'DE',
    source: 'Newsletter',
    utm_source: 'Newsletter',
    utm_medium: 'email',
  }),
  row({ ts: at(10, 15, 0), visitor: 'C', session: 'C2', page: '/', entry_page: '/', country: 'DE' }),
  row({ ts: at(10, 15, 5), visitor: 'C', session: 'C2', page: '/pricing', entry_page: '/', country: 'DE' }),
  row({
    ts: at(10, 15, 6),
    visitor: 'C',
    session: 'C2',
    type: 'track',
    kind: 'engagement',
    page: '/pricing',
    entry_page: '/',
    country: 'DE',
    engaged_ms: 10_000,
  }),
  // A bot, and an identify call: in no figure.
  row({ ts: at(10, 13, 0), visitor: 'X', session: 'X1', page: '/', bot: true }),
  row({ ts: at(10, 13, 1), visitor: 'D', session: 'D1', type: 'identify', kind: 'other', page: null }),
  // The day before: A from Google, a free signup.
  row({ ts: at(9, 9, 0), visitor: 'A', session: 'A0', page: '/', entry_page: '/', country: 'DE', ...google }),
  row({
    ts: at(9, 9, 1),
    visitor: 'A',
    session: 'A0',
    type: 'track',
    kind: 'event',
    name: 'Signed Up',
    page: '/',
    entry_page: '/',
    country: 'DE',
    props: { plan: 'free' },
    ...google,
  }),
];

const GOALS: Goal[] = [
  { id: 'g1', name: 'Signup', event: 'Signed Up', props: {} },
  { id: 'g2', name: 'Pro signup', event: 'Signed Up', props: { plan: 'pro' } },
  { id: 'g3', name: 'Pricing', page: '/pricing' },
  { id: 'g4', name: 'Blog', page: '/blog/*' },
  // No stored event carries a `ref` property: its condition is NULL there, not false.
  { id: 'g5', name: 'Referred signup', event: 'Signed Up', props: { ref: 'partner' } },
];

const NOW = at(20, 12, 0);
let store: Awaited<ReturnType<typeof openTestEventStore>>;
let run: ReturnType<typeof createQueryEngine>;

beforeAll(async () => {
  store = await openTestEventStore();
  await store.append(SITE, DATA, { dirty: false });
  run = createQueryEngine(store);
});
afterAll(async () => {
  await store.close();
});

const DAY10 = ['2026-01-10', '2026-01-10'];
async function ask(body: Record<string, unknown>, zone = 'UTC'): Promise<QueryAnswer> {
  return run(parseQuery({ date_range: DAY10, ...body }, { siteId: SITE, zone, nowMs: NOW, goals: GOALS }));
}
const rows = (a: QueryAnswer) => a.results.map((r) => [...r.dimensions, ...r.metrics]);

describe('query engine: metrics', () => {
  it('answers every metric of a day without dimensions', async () => {
    const answer = await ask({
      // Every metric but the two that need a goal, in the catalogue's order.
      metrics: METRICS.filter((m) => !GOAL_METRICS.has(m)),
    });
    // 3 visitors (the bot and the identify-only D are not), 4 visits (A1, B1, C1, C2), 6 page
    // views; B1 and C1 bounced; durations 180 + 30 + 0 + 360 s; engagements 30 s and 10 s.
    expect(rows(answer)).toEqual([[3, 4, 6, 1.5, 50, 142.5, 2, 1, 20, 20]]);
    expect(answer.meta).toMatchObject({
      date_range: ['2026-01-10T00:00:00.000Z', '2026-01-10T23:59:59.999Z'],
      time_zone: 'UTC',
      total_rows: 1,
    });
  });

  it('counts bots only when asked', async () => {
    expect(rows(await ask({ metrics: ['pageviews', 'visitors'], include: { bots: true } }))).toEqual([[7, 4]]);
  });

  it('answers zeros for a range without events', async () => {
    expect(rows(await ask({ date_range: ['2025-06-01', '2025-06-02'], metrics: ['visitors', 'bounce_rate'] }))).toEqual([[0, 0]]);
    expect(rows(await ask({ date_range: ['2025-06-01', '2025-06-02'], metrics: ['visitors'], dimensions: ['page'] }))).toEqual([]);
  });

  it('includes both ends of a range given as times', async () => {
    const answer = await ask({ date_range: ['2026-01-10T10:01:00Z', '2026-01-10T11:00:00Z'], metrics: ['pageviews', 'events'] });
    expect(rows(answer)).toEqual([[2, 1]]);
  });
});

describe('query engine: dimensions', () => {
  it('breaks down by session-level and event-level dimensions', async () => {
    expect(rows(await ask({ metrics: ['visitors', 'visits'], dimensions: ['source'] }))).toEqual([
      ['Direct', 2, 2],
      ['Google', 1, 1],
      ['Newsletter', 1, 1],
    ]);
    expect(rows(await ask({ metrics: ['pageviews'], dimensions: ['page'] }))).toEqual([
      ['/', 2],
      ['/pricing', 2],
      ['/blog/a', 1],
      ['/blog/b', 1],
    ]);
    expect(rows(await ask({ metrics: ['visits'], dimensions: ['entry_page'] }))).toEqual([
      ['/', 2],
      ['/blog/a', 1],
      ['/blog/b', 1],
    ]);
    expect(rows(await ask({ metrics: ['visits', 'bounce_rate'], dimensions: ['exit_page'] }))).toEqual([
      ['/pricing', 2, 0],
      ['/blog/a', 1, 100],
      ['/blog/b', 1, 100],
    ]);
  });

  it('names missing values (none), and breaks down by custom properties, products, users, countries', async () => {
    expect(rows(await ask({ metrics: ['events'], dimensions: ['props:plan'] }))).toEqual([
      ['(none)', 1],
      ['pro', 1],
    ]);
    // A key with the JSON pointer's own characters (/ and ~) is read as written.
    expect(rows(await ask({ metrics: ['events'], dimensions: ['props:a/b~c'] }))).toEqual([
      ['(none)', 1],
      ['odd', 1],
    ]);
    expect(rows(await ask({ metrics: ['clicks'], dimensions: ['product'] }))).toEqual([['p1', 1]]);
    expect(rows(await ask({ metrics: ['events'], dimensions: ['event:name', 'user'] }))).toEqual([
      ['Product Clicked', '(none)', 1],
      ['Signed Up', 'user-a', 1],
    ]);
    expect(rows(await ask({ metrics: ['visitors', 'pageviews'], dimensions: ['country', 'browser'] }))).toEqual([
      ['DE', 'Chrome', 2, 5],
      ['FR', 'Firefox', 1, 1],
    ]);
    expect(rows(await ask({ metrics: ['visitors'], dimensions: ['utm_medium'] }))).toEqual([
      ['(none)', 3],
      ['email', 1],
    ]);
  });

  it('breaks down by time; visits belong to the bucket of their start', async () => {
    expect(rows(await ask({ metrics: ['pageviews', 'visits'], dimensions: ['time:hour'] }))).toEqual([
      ['2026-01-10T10:00:00+00:00', 2, 1],
      ['2026-01-10T11:00:00+00:00', 1, 1],
      ['2026-01-10T12:00:00+00:00', 1, 1],
      ['2026-01-10T15:00:00+00:00', 2, 1],
    ]);
    expect(rows(await ask({ date_range: ['2026-01-09', '2026-01-10'], metrics: ['visitors'], dimensions: ['time:day'] }))).toEqual([
      ['2026-01-09', 1],
      ['2026-01-10', 3],
    ]);
    expect(rows(await ask({ date_range: ['2026-01-01', '2026-01-31'], metrics: ['visitors'], dimensions: ['time:week'] }))).toEqual([
      ['2026-01-05', 3],
    ]);
    expect(rows(await ask({ date_range: '12mo', metrics: ['pageviews'], dimensions: ['time:month'] }))).toEqual([['2026-01-01', 7]]);
  });

  it('orders, and pages through the groups', async () => {
    const all = await ask({ metrics: ['pageviews'], dimensions: ['page'], order_by: [['page', 'desc']] });
    expect(all.results.map((r) => r.dimensions[0])).toEqual(['/pricing', '/blog/b', '/blog/a', '/']);
    const page = await ask({
      metrics: ['pageviews'],
      dimensions: ['page'],
      order_by: [['page', 'desc']],
      pagination: { limit: 2, offset: 1 },
    });
    expect(page.results.map((r) => r.dimensions[0])).toEqual(['/blog/b', '/blog/a']);
    expect(page.meta.total_rows).toBe(4);
  });
});

describe('query engine: filters', () => {
  const visitors = async (filters: unknown, metrics = ['visitors', 'visits', 'pageviews']) => rows(await ask({ metrics, filters }))[0];

  it('filters sessions by session-level dimensions', async () => {
    expect(await visitors(['is', 'source', ['Google']])).toEqual([1, 1, 2]);
    expect(await visitors(['is', 'visit:source', ['Google', 'Newsletter']])).toEqual([2, 2, 3]);
    expect(await visitors(['is', 'entry_page', ['/blog/b']])).toEqual([1, 1, 1]);
    expect(await visitors(['is', 'exit_page', ['/pricing']])).toEqual([2, 2, 4]);
  });

  it('filters events, and counts the visits that have one whole', async () => {
    expect(await visitors(['contains', 'page', ['/blog']], ['visitors', 'visits', 'pageviews', 'bounce_rate'])).toEqual([2, 2, 2, 100]);
    expect(await visitors(['is', 'props:plan', ['pro']], ['visitors', 'events', 'visits', 'visit_duration'])).toEqual([1, 1, 1, 180]);
    expect(await visitors(['is', 'country', ['DE']])).toEqual([2, 3, 5]);
    expect(await visitors(['is', 'event', ['Product Clicked']], ['clicks', 'events', 'pageviews'])).toEqual([1, 1, 0]);
  });

  it('treats a missing value as matching no value', async () => {
    expect(await visitors(['is_not', 'country', ['DE']])).toEqual([1, 1, 1]);
    expect(await visitors(['is_not', 'utm_source', ['Newsletter']])).toEqual([3, 3, 5]);
    expect(await visitors(['is', 'utm_source', ['(none)']])).toEqual([3, 3, 5]);
    expect(await visitors(['contains_not', 'page', ['blog']])).toEqual([2, 2, 4]);
  });

  it('combines conditions with and, or, not', async () => {
    expect(
      await visitors([
        'and',
        [
          ['is', 'country', ['DE']],
          ['contains', 'page', ['/blog']],
        ],
      ]),
    ).toEqual([1, 1, 1]);
    expect(
      await visitors([
        'or',
        [
          ['is', 'country', ['FR']],
          ['is', 'source', ['Newsletter']],
        ],
      ]),
    ).toEqual([2, 2, 2]);
    expect(await visitors(['not', ['is', 'country', ['DE']]])).toEqual([1, 1, 1]);
    expect(
      await visitors([
        'not',
        [
          'or',
          [
            ['is', 'country', ['FR']],
            ['is', 'source', ['Google']],
          ],
        ],
      ]),
    ).toEqual([1, 2, 3]);
  });

  it('binds values: quotes and SQL in a value are text', async () => {
    expect(await visitors(['is', 'page', ["/' OR 1=1 --"]])).toEqual([0, 0, 0]);
    expect(rows(await ask({ metrics: ['visitors'], filters: ['contains', "props:x') OR true --", ['%']] }))).toEqual([[0]]);
  });
});

describe('query engine: goals', () => {
  it('breaks down by goal: unique converters, conversions, conversion rate over all visitors', async () => {
    expect(rows(await ask({ metrics: ['visitors', 'conversions', 'conversion_rate'], dimensions: ['goal'] }))).toEqual([
      ['Blog', 2, 2, 66.67],
      ['Pricing', 2, 2, 66.67],
      ['Pro signup', 1, 1, 33.33],
      ['Signup', 1, 1, 33.33],
    ]);
  });

  it('filters by goal; conversion_rate per group divides by the group’s visitors', async () => {
    expect(
      rows(
        await ask({ metrics: ['visitors', 'conversions', 'conversion_rate', 'revenue'], filters: ['is', 'event:goal', ['Pro signup']] }),
      ),
    ).toEqual([[1, 1, 33.33, 20]]);
    expect(
      rows(
        await ask({
          metrics: ['visitors', 'conversion_rate'],
          dimensions: ['country'],
          filters: [
            'and',
            [
              ['is', 'goal', ['Pricing']],
              ['is', 'source', ['Direct', 'Google']],
            ],
          ],
        }),
      ),
    ).toEqual([['DE', 2, 100]]);
    expect(rows(await ask({ metrics: ['conversions'], filters: ['contains', 'goal', ['ign']] }))).toEqual([[1]]);
    // Filters select events: B's product click is an event that is no Blog page view.
    expect(rows(await ask({ metrics: ['visitors'], filters: ['is_not', 'goal', ['Blog']] }))).toEqual([[3]]);
  });

  it('keeps under is_not the events a goal on a property does not complete for want of the property', async () => {
    const all = rows(await ask({ metrics: ['events', 'visitors'] }));
    expect(rows(await ask({ metrics: ['events', 'visitors'], filters: ['is_not', 'goal', ['Referred signup']] }))).toEqual(all);
    expect(rows(await ask({ metrics: ['events'], filters: ['not', ['is', 'goal', ['Referred signup']]] }))).toEqual([[all[0]?.[0]]]);
  });

  it('answers for the past: a goal is a predicate over stored events', async () => {
    const answer = await ask({ date_range: ['2026-01-09', '2026-01-09'], metrics: ['conversions'], dimensions: ['goal'] });
    expect(rows(answer)).toEqual([['Signup', 1]]);
  });
});

describe('query engine: comparison', () => {
  it('compares with the previous period: change in percent, null from nothing', async () => {
    const answer = await ask({ metrics: ['visitors', 'pageviews', 'bounce_rate'], include: { comparison: 'previous_period' } });
    // The 9th: A only, one page view, one visit that bounced (its event is not a page view).
    expect(answer.results[0]?.comparison).toEqual({ metrics: [1, 1, 100], change: [200, 500, -50] });
    expect(answer.meta.comparison_date_range).toEqual(['2026-01-09T00:00:00.000Z', '2026-01-09T23:59:59.999Z']);
    const bySource = await ask({ metrics: ['visitors'], dimensions: ['source'], include: { comparison: 'previous_period' } });
    expect(bySource.results.map((r) => [r.dimensions[0], r.comparison])).toEqual([
      ['Direct', { metrics: [0], change: [null] }],
      ['Google', { metrics: [1], change: [0] }],
      ['Newsletter', { metrics: [0], change: [null] }],
    ]);
  });

  it('pairs time buckets by their place in the period, and compares year over year', async () => {
    const answer = await ask({ metrics: ['visitors'], dimensions: ['time:day'], include: { comparison: 'previous_period' } });
    expect(answer.results).toEqual([{ dimensions: ['2026-01-10'], metrics: [3], comparison: { metrics: [1], change: [200] } }]);
    const yoy = await ask({ metrics: ['visitors'], include: { comparison: 'year_over_year' } });
    expect(yoy.meta.comparison_date_range).toEqual(['2025-01-10T00:00:00.000Z', '2025-01-10T23:59:59.999Z']);
    expect(yoy.results[0]?.comparison).toEqual({ metrics: [0], change: [null] });
  });
});

describe('query engine: time zones', () => {
  const BERLIN = 'Europe/Berlin';
  let dst: Awaited<ReturnType<typeof openTestEventStore>>;
  let runDst: ReturnType<typeof createQueryEngine>;
  const utc = (mo: number, d: number, h: number, m: number) => Date.UTC(2026, mo - 1, d, h, m);
  beforeAll(async () => {
    dst = await openTestEventStore();
    await dst.append(
      SITE,
      [
        utc(3, 28, 22, 30), // 23:30 CET on the 28th
        utc(3, 28, 23, 30), // 00:30 CET on the 29th (spring forward at 02:00)
        utc(3, 29, 0, 30), // 01:30 CET
        utc(3, 29, 1, 30), // 03:30 CEST
        utc(3, 29, 21, 30), // 23:30 CEST on the 29th
        utc(3, 29, 22, 30), // 00:30 CEST on the 30th
        utc(10, 25, 0, 30), // 02:30 CEST on 25 October (fall back at 03:00)
        utc(10, 25, 1, 30), // 02:30 CET, the same wall time an hour later
      ].map((ts, i) => row({ ts, visitor: `v${i}`, session: `s${i}` })),
      { dirty: false },
    );
    runDst = createQueryEngine(dst);
  });
  afterAll(async () => {
    await dst.close();
  });
  const askDst = (body: Record<string, unknown>) => runDst(parseQuery(body, { siteId: SITE, zone: BERLIN, nowMs: NOW, goals: [] }));

  it('buckets days of 23 and 25 hours in the site zone', async () => {
    const days = await askDst({ date_range: ['2026-03-28', '2026-03-30'], metrics: ['pageviews'], dimensions: ['time:day'] });
    expect(rows(days)).toEqual([
      ['2026-03-28', 1],
      ['2026-03-29', 4],
      ['2026-03-30', 1],
    ]);
    expect(days.meta.date_range).toEqual(['2026-03-27T23:00:00.000Z', '2026-03-30T21:59:59.999Z']);
    const fall = await askDst({ date_range: ['2026-10-25', '2026-10-25'], metrics: ['pageviews'], dimensions: ['time:hour'] });
    expect(rows(fall)).toEqual([
      ['2026-10-25T02:00:00+02:00', 1],
      ['2026-10-25T02:00:00+01:00', 1],
    ]);
  });

  it('labels hours across spring forward, and compares a DST day with the day before', async () => {
    const hours = await askDst({ date_range: ['2026-03-29', '2026-03-29'], metrics: ['pageviews'], dimensions: ['time:hour'] });
    expect(rows(hours)).toEqual([
      ['2026-03-29T00:00:00+01:00', 1],
      ['2026-03-29T01:00:00+01:00', 1],
      ['2026-03-29T03:00:00+02:00', 1],
      ['2026-03-29T23:00:00+02:00', 1],
    ]);
    const cmp = await askDst({
      date_range: ['2026-03-29', '2026-03-29'],
      metrics: ['pageviews'],
      include: { comparison: 'previous_period' },
    });
    expect(cmp.meta.comparison_date_range).toEqual(['2026-03-27T23:00:00.000Z', '2026-03-28T22:59:59.999Z']);
    expect(cmp.results[0]?.comparison).toEqual({ metrics: [1], change: [300] });
  });
});
