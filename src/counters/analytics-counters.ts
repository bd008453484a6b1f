import type { Db, Queryable } from '../storage/db.js';
import type { Keys } from '../storage/keys.js';
import type { Realtime } from '../storage/realtime.js';
import { parseDurableName, type UnknownNames } from './counter-names.js';
import type { DeltaSink } from './flush.js';
import { perSiteTargets, type SiteSource, type TargetProvider } from './flusher.js';

// Analytics counters live hot in the real-time layer (a figure's hash, field) and durably in
// PostgreSQL's counters table under the durable name "<suffix>|<field>" (counter-names.ts).

/**
 * Applies a flushed batch of one site's counter deltas: one statement for the whole batch, its
 * rows as one JSON document (see rollupSink: pg's text-array serialization blocks the event loop).
 */
export function counterSink(siteId: string): DeltaSink {
  return async (tx: Queryable, names, deltas) => {
    await tx.query(
      `INSERT INTO counters (site_id, name, value)
       SELECT $1, t.n, t.d FROM json_to_recordset($2::json) AS t(n text, d int8)
       ON CONFLICT (site_id, name) DO UPDATE SET value = counters.value + excluded.value`,
      [siteId, JSON.stringify(names.map((n, i) => ({ n, d: deltas[i] ?? 0 })))],
    );
  };
}

/** Figures written back per call. */
const RESTORE_CHUNK = 500;

/** Writes a site's durable counter values into the real-time layer (embedded start, rebuild). */
export async function restoreAnalyticsCounters(
  deps: { db: Db; realtime: Pick<Realtime, 'analytics'> },
  siteId: string,
  unknown: UnknownNames,
): Promise<number> {
  const result = await deps.db.query<{ name: string; value: number }>('SELECT name, value FROM counters WHERE site_id = $1', [siteId]);
  const bySuffix = new Map<string, Record<string, number>>();
  const bad: string[] = [];
  for (const row of result.rows) {
    const parsed = parseDurableName(row.name);
    if (!parsed) {
      bad.push(row.name);
      continue;
    }
    let fields = bySuffix.get(parsed.suffix);
    if (!fields) bySuffix.set(parsed.suffix, (fields = {}));
    fields[parsed.field] = Number(row.value);
  }
  if (bad.length > 0) unknown(`counters:${siteId}`, bad);
  const items = [...bySuffix].map(([suffix, values]) => ({ kind: 'counters' as const, suffix, values }));
  for (let i = 0; i < items.length; i += RESTORE_CHUNK) await deps.realtime.analytics.restore(siteId, items.slice(i, i + RESTORE_CHUNK));
  return result.rows.length;
}

/** Flush targets: every site's analytics buffer. */
export function analyticsTargets(deps: { keys: Keys; sites: SiteSource }): TargetProvider {
  return perSiteTargets(deps.sites, (siteId) => [{ buffer: deps.keys.analyticsBuffer(siteId), sink: counterSink(siteId) }]);
}
