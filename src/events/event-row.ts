// One accepted, enriched event as the columnar event store keeps it (Parquet, partitioned by
// site and UTC day). The query API (src/query) scans these columns; the processor's sink writes
// them. Session-level columns (session, entry_page, source, referrer*, utm_*) carry the values of
// the session's first event, as Plausible's sessions do: "visitors from Google" are the sessions
// that came from Google, with every event of theirs. exit_page is derived at query time (the last
// page view of the session).

import type { DaySummaries } from './layout.js';
import type { PropKeys } from './props-file.js';

/** DuckDB type of each column, in file order. */
export const EVENT_COLUMNS = {
  site_id: 'VARCHAR',
  message_id: 'VARCHAR',
  /** Event time, UTC, millisecond precision. */
  ts: 'TIMESTAMP_MS',
  /** Segment call type: page, screen, track, identify, group, alias. */
  type: 'VARCHAR',
  /** pageview | event | engagement | other (src/process/enrich.ts). */
  kind: 'VARCHAR',
  /** Track event name; NULL for page views and engagements. */
  name: 'VARCHAR',
  /** userId, else anonymousId, else the daily-salted hash. */
  visitor: 'VARCHAR',
  /** A visitor's events with gaps of at most 30 minutes share it. */
  session: 'VARCHAR',
  /** The signed-in user (userId), NULL when anonymous. */
  user_id: 'VARCHAR',
  hostname: 'VARCHAR',
  /** Path of the page (page views, and events sent from a page). */
  page: 'VARCHAR',
  /** Session-level: first page of the session. */
  entry_page: 'VARCHAR',
  /** Session-level: utm_source, else referrer host, else 'Direct'. */
  source: 'VARCHAR',
  /** Session-level: full referrer URL. */
  referrer: 'VARCHAR',
  referrer_host: 'VARCHAR',
  utm_source: 'VARCHAR',
  utm_medium: 'VARCHAR',
  utm_campaign: 'VARCHAR',
  utm_term: 'VARCHAR',
  utm_content: 'VARCHAR',
  browser: 'VARCHAR',
  os: 'VARCHAR',
  device: 'VARCHAR',
  /** ISO 3166-1 alpha-2, NULL when unknown. The IP itself is never stored. */
  country: 'VARCHAR',
  region: 'VARCHAR',
  product: 'VARCHAR',
  revenue: 'DOUBLE',
  engaged_ms: 'BIGINT',
  /**
   * Custom properties (`props:<name>` in queries): a JSON object of strings, NULL when there are
   * none. Text, not a MAP: DuckDB reads a key of it with json_extract_string several times cheaper
   * than a MAP lookup, which decodes the map's nested lists on every row.
   */
  props: 'VARCHAR',
  bot: 'BOOLEAN',
} as const;

export type EventColumn = keyof typeof EVENT_COLUMNS;

/**
 * Columns the store computes from a row as it writes it (SQL over EVENT_COLUMNS), after them in
 * file order: the visitor and the session as UBIGINT keys, bytes 8–15 of their MD5 digest read
 * little-endian (md5_number_lower: the same in every DuckDB version, and computable by any
 * engine). Queries count distinct visitors and group sessions by these: a fixed-width key hashes
 * and compares several times cheaper than text. Two of n visitors share a key with probability
 * about n^2 / 2^65 (3e-8 for a million).
 */
export const DERIVED_COLUMNS = {
  visitor_h: 'md5_number_lower(visitor)',
  session_h: 'md5_number_lower(session)',
} as const;

/**
 * The events the metrics count: page views, events and engagements (src/process/enrich.ts
 * EventKind), written as the one kind they are not. DuckDB pushes an inequality into the Parquet
 * scan, where an IN list over those three is evaluated row by row after it.
 */
export const COUNTED_KINDS = "kind <> 'other'";

/** Every column of the store's files, in file order. */
export const STORED_COLUMNS: readonly string[] = [...Object.keys(EVENT_COLUMNS), ...Object.keys(DERIVED_COLUMNS)];

export interface EventRow {
  site_id: string;
  message_id: string;
  /** Epoch ms. */
  ts: number;
  type: string;
  kind: string;
  name: string | null;
  visitor: string;
  session: string;
  user_id: string | null;
  hostname: string | null;
  page: string | null;
  entry_page: string | null;
  source: string;
  referrer: string | null;
  referrer_host: string | null;
  utm_source: string | null;
  utm_medium: string | null;
  utm_campaign: string | null;
  utm_term: string | null;
  utm_content: string | null;
  browser: string;
  os: string;
  device: string;
  country: string | null;
  region: string | null;
  product: string | null;
  revenue: number | null;
  engaged_ms: number;
  /** Written as the JSON text of this object, NULL when it is empty. */
  props: Readonly<Record<string, string>>;
  bot: boolean;
}

/** Read side of the event store: what the query API scans. */
export interface EventScan {
  /**
   * A consistent set of the site's files that hold every event with fromMs <= ts < toMs (and
   * maybe more: partitions are whole UTC days). Each (site, message_id) is in exactly one row
   * of them. Call release() when the query is done (files replaced by a compaction are kept
   * until then).
   */
  snapshot(siteId: string, fromMs: number, toMs: number): Promise<EventSnapshot>;
}

export interface EventSnapshot {
  /** Every event file of `days`. */
  files: readonly string[];
  days: readonly SnapshotDay[];
  release(): void;
}

/** One UTC day of a snapshot: its event files (holding only the site's rows) and its summaries, if they summarise them all. */
export interface SnapshotDay {
  /** The day's first ms. */
  startMs: number;
  files: readonly string[];
  /** Paths of the summaries (compaction.ts) of the day's one compacted file, when no segment is beside it. */
  summaries?: DaySummaries;
  /** With them: the custom property keys the props summary has rows of (props-file.ts). */
  propKeys?: PropKeys;
}

/** Runs read-only SQL over snapshot files on the store's DuckDB (values as DuckDB's JS values). */
export interface EventSql {
  all(sql: string, params?: readonly unknown[]): Promise<Record<string, unknown>[]>;
}
