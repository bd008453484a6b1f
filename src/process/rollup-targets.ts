import { parseDurableName, parseFigure, type UnknownNames } from '../counters/counter-names.js';
import type { DeltaSink } from '../counters/flush.js';
import { perSiteTargets, type SiteSource, type TargetProvider } from '../counters/flusher.js';
import type { Queryable } from '../storage/db.js';
import type { Keys } from '../storage/keys.js';
import type { Realtime } from '../storage/realtime.js';

// Write-behind of the analytics time buckets through the shared counters engine:
//   rollups: the buffered deltas of every totals field and ranking, added to the rollups table;
//   uniques: the HyperLogLogs that changed since their last copy, copied whole (a newer state
//            only ever holds more visitors, so a replayed or late copy is harmless).

/**
 * Adds a flushed batch of rollup deltas: one statement for the whole batch. The rows go as one
 * JSON document: pg serializes text arrays element by element, synchronously, which for a large
 * batch holds the event loop far longer than JSON.stringify does.
 */
export function rollupSink(siteId: string, unknown: UnknownNames): DeltaSink {
  return async (tx: Queryable, names, deltas) => {
    const rows: { r: string; b: number; d: string; v: string; m: string; n: number }[] = [];
    const bad: string[] = [];
    names.forEach((name, i) => {
      const parsed = parseDurableName(name);
      const n = deltas[i] ?? 0;
      const f = parsed?.figure;
      if (f?.kind === 'totals') rows.push({ r: f.res, b: f.bucket, d: '', v: '', m: parsed?.field ?? '', n });
      else if (f?.kind === 'ranking') rows.push({ r: f.res, b: f.bucket, d: f.dim, v: parsed?.field ?? '', m: f.metric, n });
      else bad.push(name);
    });
    if (bad.length > 0) unknown(`rollups:${siteId}`, bad);
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

/** Copies the HyperLogLogs named by a flushed batch (figure suffixes) to the uniques table. */
export function uniquesSink(deps: { realtime: Pick<Realtime, 'analytics'> }, siteId: string, unknown: UnknownNames): DeltaSink {
  return async (tx: Queryable, suffixes) => {
    const named: { suffix: string; res: string; bucket: number; dim: string; value: string }[] = [];
    const bad: string[] = [];
    for (const suffix of suffixes) {
      const f = parseFigure(suffix);
      if (f?.kind === 'unique') named.push({ suffix, res: f.res, bucket: f.bucket, dim: f.dim ?? '', value: f.value ?? '' });
      else bad.push(suffix);
    }
    if (bad.length > 0) unknown(`uniques:${siteId}`, bad);
    const copies = await deps.realtime.analytics.copyUniques(
      siteId,
      named.map((n) => n.suffix),
    );
    const rows = {
      res: [] as string[],
      bucket: [] as number[],
      dim: [] as string[],
      value: [] as string[],
      hll: [] as Buffer[],
      visitors: [] as number[],
    };
    named.forEach((n, i) => {
      const copy = copies[i];
      // Gone already: a bucket written past its retention, which expired before this copy.
      if (!copy) return;
      rows.res.push(n.res);
      rows.bucket.push(n.bucket);
      rows.dim.push(n.dim);
      rows.value.push(n.value);
      rows.hll.push(copy.hll);
      rows.visitors.push(copy.visitors);
    });
    if (rows.res.length === 0) return;
    await tx.query(
      `INSERT INTO uniques (site_id, res, bucket, dim, value, hll, visitors)
       SELECT $1, t.res, t.bucket, t.dim, t.value, t.hll, t.visitors
       FROM unnest($2::text[], $3::int8[], $4::text[], $5::text[], $6::bytea[], $7::int8[]) AS t(res, bucket, dim, value, hll, visitors)
       ON CONFLICT (site_id, res, bucket, dim, value) DO UPDATE SET hll = excluded.hll, visitors = excluded.visitors`,
      [siteId, rows.res, rows.bucket, rows.dim, rows.value, rows.hll, rows.visitors],
    );
  };
}

/** Flush targets: every site's rollup and uniques buffers. */
export function rollupTargets(
  deps: { realtime: Pick<Realtime, 'analytics'>; keys: Keys; sites: SiteSource },
  unknown: UnknownNames,
): TargetProvider {
  return perSiteTargets(deps.sites, (siteId) => [
    { buffer: deps.keys.rollupBuffer(siteId), sink: rollupSink(siteId, unknown) },
    { buffer: deps.keys.uniquesBuffer(siteId), sink: uniquesSink(deps, siteId, unknown) },
  ]);
}
