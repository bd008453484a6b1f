import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EventRow } from '../src/events/event-row.js';
import { MAX_PROP_KEYS } from '../src/events/props-file.js';
import type { Goal } from '../src/goals/goal.js';
import { NONE } from '../src/query/dimensions.js';
import { METRICS, type Metric, SESSION_METRICS } from '../src/query/metrics.js';
import { parseQuery, topLevelGoalConditions } from '../src/query/parse-query.js';
import type { Filter, Query } from '../src/query/query.js';
import { createQueryEngine } from '../src/query/run-query.js';
import { bucketLabel, bucketStart } from '../src/query/time-buckets.js';
import { instantOf } from '../src/time/zone.js';
import { eventRow, openTestEventStore } from './event-store-fixture.js';
import { propertyParams } from './helpers.js';

// Random events (visitors, sessions across midnight in New York's zone and its DST change, bots,
// goals, repeated messages) and random queries: every answer of the engine equals a plain
// computation over the events, exactly (distinct counts are exact in both).

const ZONE = 'America/New_York';
/** Local midnight starting 8 March 2026, the day clocks spring forward. */
const BASE = instantOf(ZONE, 2026, 3, 8);
const MIN = 60_000;
const COLOR_KEY = 'co/l~or';
const PAGES = ['/', '/blog/a', '/blog/b', '/pricing'];
const GOALS: Goal[] = [
  { id: 'g1', name: 'Signup', event: 'Signed Up', props: {} },
  { id: 'g2', name: 'Pro', event: 'Signed Up', props: { plan: 'pro' } },
  { id: 'g3', name: 'Blog', page: '/blog/*' },
  { id: 'g4', name: 'Pricing', page: '/pricing' },
];

const eventArb = fc.record({
  gapMin: fc.integer({ min: 0, max: 25 }),
  kind: fc.constantFrom('pageview', 'pageview', 'event', 'engagement', 'other'),
  page: fc.option(fc.constantFrom(...PAGES), { nil: null, freq: 6 }),
  name: fc.constantFrom('Signed Up', 'Product Clicked', 'Other'),
  plan: fc.option(fc.constantFrom('pro', 'free'), { nil: undefined }),
  // Another property beside it: a visitor's events of one plan then carry different props texts.
  // Its key holds the characters a JSON pointer escapes.
  color: fc.option(fc.constantFrom('red', 'blue'), { nil: undefined }),
  country: fc.option(fc.constantFrom('DE', 'US'), { nil: null }),
  engaged: fc.integer({ min: 0, max: 60_000 }),
  revenue: fc.option(fc.integer({ min: 1, max: 50 }), { nil: null }),
});
const sessionArb = fc.record({
  startMin: fc.integer({ min: -24 * 60, max: 48 * 60 }),
  source: fc.constantFrom('Direct', 'Google', 'Newsletter'),
  events: fc.array(eventArb, { minLength: 1, maxLength: 5 }),
});
const visitorArb = fc.record({
  bot: fc.integer({ min: 0, max: 6 }).map((n) => n === 0),
  sessions: fc.array(sessionArb, { minLength: 1, maxLength: 3 }),
});
const dataArb = fc.record({
  visitors: fc.array(visitorArb, { minLength: 1, maxLength: 6 }),
  repeat: fc.array(fc.nat(), { maxLength: 4 }),
  // Finished days compacted: one file a day and its visits file, which visit figures then read.
  compact: fc.boolean(),
});

type Raw = typeof dataArb extends fc.Arbitrary<infer T> ? T : never;

function rowsOf(data: Raw, siteId: string): EventRow[] {
  const out: EventRow[] = [];
  data.visitors.forEach((v, vi) => {
    v.sessions.forEach((s, si) => {
      let ts = BASE + s.startMin * MIN;
      const first = s.events.find((e) => e.kind === 'pageview' && e.page !== null)?.page ?? null;
      s.events.forEach((e, ei) => {
        ts += e.gapMin * MIN;
        const kind = e.kind;
        out.push(
          eventRow({
            site_id: siteId,
            message_id: `m-${vi}-${si}-${String(ei).padStart(2, '0')}`,
            ts,
            visitor: `v${vi}`,
            session: `v${vi}-s${si}`,
            type: kind === 'pageview' ? 'page' : kind === 'other' ? 'identify' : 'track',
            kind,
            name: kind === 'event' ? e.name : null,
            page: e.page,
            entry_page: first,
            source: s.source,
            utm_source: s.source === 'Newsletter' ? 'Newsletter' : null,
            country: e.country,
            product: kind === 'event' && e.name === 'Product Clicked' ? 'p1' : null,
            revenue: kind === 'event' ? e.revenue : null,
            engaged_ms: kind === 'engagement' ? e.engaged : 0,
            props: { ...(e.plan === undefined ? {} : { plan: e.plan }), ...(e.color === undefined ? {} : { [COLOR_KEY]: e.color }) },
            bot: v.bot,
          }),
        );
      });
    });
  });
  return out;
}

const condArb = fc.oneof(
  fc.tuple(fc.constantFrom('is', 'is_not'), fc.constant('country'), fc.subarray(['DE', 'US', NONE], { minLength: 1 })),
  fc.tuple(
    fc.constantFrom('is', 'is_not', 'contains', 'contains_not'),
    fc.constant('page'),
    fc.subarray(['/', '/blog', '/pricing', NONE], { minLength: 1 }),
  ),
  fc.tuple(fc.constantFrom('is', 'is_not'), fc.constant('source'), fc.subarray(['Direct', 'Google', 'Newsletter'], { minLength: 1 })),
  fc.tuple(fc.constantFrom('is', 'is_not'), fc.constant('props:plan'), fc.subarray(['pro', 'free', NONE], { minLength: 1 })),
  fc.tuple(fc.constantFrom('is', 'is_not'), fc.constant('event'), fc.subarray(['Signed Up', 'Product Clicked'], { minLength: 1 })),
  fc.tuple(fc.constantFrom('is', 'is_not'), fc.constant('exit_page'), fc.subarray(PAGES, { minLength: 1 })),
  fc.tuple(
    fc.constant('is'),
    fc.constant('goal'),
    fc.subarray(
      GOALS.map((g) => g.name),
      { minLength: 1 },
    ),
  ),
);
const filterArb: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  f: fc.oneof(
    { depthSize: 'small', withCrossShrink: true, maxDepth: 3 },
    condArb,
    fc.tuple(fc.constantFrom('and', 'or'), fc.array(tie('f'), { minLength: 1, maxLength: 3 })),
    fc.tuple(fc.constant('not'), tie('f')),
  ),
})).f;
const queryArb = fc.record({
  from: fc.integer({ min: -1, max: 1 }),
  days: fc.integer({ min: 1, max: 3 }),
  metrics: fc.subarray([...METRICS], { minLength: 1 }),
  dimension: fc.constantFrom(null, 'page', 'source', 'country', 'exit_page', 'props:plan', 'goal', 'time:day', 'time:hour'),
  filter: fc.option(filterArb, { nil: undefined }),
  goalFilter: fc.subarray(
    GOALS.map((g) => g.name),
    { minLength: 1 },
  ),
});

/**
 * A dashboard's summary or source list: visit metrics beside visitors and page views, grouped and
 * filtered by visit-level values only (answered from the sessions' rows, src/query/build-sql.ts).
 */
const summaryArb = fc.record({
  from: fc.integer({ min: -1, max: 1 }),
  days: fc.integer({ min: 1, max: 3 }),
  metrics: fc.subarray(
    METRICS.filter((m) => m === 'visitors' || m === 'pageviews' || SESSION_METRICS.has(m)),
    { minLength: 1 },
  ),
  dimension: fc.constantFrom(null, 'source'),
  filter: fc.option(
    fc.tuple(fc.constantFrom('is', 'is_not'), fc.constant('source'), fc.subarray(['Direct', 'Google', 'Newsletter'], { minLength: 1 })),
    { nil: undefined },
  ),
  goalFilter: fc.constant(GOALS.map((g) => g.name)),
});

/**
 * A custom property report: visitors and event figures by a property's value (answered by
 * grouping per value and visitor first, src/query/build-sql.ts), with any filter. Without one,
 * compacted whole days answer from their props files (src/events/props-file.ts).
 */
const propsArb = fc.record({
  from: fc.integer({ min: -1, max: 1 }),
  days: fc.integer({ min: 1, max: 3 }),
  metrics: fc
    .subarray(['pageviews', 'events', 'clicks', 'time_on_page', 'revenue'] as const)
    .map((more): Metric[] => ['visitors', ...more]),
  dimension: fc.constantFrom('props:plan', `props:${COLOR_KEY}`),
  filter: fc.option(filterArb, { nil: undefined }),
  goalFilter: fc.constant(GOALS.map((g) => g.name)),
});

// ---- the model ------------------------------------------------------------------------------

const globToRegExp = (p: string) => new RegExp(`^${p.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`);
const completes = (g: Goal, r: EventRow) =>
  g.page !== undefined
    ? r.kind === 'pageview' && r.page !== null && globToRegExp(g.page).test(r.page)
    : r.kind === 'event' && r.name === g.event && Object.entries(g.props ?? {}).every(([k, v]) => r.props[k] === v);

type ModelRow = EventRow & { exit_page: string | null; s_t0: number; s_t1: number; s_pv: number };

function valueIn(r: ModelRow, dimension: string): string | null {
  if (dimension.startsWith('props:')) return r.props[dimension.slice(6)] ?? null;
  if (dimension === 'event') return r.name;
  return (r as unknown as Record<string, string | null>)[dimension] ?? null;
}

function holds(f: Filter, r: ModelRow): boolean {
  if ('dimension' in f) {
    let positive: boolean;
    if (f.dimension.kind === 'goal') positive = (f.goals ?? []).some((g) => completes(g, r));
    else {
      const v = valueIn(r, f.dimension.name);
      if (v === null) positive = (f.op === 'is' || f.op === 'is_not') && f.values.includes(NONE);
      else positive = f.op === 'is' || f.op === 'is_not' ? f.values.includes(v) : f.values.some((x) => x !== NONE && v.includes(x));
    }
    return f.op === 'is_not' || f.op === 'contains_not' ? !positive : positive;
  }
  if (f.op === 'not') return !holds(f.filter, r);
  return f.op === 'and' ? f.filters.every((x) => holds(x, r)) : f.filters.some((x) => holds(x, r));
}

const round = (x: number, digits: number) => Math.round(x * 10 ** digits) / 10 ** digits;

function model(query: Query, all: EventRow[]): Map<string, number[]> {
  const rows = all.filter((r) => !r.bot && r.kind !== 'other' && r.ts >= query.range.fromMs && r.ts < query.range.toMs);
  const sessions = new Map<string, { pv: number; t0: number; t1: number; exit: [number, string, string | null] | null }>();
  for (const r of rows) {
    const s = sessions.get(r.session) ?? { pv: 0, t0: r.ts, t1: r.ts, exit: null };
    s.t0 = Math.min(s.t0, r.ts);
    s.t1 = Math.max(s.t1, r.ts);
    if (r.kind === 'pageview') {
      s.pv += 1;
      // The exit page: the page of the session's last page view that names one.
      const later = s.exit === null || r.ts > s.exit[0] || (r.ts === s.exit[0] && r.message_id > s.exit[1]);
      if (r.page !== null && later) s.exit = [r.ts, r.message_id, r.page];
    }
    sessions.set(r.session, s);
  }
  const ev: ModelRow[] = rows.map((r) => {
    const s = sessions.get(r.session) as NonNullable<ReturnType<typeof sessions.get>>;
    return { ...r, exit_page: s.exit?.[2] ?? null, s_t0: s.t0, s_t1: s.t1, s_pv: s.pv };
  });
  const dim = query.dimensions[0];
  const keyOf = (r: ModelRow, time: 'ts' | 's_t0'): string => {
    if (dim === undefined) return '';
    if (dim.kind === 'time') return bucketLabel(dim.unit, bucketStart(dim.unit, r[time], query.zone), query.zone);
    return valueIn(r, dim.name) ?? NONE;
  };
  const matched: [ModelRow, string, string][] = []; // row, event key, session key
  for (const r of ev) {
    if (query.filters !== null && !holds(query.filters, r)) continue;
    if (dim?.kind === 'goal') {
      for (const g of query.goals) if (completes(g, r)) matched.push([r, g.name, g.name]);
    } else matched.push([r, keyOf(r, 'ts'), keyOf(r, 's_t0')]);
  }
  // conversion_rate divides by the visitors of the same filter less its top-level goal conditions.
  const goalConds = topLevelGoalConditions(query.filters);
  const f = query.filters;
  const rest = f === null || 'dimension' in f || f.op !== 'and' ? [] : f.filters.filter((x) => !goalConds.includes(x));
  const baseFilter: Filter | null = goalConds.length === 0 ? f : rest.length === 0 ? null : { op: 'and', filters: rest };
  const base = new Map<string, Set<string>>();
  for (const r of ev) {
    if (baseFilter !== null && !holds(baseFilter, r)) continue;
    const k = dim?.kind === 'goal' ? '' : keyOf(r, 'ts');
    base.set(k, (base.get(k) ?? new Set()).add(r.visitor));
  }
  const keys = new Set(matched.flatMap(([, e, s]) => [e, s]));
  if (dim === undefined) keys.add('');
  const out = new Map<string, number[]>();
  for (const k of keys) {
    const rs = matched.filter(([, e]) => e === k).map(([r]) => r);
    const visits = new Map<string, ModelRow>();
    for (const [r, , s] of matched) if (s === k) visits.set(r.session, r);
    const vs = [...visits.values()];
    const count = (p: (r: ModelRow) => boolean) => rs.filter(p).length;
    const eng = rs.filter((r) => r.kind === 'engagement' && r.engaged_ms > 0);
    const visitors = new Set(rs.map((r) => r.visitor)).size;
    const baseVisitors = base.get(dim?.kind === 'goal' ? '' : k)?.size ?? 0;
    const ratio = (n: number, d: number, scale: number, digits: number) => (d > 0 ? round((scale * n) / d, digits) : 0);
    const values: Record<string, number> = {
      visitors,
      visits: vs.length,
      pageviews: count((r) => r.kind === 'pageview'),
      views_per_visit: ratio(
        vs.reduce((n, r) => n + r.s_pv, 0),
        vs.length,
        1,
        2,
      ),
      bounce_rate: ratio(vs.filter((r) => r.s_pv <= 1).length, vs.length, 100, 2),
      visit_duration: ratio(
        vs.reduce((n, r) => n + (r.s_t1 - r.s_t0), 0),
        vs.length,
        0.001,
        1,
      ),
      events: count((r) => r.kind === 'event'),
      clicks: count((r) => r.kind === 'event' && r.product !== null),
      time_on_page: ratio(
        eng.reduce((n, r) => n + r.engaged_ms, 0),
        eng.length,
        0.001,
        1,
      ),
      conversions: rs.length,
      conversion_rate: ratio(visitors, baseVisitors, 100, 2),
      revenue: round(
        rs.reduce((n, r) => n + (r.revenue ?? 0), 0),
        2,
      ),
    };
    const metrics = query.metrics.map((m) => values[m] as number);
    if (dim === undefined || metrics.some((m) => m !== 0)) out.set(k, metrics);
  }
  return out;
}

// ---- the property ---------------------------------------------------------------------------

let store: Awaited<ReturnType<typeof openTestEventStore>>;
beforeAll(async () => {
  store = await openTestEventStore();
});
afterAll(async () => {
  await store?.close();
});

describe('query engine against an in-memory model', () => {
  it('answers every random query over random events exactly as the model', async () => {
    const run = createQueryEngine(store);
    let site = 0;
    /** Queries whose answer held a figure other than 0 (the property must not pass on empty answers). */
    let substantial = 0;
    await fc.assert(
      fc.asyncProperty(
        dataArb,
        fc.array(fc.oneof(queryArb, summaryArb, propsArb), { minLength: 1, maxLength: 4 }),
        async (data, queries) => {
          const siteId = `model${site++}`;
          const rows = rowsOf(data, siteId);
          await store.append(siteId, rows, { dirty: false });
          // Messages delivered again: the store counts each message_id once.
          const again = data.repeat.map((i) => rows[i % rows.length] as EventRow);
          if (again.length > 0) await store.append(siteId, again, { dirty: true });
          if (data.compact) await store.maintainSite(siteId);
          for (const q of queries) {
            const from = new Date(BASE + q.from * 86_400_000 + 12 * 3_600_000).toISOString().slice(0, 10);
            const to = new Date(BASE + (q.from + q.days - 1) * 86_400_000 + 12 * 3_600_000).toISOString().slice(0, 10);
            const needsGoal = (q.metrics.includes('conversions') || q.metrics.includes('conversion_rate')) && q.dimension !== 'goal';
            const goal = ['is', 'goal', q.goalFilter];
            let filters: unknown = q.filter;
            if (needsGoal) filters = filters === undefined ? goal : ['and', [goal, filters]];
            const body = { date_range: [from, to], metrics: q.metrics, dimensions: q.dimension === null ? [] : [q.dimension], filters };
            let query: Query;
            try {
              query = parseQuery(body, { siteId, zone: ZONE, nowMs: BASE, goals: GOALS });
            } catch (err) {
              // conversion_rate beside a goal nested in or/not is refused by design.
              if ((err as { path?: string }).path?.startsWith('/metrics/')) continue;
              throw err;
            }
            const answer = await run(query);
            const got = new Map(answer.results.map((r) => [r.dimensions.join('\u0000'), r.metrics]));
            const want = model(query, rows);
            if ([...want.values()].some((m) => m.some((x) => x !== 0))) substantial += 1;
            expect(new Set(got.keys()), JSON.stringify(body)).toEqual(new Set(want.keys()));
            for (const [k, metrics] of want) {
              const engine = got.get(k) as number[];
              metrics.forEach((m, i) => {
                expect(
                  Math.abs((engine[i] as number) - m),
                  `${JSON.stringify(body)} ${k} ${query.metrics[i]}: ${engine[i]} vs ${m}`,
                ).toBeLessThan(0.0101);
              });
            }
          }
        },
      ),
      propertyParams(40, 100_000),
    );
    expect(substantial).toBeGreaterThanOrEqual(30);
  }, 120_000);

  // An unfiltered property breakdown reads the whole days of compacted sites from their props
  // files: the same events, compacted or not, give the same answer (bots included or not), and
  // the model's. Ranges of two or three local days hold one or two whole UTC days.
  it('answers property breakdowns from the props files of compacted days as from their events (fixed seed)', async () => {
    const run = createQueryEngine(store);
    let site = 0;
    const breakdownArb = fc.record({
      from: fc.integer({ min: -1, max: 1 }),
      days: fc.integer({ min: 2, max: 3 }),
      metrics: propsArb.map((q) => q.metrics),
      dimension: fc.constantFrom('props:plan', `props:${COLOR_KEY}`, 'props:absent'),
      bots: fc.boolean(),
    });
    await fc.assert(
      fc.asyncProperty(dataArb, breakdownArb, async (data, q) => {
        const [plain, compacted] = [`pp${site}`, `pc${site++}`];
        for (const siteId of [plain, compacted]) await store.append(siteId, rowsOf(data, siteId), { dirty: false });
        await store.maintainSite(compacted);
        const from = new Date(BASE + q.from * 86_400_000 + 12 * 3_600_000).toISOString().slice(0, 10);
        const to = new Date(BASE + (q.from + q.days - 1) * 86_400_000 + 12 * 3_600_000).toISOString().slice(0, 10);
        const body = {
          date_range: [from, to],
          metrics: q.metrics,
          dimensions: [q.dimension],
          ...(q.bots ? { include: { bots: true } } : {}),
        };
        const ask = async (siteId: string) => {
          const query = parseQuery(body, { siteId, zone: ZONE, nowMs: BASE, goals: GOALS });
          return { query, answer: new Map((await run(query)).results.map((r) => [r.dimensions.join('\u0000'), r.metrics])) };
        };
        const got = await ask(compacted);
        expect(got.answer, JSON.stringify(body)).toEqual((await ask(plain)).answer);
        if (!q.bots) expect(got.answer, JSON.stringify(body)).toEqual(model(got.query, rowsOf(data, compacted)));
      }),
      propertyParams(60, 100_000),
    );
  }, 120_000);

  // A props file holds the day's MAX_PROP_KEYS most frequent keys: a breakdown by another key the
  // day has, or by one it may have (its file does not hold them all), reads the day's events.
  it("reads a day's events for a key its props file does not hold", async () => {
    const run = createQueryEngine(store);
    const keys = Array.from({ length: MAX_PROP_KEYS + 2 }, (_, i) => `k${i}`);
    // Visitor j's page view carries the keys k0…kj: k0 is the most frequent key, the last two the rarest.
    const noon = Date.parse('2026-03-09T12:00:00Z');
    const rowsFor = (siteId: string) =>
      Array.from({ length: keys.length + 6 }, (_, j) =>
        eventRow({
          site_id: siteId,
          message_id: `m${j}`,
          ts: noon + j * MIN,
          visitor: `v${j}`,
          props: Object.fromEntries(keys.slice(0, j + 1).map((k) => [k, `x${j % 3}`])),
        }),
      );
    const [plain, compacted] = ['pk-plain', 'pk-compacted'];
    for (const siteId of [plain, compacted]) await store.append(siteId, rowsFor(siteId), { dirty: false });
    await store.maintainSite(compacted);
    for (const key of ['k0', keys.at(-1), 'absent']) {
      const body = { date_range: ['2026-03-08', '2026-03-09'], metrics: ['visitors', 'pageviews'], dimensions: [`props:${key}`] };
      const ask = async (siteId: string) => {
        const query = parseQuery(body, { siteId, zone: ZONE, nowMs: BASE, goals: GOALS });
        return { query, answer: new Map((await run(query)).results.map((r) => [r.dimensions.join('\u0000'), r.metrics])) };
      };
      const got = await ask(compacted);
      expect(got.answer, key).toEqual((await ask(plain)).answer);
      expect(got.answer, key).toEqual(model(got.query, rowsFor(compacted)));
    }
  });
});
