import type { EventRow } from '../src/events/event-row.js';
import { openEventStore } from '../src/events/open-event-store.js';
import { eventRow as completeRow } from './stored-events.js';

// The query tests' events: rows with every column of the event store filled, written through the
// store's own writer into real Parquet files in a temporary folder, read by its DuckDB.

/** The event store over a temporary folder (removed by close()). */
export function openTestEventStore() {
  return openEventStore({ eventsDir: undefined, claimIdleMs: 30_000 });
}

let n = 0;

/** An event row with every column filled by default (a human page view of / on example.com). */
export function eventRow(over: Partial<EventRow> & Pick<EventRow, 'ts' | 'visitor'>): EventRow {
  n += 1;
  return completeRow(over.site_id ?? 'site', over.message_id ?? `m${n}`, over.ts, {
    session: `${over.visitor}-s`,
    hostname: 'example.com',
    browser: 'Chrome',
    ...over,
  });
}
