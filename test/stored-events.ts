import type { EventRow } from '../src/events/event-row.js';
import type { EventStore } from '../src/events/event-store.js';

// Reads what the columnar event store holds for a site, as the query API does: a snapshot of
// every day, scanned through the store's DuckDB. `sql` names the rows as `events` (without the
// partition columns DuckDB reads from the path).

export async function storedEvents(store: Pick<EventStore, 'snapshot' | 'sql'>, siteId: string, sql: string, params: unknown[] = []) {
  const snapshot = await store.snapshot(siteId, -8.64e15, 8.64e15);
  try {
    if (snapshot.files.length === 0) return [];
    return await store.sql.all(`WITH events AS (SELECT * FROM read_parquet($1, union_by_name = true, hive_partitioning = false)) ${sql}`, [
      snapshot.files,
      ...params,
    ]);
  } finally {
    snapshot.release();
  }
}

/** A complete row with plain values, for tests. */
export function eventRow(siteId: string, id: string, ts: number, extra: Partial<EventRow> = {}): EventRow {
  return {
    site_id: siteId,
    message_id: id,
    ts,
    type: 'page',
    kind: 'pageview',
    name: null,
    visitor: `v-${id}`,
    session: `s-${id}`,
    user_id: null,
    hostname: 'shop.example',
    page: '/',
    entry_page: '/',
    source: 'Direct',
    referrer: null,
    referrer_host: null,
    utm_source: null,
    utm_medium: null,
    utm_campaign: null,
    utm_term: null,
    utm_content: null,
    browser: 'Firefox',
    os: 'Linux',
    device: 'desktop',
    country: null,
    region: null,
    product: null,
    revenue: null,
    engaged_ms: 0,
    props: {},
    bot: false,
    ...extra,
  };
}
