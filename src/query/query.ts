import type { Goal } from '../goals/goal.js';
import type { Dimension, FilterDimension } from './dimensions.js';
import type { Metric } from './metrics.js';

// One query over the event store, parsed and validated whole (src/query/parse-query.ts); the SQL
// is built from this and nothing else (src/query/build-sql.ts).

export type ConditionOp = 'is' | 'is_not' | 'contains' | 'contains_not';

export type Filter =
  | { op: ConditionOp; dimension: FilterDimension; values: readonly string[]; goals?: readonly Goal[] }
  | { op: 'and' | 'or'; filters: readonly Filter[] }
  | { op: 'not'; filter: Filter };

/** A condition on goals names the goals its values select (resolved when parsed). */
export type Condition = Extract<Filter, { dimension: FilterDimension }>;

export interface TimeRange {
  /** Inclusive, epoch ms. */
  fromMs: number;
  /** Exclusive, epoch ms. */
  toMs: number;
}

export type Comparison = 'previous_period' | 'year_over_year';
export type BotsChoice = 'exclude' | 'include' | 'only';

export interface OrderBy {
  /** Index into metrics or dimensions. */
  target: { kind: 'metric' | 'dimension'; index: number };
  direction: 'asc' | 'desc';
}

export interface Query {
  siteId: string;
  /** The site's IANA time zone: days, weeks, months and date ranges follow it. */
  zone: string;
  range: TimeRange;
  comparison: { kind: Comparison; range: TimeRange } | null;
  metrics: readonly Metric[];
  dimensions: readonly Dimension[];
  filters: Filter | null;
  /** Every goal of the site a goal dimension breaks down by. */
  goals: readonly Goal[];
  orderBy: readonly OrderBy[];
  limit: number;
  offset: number;
  bots: BotsChoice;
}
