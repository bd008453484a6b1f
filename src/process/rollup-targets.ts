import type { DeltaSink } from '../counters/flush.js';
import { perSiteTargets, type TargetProvider } from '../counters/flusher.js';
import type { Queryable } from '../storage/db.js';
import type { Keys } from '../storage/keys.js';
import type { Realtime } from '../storage/realtime.js';
import { parseRollupName, parseUniqueSuffix } from './buckets.js';

// Write-behind of the analytics time buckets through the shared counters engine:
//   rollups: the buffered deltas of every totals field and ranking, added to the rollups table;
//   uniques: the HyperLogLogs that changed since their last copy, copied whole (a newer state
//            only ever holds more visitors, so a replayed or late copy is harmless).

/**
 * Adds a flushed batch of rollup deltas: one statement for the whole batch. The rows go as one
 * JSON document: pg serializes text arrays element by element, synchronously, which for the
 * large batches a saturated minute leaves held the event loop for long; JSON.stringify is native
 * and much quicker, and PostgreSQL reads either form as fast.
 */
export function rollupSink(siteId: string): DeltaSink {
  return async (tx: Queryable, names, deltas) => {
    const rows: { r: string; b: number; d: string; v: string; m: string; n: number }[] = [];
    names.forEach((name, i) => {
      const row = parseRollupName(name);
      if (row) rows.push({ r: row.res, b: row.bucket, d: row.dim, v: row.value, m: row.metric, n: deltas[i] ?? 0 });
    });
    if (rows.length === 0) return;
    await tx.query(
      `INSERT INTO rollups (site_id, res, bucket, dim, value, metric, count)
       SELECT $1, t.r, t.b, t.d, t.v, t.m, t.n
       FROM json_to_recordset($2::json) AS t(r text, b int8, d text, v text, m text, n int8)
       ON CONFLICT (site_id, res, bucket, dim, metric, value) DO UPDATE SET count = rollups.count + excluded.count`,
      [siteId, JSON.stringify(rows)],
    );
  };
}

/** Copies the HyperLogLogs named by a flushed batch (key suffixes) to the uniques table. */
export function uniquesSink(deps: { realtime: Realtime; keys: Keys }, siteId: string): DeltaSink {
  return async (tx: Queryable, suffixes) => {
    const keys = suffixes.map((s) => deps.keys.siteKey(siteId, s));
    const [dumps, counts] = await Promise.all([
      deps.realtime.dumpUniques(keys),
      Promise.all(keys.map((k) => deps.realtime.pfcount([k]))),
    ]);
    const res: string[] = [];
    const bucket: number[] = [];
    const dim: string[] = [];
    const value: string[] = [];
    const hll: Buffer[] = [];
    const visitors: number[] = [];
    suffixes.forEach((suffix, i) => {
      const row = parseUniqueSuffix(suffix);
      const dump = dumps[i];
      // Gone already: a bucket written past its retention, which expired before this copy.
      if (!row || !dump) return;
      res.push(row.res);
      bucket.push(row.bucket);
      dim.push(row.dim);
      value.push(row.value);
      hll.push(dump);
      visitors.push(counts[i] ?? 0);
    });
    if (res.length === 0) return;
    await tx.query(
      `INSERT INTO uniques (site_id, res, bucket, dim, value, hll, visitors)
       SELECT $1, t.res, t.bucket, t.dim, t.value, t.hll, t.visitors
       FROM unnest($2::text[], $3::int8[], $4::text[], $5::text[], $6::bytea[], $7::int8[]) AS t(res, bucket, dim, value, hll, visitors)
       ON CONFLICT (site_id, res, bucket, dim, value) DO UPDATE SET hll = excluded.hll, visitors = excluded.visitors`,
      [siteId, res, bucket, dim, value, hll, visitors],
    );
  };
}

/** Flush targets: every site's rollup and uniques buffers. */
export function rollupTargets(deps: {
  realtime: Realtime;
  keys: Keys;
  sites: { list(): Promise<{ id: string }[]> };
}): TargetProvider {
  return perSiteTargets(deps.sites, (siteId) => [
    { buffer: deps.keys.rollupBuffer(siteId), sink: rollupSink(siteId) },
    { buffer: deps.keys.uniquesBuffer(siteId), sink: uniquesSink(deps, siteId) },
  ]);
}
