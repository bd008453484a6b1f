import { TallyError } from '../errors.js';
import type { Goal } from '../goals/goal.js';
import { comparisonRange, parseDateRange } from './date-range.js';
import { type Dimension, dimensionNamed, type FilterDimension } from './dimensions.js';
import { GOAL_METRICS, isMetric, METRICS, type Metric } from './metrics.js';
import type { Comparison, ConditionOp, Filter, OrderBy, Query } from './query.js';

// A POST /v1/stats/query body, read whole into one Query before any SQL is built: every error
// is a 400 invalid_request whose path is the JSON pointer of the bad part (/filters/1/0,
// /metrics/2), and every limit below is checked here.

export const QUERY_LIMITS = {
  dimensions: 5,
  /** Conditions in one filter tree, counted over every level. */
  conditions: 50,
  /** Nesting of and / or / not. */
  depth: 5,
  valuesPerCondition: 100,
  valueLength: 1000,
  orderBy: 10,
  limit: 10_000,
  offset: 1_000_000,
} as const;

export const DEFAULT_LIMIT = 10_000;

const TOP_KEYS = new Set(['date_range', 'metrics', 'dimensions', 'filters', 'order_by', 'include', 'pagination']);
const CONDITION_OPS: readonly ConditionOp[] = ['is', 'is_not', 'contains', 'contains_not'];

export interface ParseContext {
  siteId: string;
  zone: string;
  nowMs: number;
  /** The site's goals: what goal filters and the goal dimension can name. */
  goals: readonly Goal[];
}

const invalid = (path: string, message: string) => new TallyError('invalid_request', message, path);
const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

function rejectUnknownKeys(value: Record<string, unknown>, allowed: ReadonlySet<string>, path: string): void {
  for (const key of Object.keys(value)) {
    if (!allowed.has(key)) throw invalid(`${path}/${key}`, `Unknown field ${key}; expected ${[...allowed].join(', ')}.`);
  }
}

function parseMetrics(value: unknown): Metric[] {
  if (!Array.isArray(value) || value.length === 0) throw invalid('/metrics', 'metrics is a non-empty list of metric names.');
  const seen = new Set<string>();
  return value.map((m, i) => {
    if (typeof m !== 'string' || !isMetric(m)) throw invalid(`/metrics/${i}`, `A metric is one of ${METRICS.join(', ')}.`);
    if (seen.has(m)) throw invalid(`/metrics/${i}`, `${m} is listed twice.`);
    seen.add(m);
    return m;
  });
}

function parseDimensions(value: unknown): Dimension[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw invalid('/dimensions', 'dimensions is a list of dimension names.');
  if (value.length > QUERY_LIMITS.dimensions) throw invalid('/dimensions', `A query has at most ${QUERY_LIMITS.dimensions} dimensions.`);
  const seen = new Set<string>();
  let times = 0;
  return value.map((d, i) => {
    const dimension = typeof d === 'string' ? dimensionNamed(d) : undefined;
    if (!dimension) throw invalid(`/dimensions/${i}`, `Unknown dimension ${JSON.stringify(d)}; see docs/query.md for the list.`);
    if (seen.has(dimension.name)) throw invalid(`/dimensions/${i}`, `${dimension.name} is listed twice.`);
    seen.add(dimension.name);
    if (dimension.kind === 'time' && ++times > 1) throw invalid(`/dimensions/${i}`, 'A query has at most one time dimension.');
    return dimension;
  });
}

/** Reads a filter tree; counts conditions in `budget` (shared over the tree). */
function parseFilter(value: unknown, path: string, depth: number, budget: { conditions: number }, goals: readonly Goal[]): Filter {
  if (!Array.isArray(value) || value.length === 0 || typeof value[0] !== 'string') {
    throw invalid(path, 'A filter is [op, dimension, [values…]], ["and"|"or", [filters…]] or ["not", filter].');
  }
  const op = value[0];
  if (op === 'and' || op === 'or' || op === 'not') {
    if (depth >= QUERY_LIMITS.depth) throw invalid(path, `Filters nest at most ${QUERY_LIMITS.depth} levels deep.`);
    if (value.length !== 2) throw invalid(path, `${op} takes ${op === 'not' ? 'one filter' : 'one list of filters'}.`);
    if (op === 'not') return { op, filter: parseFilter(value[1], `${path}/1`, depth + 1, budget, goals) };
    const list = value[1];
    if (!Array.isArray(list) || list.length === 0) throw invalid(`${path}/1`, `${op} takes a non-empty list of filters.`);
    return { op, filters: list.map((f, i) => parseFilter(f, `${path}/1/${i}`, depth + 1, budget, goals)) };
  }
  if (!(CONDITION_OPS as readonly string[]).includes(op)) {
    throw invalid(`${path}/0`, `A filter's operator is one of ${CONDITION_OPS.join(', ')}, and, or, not.`);
  }
  if (++budget.conditions > QUERY_LIMITS.conditions)
    throw invalid(path, `A query has at most ${QUERY_LIMITS.conditions} filter conditions.`);
  if (value.length !== 3) throw invalid(path, 'A condition is [op, dimension, [values…]].');
  const dimension = typeof value[1] === 'string' ? dimensionNamed(value[1]) : undefined;
  if (!dimension) throw invalid(`${path}/1`, `Unknown dimension ${JSON.stringify(value[1])}.`);
  if (dimension.kind === 'time') throw invalid(`${path}/1`, 'Time is not a filter: date_range says when.');
  const values = value[2];
  if (!Array.isArray(values) || values.length === 0) throw invalid(`${path}/2`, 'A condition takes a non-empty list of values.');
  if (values.length > QUERY_LIMITS.valuesPerCondition) {
    throw invalid(`${path}/2`, `A condition takes at most ${QUERY_LIMITS.valuesPerCondition} values.`);
  }
  values.forEach((v, i) => {
    if (typeof v !== 'string') throw invalid(`${path}/2/${i}`, 'Filter values are strings.');
    if (v.length > QUERY_LIMITS.valueLength)
      throw invalid(`${path}/2/${i}`, `A filter value has at most ${QUERY_LIMITS.valueLength} characters.`);
  });
  const strings = values as string[];
  const condition = { op: op as ConditionOp, dimension: dimension as FilterDimension, values: strings };
  if (dimension.kind !== 'goal') return condition;
  return { ...condition, goals: goalsNamed(condition.op, strings, goals, `${path}/2`) };
}

/** A query's filters (null for none, or an empty list), at /filters. */
export function parseFilters(value: unknown, goals: readonly Goal[]): Filter | null {
  if (value === undefined || (Array.isArray(value) && value.length === 0)) return null;
  return parseFilter(value, '/filters', 0, { conditions: 0 }, goals);
}

/** The goals a goal condition selects: by exact name for is / is_not, by part of it for contains. */
function goalsNamed(op: ConditionOp, values: readonly string[], goals: readonly Goal[], path: string): Goal[] {
  if (op === 'contains' || op === 'contains_not') return goals.filter((g) => values.some((v) => g.name.includes(v)));
  return values.map((v, i) => {
    const goal = goals.find((g) => g.name === v);
    if (!goal) throw invalid(`${path}/${i}`, `No goal is named ${JSON.stringify(v)} (POST /v1/goals defines one).`);
    return goal;
  });
}

/** Goal conditions that are the filter, or direct children of its top-level and: the ones conversion_rate can leave out. */
export function topLevelGoalConditions(filter: Filter | null): Filter[] {
  if (filter === null) return [];
  if ('dimension' in filter) return filter.dimension.kind === 'goal' ? [filter] : [];
  if (filter.op === 'and') return filter.filters.filter((f) => 'dimension' in f && f.dimension.kind === 'goal');
  return [];
}

function countGoalConditions(filter: Filter | null): number {
  if (filter === null) return 0;
  if ('dimension' in filter) return filter.dimension.kind === 'goal' ? 1 : 0;
  if (filter.op === 'not') return countGoalConditions(filter.filter);
  return filter.filters.reduce((n, f) => n + countGoalConditions(f), 0);
}

function parseOrderBy(value: unknown, metrics: readonly Metric[], dimensions: readonly Dimension[], raw: unknown): OrderBy[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw invalid('/order_by', 'order_by is a list of [metric or dimension, "asc"|"desc"].');
  if (value.length > QUERY_LIMITS.orderBy) throw invalid('/order_by', `order_by has at most ${QUERY_LIMITS.orderBy} entries.`);
  const given = Array.isArray(raw) ? raw : [];
  return value.map((entry, i) => {
    if (!Array.isArray(entry) || entry.length !== 2)
      throw invalid(`/order_by/${i}`, 'An order_by entry is [metric or dimension, "asc"|"desc"].');
    const [name, direction] = entry;
    if (direction !== 'asc' && direction !== 'desc') throw invalid(`/order_by/${i}/1`, 'The direction is asc or desc.');
    const metric = metrics.indexOf(name as Metric);
    if (metric >= 0) return { target: { kind: 'metric', index: metric }, direction };
    const canonical = typeof name === 'string' ? dimensionNamed(name)?.name : undefined;
    const dimension = dimensions.findIndex((d, k) => d.name === canonical || given[k] === name);
    if (dimension >= 0) return { target: { kind: 'dimension', index: dimension }, direction };
    throw invalid(`/order_by/${i}/0`, 'order_by names a metric or dimension of the query.');
  });
}

function parsePagination(value: unknown): { limit: number; offset: number } {
  if (value === undefined) return { limit: DEFAULT_LIMIT, offset: 0 };
  if (!isObject(value)) throw invalid('/pagination', 'pagination is {"limit", "offset"}.');
  rejectUnknownKeys(value, new Set(['limit', 'offset']), '/pagination');
  const read = (key: 'limit' | 'offset', min: number, max: number, fallback: number) => {
    const v = value[key];
    if (v === undefined) return fallback;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      throw invalid(`/pagination/${key}`, `${key} is a whole number from ${min} to ${max}.`);
    }
    return v;
  };
  return { limit: read('limit', 1, QUERY_LIMITS.limit, DEFAULT_LIMIT), offset: read('offset', 0, QUERY_LIMITS.offset, 0) };
}

function parseInclude(value: unknown): { comparison: Comparison | null; bots: boolean } {
  if (value === undefined) return { comparison: null, bots: false };
  if (!isObject(value)) throw invalid('/include', 'include is {"comparison"?, "bots"?}.');
  rejectUnknownKeys(value, new Set(['comparison', 'bots']), '/include');
  const { comparison, bots } = value;
  if (comparison !== undefined && comparison !== null && comparison !== 'previous_period' && comparison !== 'year_over_year') {
    throw invalid('/include/comparison', 'comparison is previous_period or year_over_year.');
  }
  if (bots !== undefined && typeof bots !== 'boolean') throw invalid('/include/bots', 'bots is true or false.');
  return { comparison: (comparison as Comparison | undefined) ?? null, bots: bots === true };
}

export function parseQuery(body: unknown, context: ParseContext): Query {
  if (!isObject(body)) throw invalid('', 'The query is a JSON object.');
  rejectUnknownKeys(body, TOP_KEYS, '');
  if (body['date_range'] === undefined)
    throw invalid('/date_range', 'date_range is required (e.g. "30d" or ["2025-01-01", "2025-01-31"]).');
  const range = parseDateRange(body['date_range'], context.zone, context.nowMs, '/date_range');
  const metrics = parseMetrics(body['metrics']);
  const dimensions = parseDimensions(body['dimensions']);
  const filters = parseFilters(body['filters'], context.goals);
  const orderBy = parseOrderBy(body['order_by'], metrics, dimensions, body['dimensions']);
  const { limit, offset } = parsePagination(body['pagination']);
  const include = parseInclude(body['include']);

  const byGoal = dimensions.some((d) => d.kind === 'goal');
  const goalConditions = countGoalConditions(filters);
  metrics.forEach((m, i) => {
    if (!GOAL_METRICS.has(m)) return;
    if (!byGoal && goalConditions === 0) throw invalid(`/metrics/${i}`, `${m} needs a goal dimension or a goal filter.`);
    if (m === 'conversion_rate' && topLevelGoalConditions(filters).length !== goalConditions) {
      throw invalid(`/metrics/${i}`, 'conversion_rate needs its goal filters at the top level (alone, or inside the top-level and).');
    }
  });
  if (include.comparison !== null && body['date_range'] === 'all') {
    throw invalid('/include/comparison', 'date_range "all" has no period to compare with.');
  }
  return {
    siteId: context.siteId,
    zone: context.zone,
    range,
    comparison:
      include.comparison === null ? null : { kind: include.comparison, range: comparisonRange(include.comparison, range, context.zone) },
    metrics,
    dimensions,
    filters,
    goals: context.goals,
    orderBy,
    limit,
    offset,
    bots: include.bots ? 'include' : 'exclude',
  };
}
