import type { EventStore } from '../src/events/event-store.js';

// Reads what the columnar event store holds for a site, as the query API does: a snapshot of
// every day, scanned through the store's DuckDB. `sql` names the rows as `events`.

export async function storedEvents(store: Pick<EventStore, 'snapshot' | 'sql'>, siteId: string, sql: string, params: unknown[] = []) {
  const snapshot = await store.snapshot(siteId, -8.64e15, 8.64e15);
  try {
    if (snapshot.files.length === 0) return [];
    return await store.sql.all(`WITH events AS (SELECT * FROM read_parquet($1, union_by_name = true)) ${sql}`, [
      snapshot.files,
      ...params,
    ]);
  } finally {
    snapshot.release();
  }
}
