import { RES_SECONDS, type Res } from '../counters/counter-names.js';

// The analytics engine's time buckets: their resolutions, retention in the real-time layer and
// what a totals hash holds. Their names are src/counters/counter-names.ts's.

export const RESOLUTIONS: readonly Res[] = ['m', 'h', 'd'];

/** How long the real-time layer keeps a bucket after it ends; day buckets stay forever. */
export const RETENTION_SECONDS: Readonly<Record<Res, number | undefined>> = {
  m: 48 * 3600,
  h: 90 * 86_400,
  d: undefined,
};

/** A bucket written past its retention still lives long enough for its copy to reach PostgreSQL. */
const MIN_TTL_SECONDS = 900;
/** Reads of a bucket this close to its expiry go to PostgreSQL instead. */
const EXPIRY_MARGIN_SECONDS = 120;

export const DIMENSIONS = ['page', 'product', 'referrer', 'event', 'user', 'browser', 'os', 'device', 'utm_source'] as const;
export type Dimension = (typeof DIMENSIONS)[number];

/** Fields of a totals hash. */
export const TOTALS = {
  pageviews: 'pv',
  events: 'ev',
  clicks: 'ck',
  sessions: 'se',
  bounces: 'bo',
  engagedMs: 'eg',
  engagements: 'en',
  bots: 'bt',
} as const;
export type TotalsField = (typeof TOTALS)[keyof typeof TOTALS];

/** Count metrics a ranking can hold (the totals field of the same name). */
export type RankMetric = 'pv' | 'ev' | 'ck';

export function bucketOf(res: Res, ms: number): number {
  const size = RES_SECONDS[res];
  return Math.floor(ms / 1000 / size) * size;
}

/** Seconds the real-time copy of a bucket should live from now; undefined: forever. */
export function ttlOf(res: Res, bucket: number, nowMs: number): number | undefined {
  const retention = RETENTION_SECONDS[res];
  if (retention === undefined) return undefined;
  const end = bucket + RES_SECONDS[res] + retention;
  return Math.max(MIN_TTL_SECONDS, Math.ceil(end - nowMs / 1000));
}

/** True when the real-time layer still holds the bucket (else PostgreSQL answers for it). */
export function heldInRealtime(res: Res, bucket: number, nowMs: number): boolean {
  const retention = RETENTION_SECONDS[res];
  if (retention === undefined) return true;
  return bucket + RES_SECONDS[res] + retention - EXPIRY_MARGIN_SECONDS > nowMs / 1000;
}
