import type { GoalRepository } from '../goals/goal-repository.js';
import { filterSql } from './build-sql.js';
import { parseDateRange } from './date-range.js';
import { NO_FILTER, type WhereSql } from './event-source.js';
import { parseFilters } from './parse-query.js';
import type { TimeRange } from './query.js';

// The parts of a query that funnels and retention take in the query API's own forms
// (API.md "Query API"), read by the query parser so that every route reads them alike.

export interface QueryInputs {
  /** A `date_range` in the site's zone; a 400 invalid_request at `path` when it is bad. */
  dateRange(value: unknown, zone: string, nowMs: number, path: string): TimeRange;
  /** `filters` (absent: none) as SQL over the site's events; a 400 invalid_request at /filters/… when bad. */
  filters(value: unknown, siteId: string): Promise<WhereSql>;
}

export function createQueryInputs(goals: GoalRepository): QueryInputs {
  return {
    dateRange: parseDateRange,
    async filters(value, siteId) {
      if (value === undefined) return NO_FILTER;
      const filter = parseFilters(value, await goals.list(siteId));
      return filter === null ? NO_FILTER : (params) => filterSql(filter, params);
    },
  };
}
