import type { Db, Queryable } from '../storage/db.js';
import type { Keys } from '../storage/keys.js';
import type { Realtime } from '../storage/realtime.js';
import type { DeltaSink } from './flush.js';
import { perSiteTargets, type SiteSource, type TargetProvider } from './flusher.js';

// Analytics counters live hot in Redis hashes ({s:<site>}:<suffix>, field) and durably in
// PostgreSQL's counters table under the name "<suffix>|<field>". Suffixes are built from escaped
// ids (keys.part), so they hold no '|': the first '|' splits a name back into key and field.

export function durableName(suffix: string, field: string): string {
  return `${suffix}|${field}`;
}

export function splitDurableName(name: string): { suffix: string; field: string } {
  const at = name.indexOf('|');
  return { suffix: name.slice(0, at), field: name.slice(at + 1) };
}

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

/** Writes a site's durable counter values into the real-time layer (embedded start, rebuild). */
export async function restoreAnalyticsCounters(
  deps: { db: Db; realtime: Realtime; keys: Keys },
  siteId: string,
): Promise<number> {
  const result = await deps.db.query<{ name: string; value: number }>(
    'SELECT name, value FROM counters WHERE site_id = $1',
    [siteId],
  );
  const byKey = new Map<string, Record<string, number>>();
  for (const row of result.rows) {
    const { suffix, field } = splitDurableName(row.name);
    const key = deps.keys.siteKey(siteId, suffix);
    let fields = byKey.get(key);
    if (!fields) byKey.set(key, (fields = {}));
    fields[field] = row.value;
  }
  for (const [key, fields] of byKey) await deps.realtime.hset(key, fields);
  return result.rows.length;
}

/** Flush targets: every site's analytics buffer. */
export function analyticsTargets(deps: { keys: Keys; sites: SiteSource }): TargetProvider {
  return perSiteTargets(deps.sites, (siteId) => [{ buffer: deps.keys.analyticsBuffer(siteId), sink: counterSink(siteId) }]);
}
