// SQL over event rows that the query API and the day summaries (compaction.ts) must write alike:
// a summary's figures are the ones a query would compute from the events it summarises.

/** What a missing value (no country, no such property) is called in answers and filters (Plausible's word). */
export const NONE = '(none)';

/** The event aggregates the metrics read (src/query/build-sql.ts), by name: what they aggregate, over which rows. */
export const EVENT_AGGREGATES: Readonly<Record<string, { of: string; where?: string }>> = {
  pageviews: { of: 'count(*)', where: "kind = 'pageview'" },
  events: { of: 'count(*)', where: "kind = 'event'" },
  clicks: { of: 'count(*)', where: "kind = 'event' AND product IS NOT NULL" },
  visitors: { of: 'count(DISTINCT visitor_h)' },
  engagements: { of: 'count(*)', where: "kind = 'engagement' AND engaged_ms > 0" },
  engaged_ms: { of: 'sum(engaged_ms)', where: "kind = 'engagement' AND engaged_ms > 0" },
  conversions: { of: 'count(*)' },
  revenue: { of: 'sum(revenue)' },
};

/** `name`'s aggregate over its rows and `also`'s. */
export function aggregateExpr(name: string, also?: string): string {
  const { of, where } = EVENT_AGGREGATES[name] ?? { of: 'NULL' };
  const rows = [where, also].filter((w) => w !== undefined);
  return `${of}${rows.length > 0 ? ` FILTER (WHERE ${rows.join(' AND ')})` : ''}`;
}

export const aggregateSql = (name: string, also?: string) => `${aggregateExpr(name, also)} AS ${name}`;

/**
 * A custom property's value (NULL when the event lacks it): `key` (SQL, a parameter or a column)
 * made a JSON pointer into props, its `~` and `/` escaped as RFC 6901 says.
 */
export const propValueSql = (key: string) => `json_extract_string(props, '/' || replace(replace(${key}, '~', '~0'), '/', '~1'))`;
