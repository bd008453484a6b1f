import type { WhereSql } from './event-source.js';

// The parts of a query that funnels and retention take in the query API's own forms
// (API.md "Query API"): parsed by the query parser, so every route reads them alike.

export interface TimeRange {
  /** Inclusive, epoch ms. */
  fromMs: number;
  /** Exclusive, epoch ms. */
  toMs: number;
}

export interface QueryInputs {
  /** A `date_range` in the site's zone; a 400 invalid_request at `path` when it is bad. */
  dateRange(value: unknown, zone: string, nowMs: number, path: string): TimeRange;
  /** `filters` (absent: none) as SQL over the site's events; a 400 invalid_request at the bad part. */
  filters(value: unknown, siteId: string, path: string): Promise<WhereSql>;
}
