// The metrics of the query API and what each one means (docs/query.md says the same for users).
// Every figure is over human events (bots excluded unless asked) of kind page view, custom event
// or engagement, as the counters count them (src/process/aggregate.ts).

export const METRICS = [
  'visitors',
  'visits',
  'pageviews',
  'views_per_visit',
  'bounce_rate',
  'visit_duration',
  'events',
  'clicks',
  'time_on_page',
  'conversions',
  'conversion_rate',
  'revenue',
] as const;
export type Metric = (typeof METRICS)[number];

/** Metrics computed over sessions (visits) rather than single events. */
export const SESSION_METRICS: ReadonlySet<Metric> = new Set(['visits', 'views_per_visit', 'bounce_rate', 'visit_duration']);
/** Metrics that only mean something beside a goal (a goal dimension or filter). */
export const GOAL_METRICS: ReadonlySet<Metric> = new Set(['conversions', 'conversion_rate']);
/** Percentages (0–100): their comparison change is the difference in points, as Plausible's. */
export const RATE_METRICS: ReadonlySet<Metric> = new Set(['bounce_rate', 'conversion_rate']);

export const isMetric = (value: string): value is Metric => (METRICS as readonly string[]).includes(value);
