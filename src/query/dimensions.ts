// The dimensions of the query API (API.md "Query API"): what each one groups and filters by, as
// a column of the event store's rows. Session-level columns (entry_page, source, referrer, utm_*)
// hold the session's first values on every event of the session, so filtering rows by them
// filters whole sessions; exit_page is derived per session at query time.

/** A dimension that is one column (or an expression over one row) of the event rows. */
export interface ColumnDimension {
  kind: 'column';
  name: string;
  /** SQL over one row of the scanned events (`ev`); never user text. */
  sql: string;
  /** The same on every event of a session (the session's first values): groups visits without looking at events. */
  session?: true;
  /** exit_page: needs the per-session aggregate. */
  perSession?: true;
}

export interface PropDimension {
  kind: 'prop';
  name: string;
  /** The custom property's name (bound as a parameter). */
  key: string;
}

export interface GoalDimension {
  kind: 'goal';
  name: 'goal';
}

export const TIME_UNITS = ['minute', 'hour', 'day', 'week', 'month'] as const;
export type TimeUnit = (typeof TIME_UNITS)[number];

export interface TimeDimension {
  kind: 'time';
  name: string;
  unit: TimeUnit;
}

export type Dimension = ColumnDimension | PropDimension | GoalDimension | TimeDimension;
/** What a filter condition may name: everything but time (the date range says when). */
export type FilterDimension = ColumnDimension | PropDimension | GoalDimension;

const column = (name: string, sql = name): ColumnDimension => ({ kind: 'column', name, sql });
const sessionColumn = (name: string): ColumnDimension => ({ kind: 'column', name, sql: name, session: true });

export const COLUMN_DIMENSIONS: ReadonlyMap<string, ColumnDimension> = new Map(
  [
    column('page'),
    sessionColumn('entry_page'),
    { kind: 'column', name: 'exit_page', sql: 'exit_page', session: true, perSession: true } satisfies ColumnDimension,
    column('hostname'),
    sessionColumn('source'),
    sessionColumn('referrer'),
    // The referrer's host alone (what GET /v1/stats/top?dimension=referrer ranks).
    sessionColumn('referrer_host'),
    sessionColumn('utm_source'),
    sessionColumn('utm_medium'),
    sessionColumn('utm_campaign'),
    sessionColumn('utm_term'),
    sessionColumn('utm_content'),
    column('browser'),
    column('os'),
    column('device'),
    column('country'),
    column('region'),
    column('event', 'name'),
    column('product'),
    column('user', 'user_id'),
  ].map((d) => [d.name, d]),
);

/** Longest custom property name a query may name. */
export const MAX_PROP_NAME_LENGTH = 100;
export { NONE } from '../events/event-sql.js';

/**
 * The dimension a name stands for, or undefined. Plausible's prefixed names (`event:page`,
 * `visit:source`, `event:goal`, `event:props:plan`, `event:name`) are accepted too.
 */
export function dimensionNamed(raw: string): Dimension | undefined {
  let name = raw;
  if (name.startsWith('event:') || name.startsWith('visit:')) {
    name = name.slice(name.indexOf(':') + 1);
    if (name === 'name') name = 'event';
  }
  if (name === 'goal') return { kind: 'goal', name: 'goal' };
  if (name.startsWith('props:')) {
    const key = name.slice('props:'.length);
    if (key.length === 0 || key.length > MAX_PROP_NAME_LENGTH) return undefined;
    return { kind: 'prop', name: `props:${key}`, key };
  }
  if (name.startsWith('time:')) {
    const unit = name.slice('time:'.length);
    return (TIME_UNITS as readonly string[]).includes(unit) ? { kind: 'time', name, unit: unit as TimeUnit } : undefined;
  }
  return COLUMN_DIMENSIONS.get(name);
}
