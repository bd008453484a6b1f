import { COUNTED_KINDS } from './event-row.js';
import { aggregateExpr, NONE, propValueSql } from './event-sql.js';

// A finished day's event figures by custom property, written beside its compacted file by the
// compaction that makes the day one file. A breakdown by a property otherwise reads every event's
// properties (JSON text) and groups every event by value and visitor; here one key's rows hold
// those groups for the day already, a fraction of the events.
//
// For each of the day's MAX_PROP_KEYS most frequent keys: a row per (value, visitor, bot flag),
// the value "(none)" for the visitor's events without the key, as the breakdown names them
// (grouping by the stored text costs less than by a COALESCE of it). And a row per (visitor, bot
// flag) with no key, over all of the visitor's events: a key the day lacks is "(none)" for all.

/**
 * Keys a props file holds at most, the day's most frequent: each costs rows for every visitor of
 * the day (its "(none)"), so a site sending many rare keys would otherwise grow the file and its
 * compaction without bound. Breakdowns by the others read the day's events.
 */
export const MAX_PROP_KEYS = 20;

/** The keys a props file holds (`keys`) and whether they are all of the day's (`complete`): a key of neither is absent from the day. */
export interface PropKeys {
  keys: readonly string[];
  complete: boolean;
}

/** The event aggregates (src/events/event-sql.ts) a props row carries: every one a property breakdown can ask that needs no other column. */
export const PROP_FIGURES = ['pageviews', 'events', 'clicks', 'engagements', 'engaged_ms', 'revenue'] as const;

/** DuckDB type of each column of a props file, in file order (the site and day are its folder's). */
export const PROP_COLUMNS = {
  /** NULL in a visitor's totals. */
  key: 'VARCHAR',
  /** "(none)" (NONE) where the events lack the key, and in a visitor's totals. */
  value: 'VARCHAR',
  visitor_h: 'UBIGINT',
  bot: 'BOOLEAN',
  pageviews: 'BIGINT',
  events: 'BIGINT',
  clicks: 'BIGINT',
  engagements: 'BIGINT',
  engaged_ms: 'BIGINT',
  revenue: 'DOUBLE',
} as const satisfies Record<string, string> & Record<(typeof PROP_FIGURES)[number], string>;

/** Each counted event's property keys, a row per key, from `events` (a FROM source). */
const keysOf = (events: string) => `SELECT unnest(json_keys(props)) AS key FROM ${events} WHERE ${COUNTED_KINDS} AND props IS NOT NULL`;

/** Which keys the props file `file` (an SQL path) holds, given the day's event files (`events`, a FROM source). */
export function propKeysSql(file: string, events: string): string {
  return `SELECT coalesce(list(key ORDER BY key) FILTER (WHERE key IS NOT NULL), []::VARCHAR[]) AS keys,
    (SELECT count(DISTINCT key) FROM (${keysOf(events)})) <= ${MAX_PROP_KEYS} AS complete
    FROM (SELECT DISTINCT key FROM read_parquet(${file}))`;
}

/** The SELECT that makes a props file's rows from a day's event files (`events`, a FROM source), ordered by key, value and visitor. */
export function propsSql(events: string): string {
  const figures = PROP_FIGURES.map((f) => `${aggregateExpr(f)}::${PROP_COLUMNS[f]} AS ${f}`);
  const columns = 'visitor_h, bot, kind, product, engaged_ms, revenue';
  return `WITH e AS (SELECT ${columns}, props FROM ${events} WHERE ${COUNTED_KINDS}),
    keys AS (SELECT key FROM (${keysOf('e')}) GROUP BY key ORDER BY count(*) DESC, key LIMIT ${MAX_PROP_KEYS})
    SELECT key, value, visitor_h, bot, ${figures.join(', ')}
    FROM (SELECT keys.key, coalesce(${propValueSql('keys.key')}, '${NONE}') AS value, ${columns} FROM e CROSS JOIN keys
          UNION ALL SELECT NULL, '${NONE}', ${columns} FROM e)
    GROUP BY key, value, visitor_h, bot
    ORDER BY key, value, visitor_h`;
}
