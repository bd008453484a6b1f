import type { EventRow } from '../src/events/event-row.js';
import { openEventStore } from '../src/events/open-event-store.js';

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
  return {
    site_id: 'site',
    message_id: `m${n}`,
    type: 'page',
    kind: 'pageview',
    name: null,
    session: `${over.visitor}-s`,
    user_id: null,
    hostname: 'example.com',
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
    browser: 'Chrome',
    os: 'Linux',
    device: 'desktop',
    country: null,
    region: null,
    product: null,
    revenue: null,
    engaged_ms: 0,
    props: {},
    bot: false,
    ...over,
  };
}
