import { figureSuffix, RES_SECONDS, type Res } from '../counters/counter-names.js';
import { type Dimension, heldInRealtime, type RankMetric } from '../process/buckets.js';
import type { Db } from '../storage/db.js';
import type { Realtime } from '../storage/realtime.js';
import type { Bucket, Slot, Term } from './stats-range.js';

// Reads time buckets wherever they are: the real-time layer while it holds them (minutes 48 h,
// hours 90 days, days forever), the PostgreSQL rollups after that. Callers see one answer; raw
// events are never read. Uniques over several buckets are a HyperLogLog union in the real-time
// layer, with PostgreSQL's copies of the buckets it no longer holds sent along (a local day in
// a zone offset by 30 minutes has minute buckets at its edges, which only PostgreSQL holds
// after 48 hours).

export interface Ranked {
  value: string;
  count: number;
}

const totalsOf = (b: Bucket) => figureSuffix({ kind: 'totals', res: b.res, bucket: b.bucket });
const uniqueOf = (b: Bucket, dim?: Dimension, value?: string) =>
  figureSuffix(
    dim === undefined
      ? { kind: 'unique', res: b.res, bucket: b.bucket }
      : { kind: 'unique', res: b.res, bucket: b.bucket, dim, value: value ?? '' },
  );

export function createStatsReader(deps: { realtime: Pick<Realtime, 'analytics'>; db: Db }, now: () => number = Date.now) {
  const { db } = deps;
  const hot = deps.realtime.analytics;

  function split(buckets: readonly Bucket[]): { held: Bucket[]; cold: Bucket[] } {
    const t = now();
    const held: Bucket[] = [];
    const cold: Bucket[] = [];
    for (const b of buckets) (heldInRealtime(b.res, b.bucket, t) ? held : cold).push(b);
    return { held, cold };
  }

  /**
   * Rows of the cold buckets, one branch per run of consecutive buckets of one resolution: each
   * branch is an equality prefix and a range on an index (site, res, …, bucket), a plan the
   * planner keeps even without statistics. (`bucket = ANY(…)` under an OR of resolutions made it
   * walk every row of the site or of the resolution when its statistics were missing or stale,
   * a cost that grows with the table.) `where` may use $2…; the runs' bounds follow its parameters.
   */
  function coldQuery(
    table: 'rollups' | 'uniques',
    columns: string,
    where: string,
    siteId: string,
    params: readonly string[],
    cold: readonly Bucket[],
  ) {
    const values: (string | number)[] = [siteId, ...params];
    const branches: string[] = [];
    for (const res of ['m', 'h', 'd'] as const) {
      const sorted = cold
        .filter((b) => b.res === res)
        .map((b) => b.bucket)
        .sort((a, b) => a - b);
      for (let i = 0; i < sorted.length; ) {
        let j = i;
        while (j + 1 < sorted.length && (sorted[j + 1] as number) - (sorted[j] as number) === RES_SECONDS[res]) j++;
        values.push(sorted[i] as number, sorted[j] as number);
        branches.push(
          `SELECT ${columns} FROM ${table} WHERE site_id = $1 AND res = '${res}' AND bucket BETWEEN $${values.length - 1} AND $${values.length} AND ${where}`,
        );
        i = j + 1;
      }
    }
    return { text: branches.join(' UNION ALL '), values };
  }

  /** Totals fields summed over the buckets. */
  async function totals(siteId: string, buckets: readonly Bucket[]): Promise<Record<string, number>> {
    const { held, cold } = split(buckets);
    const sums: Record<string, number> = {};
    const add = (field: string, n: number) => (sums[field] = (sums[field] ?? 0) + n);
    const hashes = await Promise.all(held.map((b) => hot.counters(siteId, totalsOf(b))));
    for (const h of hashes) for (const [field, n] of Object.entries(h)) add(field, n);
    if (cold.length > 0) {
      const q = coldQuery('rollups', 'metric, count', "dim = ''", siteId, [], cold);
      const rows = await db.query<{ metric: string; n: number }>(
        `SELECT metric, sum(count)::int8 AS n FROM (${q.text}) c GROUP BY metric`,
        q.values,
      );
      for (const r of rows.rows) add(r.metric, r.n);
    }
    return sums;
  }

  /** Distinct visitors over the buckets (of one dimension value when dim is given). */
  async function visitors(siteId: string, buckets: readonly Bucket[], dim?: Dimension, value?: string): Promise<number> {
    const { held, cold } = split(buckets);
    const suffixes = held.map((b) => uniqueOf(b, dim, value));
    if (cold.length === 0) return hot.countUniques(siteId, suffixes);
    const q = coldQuery('uniques', 'hll', 'dim = $2 AND value = $3', siteId, [dim ?? '', value ?? ''], cold);
    const rows = await db.query<{ hll: Uint8Array }>(q.text, q.values);
    return hot.countUniques(
      siteId,
      suffixes,
      rows.rows.map((r) => r.hll),
    );
  }

  /** A ranking summed over the buckets, highest first (limit 0: all). */
  async function ranking(siteId: string, buckets: readonly Bucket[], dim: Dimension, metric: RankMetric, limit: number): Promise<Ranked[]> {
    const { held, cold } = split(buckets);
    // Both halves must be whole to be merged exactly; the held half alone can be cut in Redis.
    const hotLimit = cold.length > 0 ? 0 : limit;
    const sums = new Map<string, number>();
    const rankings = held.map((b) => figureSuffix({ kind: 'ranking', res: b.res, bucket: b.bucket, dim, metric }));
    for (const { member, score } of await hot.rank(siteId, rankings, hotLimit)) sums.set(member, score);
    if (cold.length > 0) {
      const q = coldQuery('rollups', 'value, count', 'dim = $2 AND metric = $3', siteId, [dim, metric], cold);
      const rows = await db.query<{ value: string; n: number }>(
        `SELECT value, sum(count)::int8 AS n FROM (${q.text}) c GROUP BY value`,
        q.values,
      );
      for (const r of rows.rows) sums.set(r.value, (sums.get(r.value) ?? 0) + r.n);
    }
    const sorted = [...sums]
      .filter(([, n]) => n > 0)
      .map(([value, count]) => ({ value, count }))
      .sort((a, b) => b.count - a.count || (a.value < b.value ? -1 : a.value > b.value ? 1 : 0));
    return limit > 0 ? sorted.slice(0, limit) : sorted;
  }

  /**
   * One totals field (or the visitors) per slot of buckets, in the order given: a UTC site's
   * slots are one bucket each, a zoned site's local hours and days may be several; a sum reads
   * a slot's `terms` when it has them, and each bucket once however many slots name it.
   */
  async function series(siteId: string, slots: readonly Pick<Slot, 'buckets' | 'terms'>[], field: string | 'visitors'): Promise<number[]> {
    // Visitors of a slot of several buckets are a union, not a sum of per-bucket counts.
    const summed: Term[][] = [];
    for (const slot of slots) {
      if (field === 'visitors' && slot.buckets.length > 1) continue;
      summed.push(slot.terms ?? slot.buckets.map((bucket) => ({ bucket, sign: 1 })));
    }
    const distinct = new Map<string, Bucket>();
    for (const terms of summed) for (const { bucket } of terms) distinct.set(`${bucket.res}${bucket.bucket}`, bucket);
    const { held, cold } = split([...distinct.values()]);
    const values = new Map<string, number>();
    if (cold.length > 0) {
      const q =
        field === 'visitors'
          ? coldQuery('uniques', 'res, bucket, visitors AS n', "dim = ''", siteId, [], cold)
          : coldQuery('rollups', 'res, bucket, count AS n', "dim = '' AND metric = $2", siteId, [field], cold);
      const rows = await db.query<{ res: Res; bucket: number; n: number }>(q.text, q.values);
      for (const r of rows.rows) values.set(`${r.res}${r.bucket}`, Number(r.n));
    }
    await Promise.all(
      held.map(async (b) => {
        const n =
          field === 'visitors' ? await hot.countUniques(siteId, [uniqueOf(b)]) : ((await hot.counters(siteId, totalsOf(b)))[field] ?? 0);
        values.set(`${b.res}${b.bucket}`, n);
      }),
    );
    const sumOf = (terms: readonly Term[]) => {
      let n = 0;
      for (const { bucket, sign } of terms) n += sign * (values.get(`${bucket.res}${bucket.bucket}`) ?? 0);
      // A day and an hour taken away are read at slightly different moments: an event landing
      // in between could make the current day -1 for that moment.
      return Math.max(0, n);
    };
    let next = 0;
    return Promise.all(
      slots.map((slot) =>
        field === 'visitors' && slot.buckets.length > 1 ? visitors(siteId, slot.buckets) : sumOf(summed[next++] as Term[]),
      ),
    );
  }

  /** Visitors seen in the last windowMs. */
  const live = (siteId: string, windowMs: number) => hot.liveSince(siteId, now() - windowMs);

  return { totals, visitors, ranking, series, live };
}

export type StatsReader = ReturnType<typeof createStatsReader>;
