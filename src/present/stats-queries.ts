import { LIVE_WINDOW_MS } from '../process/aggregate.js';
import { type Dimension, type RankMetric, TOTALS } from '../process/buckets.js';
import type { Site } from '../sites/site-repository.js';
import { cover, type Interval, intervalSlots, type Period, resolvePeriod } from './stats-range.js';
import type { Ranked, StatsReader } from './stats-reader.js';

// The stats API's answers (API.md "Stats"), from time buckets only.

export const METRICS = ['pageviews', 'clicks', 'events', 'visitors'] as const;
export type Metric = (typeof METRICS)[number];

/** The site a query is for: its periods follow its time zone. */
export type StatsSite = Pick<Site, 'id' | 'timezone'>;

export interface PeriodQuery {
  period?: Period;
  from?: string;
  to?: string;
}

export interface Summary {
  visitors: number;
  pageviews: number;
  events: number;
  clicks: number;
  /** Share of sessions with a single page view, 0 to 1. */
  bounceRate: number;
  /** Mean engaged time of a page view that reported one (Page Engaged), in seconds. */
  avgEngagedSeconds: number;
  /** Page views and events from bots (isbot), counted in none of the figures above. */
  bots: number;
}

const COUNT_FIELD: Record<Exclude<Metric, 'visitors'>, RankMetric> = { pageviews: 'pv', events: 'ev', clicks: 'ck' };

/** Which count ranks a dimension's values when visitors are asked for (the candidates). */
const VISITOR_CANDIDATES: Partial<Record<Dimension, RankMetric>> = {
  page: 'pv',
  referrer: 'pv',
  utm_source: 'pv',
  browser: 'pv',
  os: 'pv',
  device: 'pv',
  event: 'ev',
  product: 'ck',
};
/** Candidates examined per answer row when ranking by visitors. */
const CANDIDATES_PER_ROW = 3;
const MIN_CANDIDATES = 30;

const round = (value: number, digits: number) => Math.round(value * 10 ** digits) / 10 ** digits;

export function createStatsQueries(reader: StatsReader, now: () => number = Date.now) {
  async function summary(site: StatsSite, query: PeriodQuery): Promise<Summary> {
    const buckets = cover(resolvePeriod(query, now(), site.timezone));
    const [t, visitors] = await Promise.all([reader.totals(site.id, buckets), reader.visitors(site.id, buckets)]);
    const sessions = t[TOTALS.sessions] ?? 0;
    const bounces = Math.max(0, Math.min(sessions, t[TOTALS.bounces] ?? 0));
    const engagements = t[TOTALS.engagements] ?? 0;
    return {
      visitors,
      pageviews: t[TOTALS.pageviews] ?? 0,
      events: t[TOTALS.events] ?? 0,
      clicks: t[TOTALS.clicks] ?? 0,
      bounceRate: sessions > 0 ? round(bounces / sessions, 4) : 0,
      avgEngagedSeconds: engagements > 0 ? round((t[TOTALS.engagedMs] ?? 0) / engagements / 1000, 1) : 0,
      bots: t[TOTALS.bots] ?? 0,
    };
  }

  async function top(site: StatsSite, query: PeriodQuery & { dimension: Dimension; metric: Metric; limit: number }): Promise<Ranked[]> {
    const siteId = site.id;
    const buckets = cover(resolvePeriod(query, now(), site.timezone));
    if (query.metric !== 'visitors') return reader.ranking(siteId, buckets, query.dimension, COUNT_FIELD[query.metric], query.limit);
    const by = VISITOR_CANDIDATES[query.dimension];
    if (by === undefined) return [];
    const candidates = await reader.ranking(
      siteId,
      buckets,
      query.dimension,
      by,
      Math.max(MIN_CANDIDATES, query.limit * CANDIDATES_PER_ROW),
    );
    const counted = await Promise.all(
      candidates.map(async ({ value }) => ({ value, count: await reader.visitors(siteId, buckets, query.dimension, value) })),
    );
    return counted
      .filter((r) => r.count > 0)
      .sort((a, b) => b.count - a.count || (a.value < b.value ? -1 : a.value > b.value ? 1 : 0))
      .slice(0, query.limit);
  }

  async function timeseries(
    site: StatsSite,
    query: PeriodQuery & { metric: Metric; interval?: Interval },
  ): Promise<{ t: string; count: number }[]> {
    const range = resolvePeriod(query, now(), site.timezone);
    const slots = intervalSlots(range, query.interval ?? range.interval);
    const field = query.metric === 'visitors' ? 'visitors' : TOTALS[query.metric];
    const counts = await reader.series(site.id, slots, field);
    return slots.map((s, i) => ({ t: s.t, count: counts[i] ?? 0 }));
  }

  async function realtime(site: StatsSite): Promise<{ visitors: number }> {
    return { visitors: await reader.live(site.id, LIVE_WINDOW_MS) };
  }

  return { summary, top, timeseries, realtime };
}

export type StatsQueries = ReturnType<typeof createStatsQueries>;
