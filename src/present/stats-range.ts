import { RES_SECONDS, type Res } from '../counters/counter-names.js';
import { TallyError } from '../errors.js';
import { bucketOf } from '../process/buckets.js';

// Periods of the stats API as time ranges, and ranges as the fewest time buckets that cover
// them exactly (whole days, then whole hours, then minutes at the edges).

export const PERIODS = ['realtime', 'today', '24h', '7d', '30d', 'custom'] as const;
export type Period = (typeof PERIODS)[number];
export const INTERVALS = { minute: 'm', hour: 'h', day: 'd' } as const satisfies Record<string, Res>;
export type Interval = keyof typeof INTERVALS;

/** Longest custom range, in days. */
export const MAX_CUSTOM_DAYS = 731;
/** Most points a timeseries answers with. */
export const MAX_POINTS = 1500;

const MINUTE = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;

export interface Range {
  /** Start, ms, inclusive (minute-aligned). */
  from: number;
  /** End, ms, exclusive (minute-aligned). */
  to: number;
  /** The interval a timeseries of this period uses unless told otherwise. */
  interval: Interval;
}

export interface Bucket {
  res: Res;
  /** Start, epoch seconds. */
  bucket: number;
}

const invalid = (path: string, message: string) => new TallyError('invalid_request', message, path);

const DATE_ONLY = /^\d{4}-\d{2}-\d{2}$/;

function parseInstant(value: string, path: string, endOfDay: boolean): number {
  const ms = Date.parse(DATE_ONLY.test(value) ? `${value}T00:00:00Z` : value);
  if (Number.isNaN(ms) || value.length > 40) throw invalid(path, `${path.slice(1)} must be a date (YYYY-MM-DD) or an ISO 8601 time.`);
  // A date as `to` means the whole of that day.
  if (DATE_ONLY.test(value) && endOfDay) return ms + DAY;
  return ms;
}

function customInterval(span: number): Interval {
  if (span <= 2 * HOUR) return 'minute';
  if (span <= 2 * DAY) return 'hour';
  return 'day';
}

export function resolvePeriod(query: { period?: Period; from?: string; to?: string }, nowMs: number): Range {
  const period = query.period ?? (query.from !== undefined || query.to !== undefined ? 'custom' : '30d');
  if (period !== 'custom' && (query.from !== undefined || query.to !== undefined)) {
    throw invalid(query.from !== undefined ? '/from' : '/to', 'from and to go with period=custom only.');
  }
  const minute = Math.floor(nowMs / MINUTE) * MINUTE;
  const hour = Math.floor(nowMs / HOUR) * HOUR;
  const day = Math.floor(nowMs / DAY) * DAY;
  switch (period) {
    case 'realtime':
      return { from: minute - 29 * MINUTE, to: minute + MINUTE, interval: 'minute' };
    case 'today':
      return { from: day, to: day + DAY, interval: 'hour' };
    case '24h':
      return { from: hour - 23 * HOUR, to: hour + HOUR, interval: 'hour' };
    case '7d':
      return { from: day - 6 * DAY, to: day + DAY, interval: 'day' };
    case '30d':
      return { from: day - 29 * DAY, to: day + DAY, interval: 'day' };
    case 'custom': {
      if (query.from === undefined) throw invalid('/from', 'period=custom needs from (and to).');
      if (query.to === undefined) throw invalid('/to', 'period=custom needs to (and from).');
      const from = Math.floor(parseInstant(query.from, '/from', false) / MINUTE) * MINUTE;
      const to = Math.ceil(parseInstant(query.to, '/to', true) / MINUTE) * MINUTE;
      if (to <= from) throw invalid('/to', 'to must be after from.');
      if (to - from > MAX_CUSTOM_DAYS * DAY) throw invalid('/to', `A custom range spans at most ${MAX_CUSTOM_DAYS} days.`);
      return { from, to, interval: customInterval(to - from) };
    }
  }
}

/** The fewest buckets that cover [from, to) exactly: days where whole days fit, then hours, then minutes. */
export function cover(range: Pick<Range, 'from' | 'to'>): Bucket[] {
  const out: Bucket[] = [];
  let t = range.from;
  while (t < range.to) {
    let size = MINUTE;
    let res: Res = 'm';
    if (t % DAY === 0 && t + DAY <= range.to) {
      size = DAY;
      res = 'd';
    } else if (t % HOUR === 0 && t + HOUR <= range.to) {
      size = HOUR;
      res = 'h';
    }
    out.push({ res, bucket: t / 1000 });
    t += size;
  }
  return out;
}

/** The buckets of one interval that overlap [from, to), in time order. */
export function intervalBuckets(range: Pick<Range, 'from' | 'to'>, interval: Interval): Bucket[] {
  const res = INTERVALS[interval];
  const size = RES_SECONDS[res];
  const first = bucketOf(res, range.from);
  const count = Math.ceil((range.to / 1000 - first) / size);
  if (count > MAX_POINTS) {
    throw invalid('/interval', `That is ${count} ${interval}s; a timeseries answers at most ${MAX_POINTS} points: use a longer interval.`);
  }
  const out: Bucket[] = [];
  for (let i = 0; i < count; i++) out.push({ res, bucket: first + i * size });
  return out;
}
