import { randomBytes } from 'node:crypto';
import {
  type Dimension,
  heldInRealtime,
  type RankMetric,
  rankSuffix,
  type Res,
  totalsSuffix,
  uniqueSuffix,
} from '../process/buckets.js';
import type { Db } from '../storage/db.js';
import type { Keys } from '../storage/keys.js';
import type { Realtime } from '../storage/realtime.js';
import type { Bucket } from './stats-range.js';

// Reads time buckets wherever they are: the real-time layer while it holds them (minutes 48 h,
// hours 90 days, days forever), the PostgreSQL rollups after that. Callers see one answer; raw
// events are never read. Uniques over several buckets are a HyperLogLog union in the real-time
// layer; for buckets only PostgreSQL still holds, their stored per-bucket counts are added.

export interface Ranked {
  value: string;
  count: number;
}

export function createStatsReader(deps: { realtime: Realtime; keys: Keys; db: Db }, now: () => number = Date.now) {
  const { realtime, keys, db } = deps;

  function split(buckets: readonly Bucket[]): { hot: Bucket[]; cold: Bucket[] } {
    const t = now();
    const hot: Bucket[] = [];
    const cold: Bucket[] = [];
    for (const b of buckets) (heldInRealtime(b.res, b.bucket, t) ? hot : cold).push(b);
    return { hot, cold };
  }

  // Buckets by resolution, so each is an index lookup on the primary key (site, res, bucket, …).
  const coldArgs = (siteId: string, cold: readonly Bucket[]) => [
    siteId,
    ...(['m', 'h', 'd'] as const).map((res) => cold.filter((b) => b.res === res).map((b) => b.bucket)),
  ];
  const COLD = `((res = 'm' AND bucket = ANY($2::int8[])) OR (res = 'h' AND bucket = ANY($3::int8[])) OR (res = 'd' AND bucket = ANY($4::int8[])))`;

  /** Totals fields summed over the buckets. */
  async function totals(siteId: string, buckets: readonly Bucket[]): Promise<Record<string, number>> {
    const { hot, cold } = split(buckets);
    const sums: Record<string, number> = {};
    const add = (field: string, n: number) => (sums[field] = (sums[field] ?? 0) + n);
    const hashes = await Promise.all(hot.map((b) => realtime.hgetall(keys.siteKey(siteId, totalsSuffix(b.res, b.bucket)))));
    for (const h of hashes) for (const [field, n] of Object.entries(h)) add(field, n);
    if (cold.length > 0) {
      const rows = await db.query<{ metric: string; n: number }>(
        `SELECT metric, sum(count)::int8 AS n FROM rollups WHERE site_id = $1 AND dim = '' AND ${COLD} GROUP BY metric`,
        coldArgs(siteId, cold),
      );
      for (const r of rows.rows) add(r.metric, r.n);
    }
    return sums;
  }

  /** Distinct visitors over the buckets (of one dimension value when dim is given). */
  async function visitors(siteId: string, buckets: readonly Bucket[], dim?: Dimension, value?: string): Promise<number> {
    const { hot, cold } = split(buckets);
    let n = await realtime.pfcount(hot.map((b) => keys.siteKey(siteId, uniqueSuffix(b.res, b.bucket, dim, value))));
    if (cold.length > 0) {
      const rows = await db.query<{ n: number | null }>(
        `SELECT sum(visitors)::int8 AS n FROM uniques WHERE site_id = $1 AND dim = $5 AND value = $6 AND ${COLD}`,
        [...coldArgs(siteId, cold), dim ?? '', value ?? ''],
      );
      n += rows.rows[0]?.n ?? 0;
    }
    return n;
  }

  /** A ranking summed over the buckets, highest first (limit 0: all). */
  async function ranking(siteId: string, buckets: readonly Bucket[], dim: Dimension, metric: RankMetric, limit: number): Promise<Ranked[]> {
    const { hot, cold } = split(buckets);
    // Both halves must be whole to be merged exactly; the hot half alone can be cut in Redis.
    const hotLimit = cold.length > 0 ? 0 : limit;
    const sums = new Map<string, number>();
    const hotKeys = hot.map((b) => keys.siteKey(siteId, rankSuffix(b.res, b.bucket, dim, metric)));
    const scratch = keys.siteKey(siteId, `tmp:${randomBytes(6).toString('hex')}`);
    for (const { member, score } of await realtime.rankUnion(hotKeys, hotLimit, scratch)) sums.set(member, score);
    if (cold.length > 0) {
      const rows = await db.query<{ value: string; n: number }>(
        `SELECT value, sum(count)::int8 AS n FROM rollups WHERE site_id = $1 AND dim = $5 AND metric = $6 AND ${COLD} GROUP BY value`,
        [...coldArgs(siteId, cold), dim, metric],
      );
      for (const r of rows.rows) sums.set(r.value, (sums.get(r.value) ?? 0) + r.n);
    }
    const sorted = [...sums]
      .filter(([, n]) => n > 0)
      .map(([value, count]) => ({ value, count }))
      .sort((a, b) => b.count - a.count || (a.value < b.value ? -1 : a.value > b.value ? 1 : 0));
    return limit > 0 ? sorted.slice(0, limit) : sorted;
  }

  /** One totals field (or the visitors) per bucket, in the order given. */
  async function series(siteId: string, buckets: readonly Bucket[], field: string | 'visitors'): Promise<number[]> {
    const { cold } = split(buckets);
    const fromPg = new Map<string, number>();
    if (cold.length > 0) {
      const rows =
        field === 'visitors'
          ? await db.query<{ res: Res; bucket: number; n: number }>(
              `SELECT res, bucket, visitors AS n FROM uniques WHERE site_id = $1 AND dim = '' AND ${COLD}`,
              coldArgs(siteId, cold),
            )
          : await db.query<{ res: Res; bucket: number; n: number }>(
              `SELECT res, bucket, count AS n FROM rollups WHERE site_id = $1 AND dim = '' AND metric = $5 AND ${COLD}`,
              [...coldArgs(siteId, cold), field],
            );
      for (const r of rows.rows) fromPg.set(`${r.res}${r.bucket}`, r.n);
    }
    const t = now();
    return Promise.all(
      buckets.map(async (b) => {
        if (!heldInRealtime(b.res, b.bucket, t)) return fromPg.get(`${b.res}${b.bucket}`) ?? 0;
        if (field === 'visitors') return realtime.pfcount([keys.siteKey(siteId, uniqueSuffix(b.res, b.bucket))]);
        return realtime.hget(keys.siteKey(siteId, totalsSuffix(b.res, b.bucket)), field);
      }),
    );
  }

  /** Visitors seen in the last windowMs. */
  const live = (siteId: string, windowMs: number) => realtime.zcount(keys.siteKey(siteId, 'live'), now() - windowMs, Number.MAX_SAFE_INTEGER);

  return { totals, visitors, ranking, series, live };
}

export type StatsReader = ReturnType<typeof createStatsReader>;
