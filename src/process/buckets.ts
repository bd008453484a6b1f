import { part, unpart } from '../storage/keys.js';

// The analytics engine's time buckets and the names of what they hold. Every key lives under
// the site's hash tag ({s:<site>}:<suffix>); the suffix is also the durable name's first half
// ("<suffix>|<field>") that the rollup and uniques flushes parse back:
//   t:<res>:<bucket>                      hash of totals (TOTALS below)
//   r:<res>:<bucket>:<dim>:<metric>       sorted set: dimension value -> count
//   h:<res>:<bucket>                      HyperLogLog of the bucket's visitors
//   h:<res>:<bucket>:<dim>:<value>        HyperLogLog of one dimension value's visitors
// <res> is m (minute), h (hour) or d (day); <bucket> its start in epoch seconds.

export type Res = 'm' | 'h' | 'd';
export const RESOLUTIONS: readonly Res[] = ['m', 'h', 'd'];
export const RES_SECONDS: Readonly<Record<Res, number>> = { m: 60, h: 3600, d: 86_400 };

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

export const totalsSuffix = (res: Res, bucket: number) => `t:${res}:${bucket}`;
export const rankSuffix = (res: Res, bucket: number, dim: Dimension, metric: RankMetric) => `r:${res}:${bucket}:${dim}:${metric}`;
export const uniqueSuffix = (res: Res, bucket: number, dim?: Dimension, value?: string) =>
  dim === undefined ? `h:${res}:${bucket}` : `h:${res}:${bucket}:${dim}:${part(value ?? '')}`;

/** A rollup row named by a durable counter name ("t:…|field" or "r:…|member"). */
export interface RollupName {
  res: Res;
  bucket: number;
  dim: string;
  value: string;
  metric: string;
}

export function parseRollupName(name: string): RollupName | null {
  const bar = name.indexOf('|');
  if (bar < 0) return null;
  const field = name.slice(bar + 1);
  const parts = name.slice(0, bar).split(':');
  const res = parts[1] as Res;
  const bucket = Number(parts[2]);
  if (!RES_SECONDS[res] || !Number.isFinite(bucket)) return null;
  if (parts[0] === 't' && parts.length === 3) return { res, bucket, dim: '', value: '', metric: field };
  if (parts[0] === 'r' && parts.length === 5) return { res, bucket, dim: parts[3] as string, value: field, metric: parts[4] as string };
  return null;
}

/** A uniques row named by its key suffix ("h:…"). */
export function parseUniqueSuffix(suffix: string): { res: Res; bucket: number; dim: string; value: string } | null {
  const parts = suffix.split(':');
  const res = parts[1] as Res;
  const bucket = Number(parts[2]);
  if (parts[0] !== 'h' || !RES_SECONDS[res] || !Number.isFinite(bucket)) return null;
  if (parts.length === 3) return { res, bucket, dim: '', value: '' };
  if (parts.length === 5) return { res, bucket, dim: parts[3] as string, value: unpart(parts[4] as string) };
  return null;
}
