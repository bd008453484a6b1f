import type { EventRow } from '../src/events/event-row.js';
import { openEventStore } from '../src/events/open-event-store.js';
import type { EventSource } from '../src/query/run-query.js';

// The real event store in a temporary folder, for the tests of queries over events: rows go in
// through the store's append (Parquet segments per site and UTC day), queries read its snapshots
// through its DuckDB.

export interface TestEventStore {
  events: EventSource;
  /** Appends the rows, site by site. */
  write(rows: readonly EventRow[]): Promise<void>;
  /** Compacts the site's days as the compactor would: each finished day one file, with its summaries. */
  compact(siteId: string): Promise<void>;
  close(): Promise<void>;
}

export async function openTestEventStore(): Promise<TestEventStore> {
  const store = await openEventStore({ eventsDir: undefined, claimIdleMs: 30_000 });
  return {
    events: store,
    async write(rows) {
      const bySite = new Map<string, EventRow[]>();
      for (const row of rows) bySite.set(row.site_id, [...(bySite.get(row.site_id) ?? []), row]);
      for (const [site, list] of bySite) await store.append(site, list, { dirty: false });
    },
    async compact(siteId) {
      await store.maintainSite(siteId);
    },
    close: () => store.close(),
  };
}
