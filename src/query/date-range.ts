import { TallyError } from '../errors.js';
import { instantOf, localDate, startOfDay, startOfHour, startOfMonth, wallTime } from '../time/zone.js';
import type { Comparison, TimeRange } from './query.js';

// A query's date_range as an instant range in the site's time zone, and the range a comparison
// looks at. Named periods end with the current day (hour, minute) included, as the stats
// routes' periods do; `[from, to]` includes both ends.

export const DATE_RANGE_NAMES = ['realtime', 'today', '24h', '7d', '30d', '12mo', 'all'] as const;
export type DateRangeName = (typeof DATE_RANGE_NAMES)[number];

/** Longest custom range, in days (ten years). */
export const MAX_RANGE_DAYS = 3660;
const MINUTE = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;

const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;
/** An ISO 8601 time; without Z or an offset it is a wall time in the site's zone. */
const TIME = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(\.\d{1,3})?)?(Z|[+-]\d{2}:?\d{2})?$/;

const invalid = (path: string, message: string) => new TallyError('invalid_request', message, path);

export function namedRange(name: DateRangeName, zone: string, nowMs: number): TimeRange {
  const minute = Math.floor(nowMs / MINUTE) * MINUTE;
  switch (name) {
    case 'realtime':
      return { fromMs: minute - 29 * MINUTE, toMs: minute + MINUTE };
    case 'today':
      return { fromMs: startOfDay(zone, nowMs), toMs: startOfDay(zone, nowMs, 1) };
    case '24h': {
      const hour = startOfHour(zone, nowMs);
      return { fromMs: hour - 23 * HOUR, toMs: hour + HOUR };
    }
    case '7d':
      return { fromMs: startOfDay(zone, nowMs, -6), toMs: startOfDay(zone, nowMs, 1) };
    case '30d':
      return { fromMs: startOfDay(zone, nowMs, -29), toMs: startOfDay(zone, nowMs, 1) };
    case '12mo':
      return { fromMs: startOfMonth(zone, nowMs, -11), toMs: startOfMonth(zone, nowMs, 1) };
    case 'all':
      return { fromMs: 0, toMs: startOfDay(zone, nowMs, 1) };
  }
}

function validDate(year: number, month: number, day: number): boolean {
  const d = new Date(Date.UTC(year, month - 1, day));
  return year >= 1970 && d.getUTCFullYear() === year && d.getUTCMonth() === month - 1 && d.getUTCDate() === day;
}

/** One end of a custom range: a date (its day's start; for `to`, its day's end) or a time. */
function parseEnd(value: unknown, zone: string, end: boolean, path: string): number {
  const message = 'Use a date (YYYY-MM-DD) or an ISO 8601 time (2025-03-01T10:00:00Z; without an offset it is in the site zone).';
  if (typeof value !== 'string' || value.length > 40) throw invalid(path, message);
  const date = DATE.exec(value);
  if (date) {
    const [y, m, d] = [Number(date[1]), Number(date[2]), Number(date[3])];
    if (!validDate(y, m, d)) throw invalid(path, `${value} is not a date.`);
    return instantOf(zone, y, m, d + (end ? 1 : 0));
  }
  const time = TIME.exec(value);
  if (!time) throw invalid(path, message);
  const [y, m, d, h, min] = [1, 2, 3, 4, 5].map((i) => Number(time[i]));
  if (!validDate(y as number, m as number, d as number) || (h as number) > 23 || (min as number) > 59 || Number(time[6] ?? 0) > 59) {
    throw invalid(path, `${value} is not a time.`);
  }
  let ms: number;
  if (time[8] !== undefined) ms = Date.parse(time[8] === 'Z' ? value : value.replace(/([+-]\d{2})(\d{2})$/, '$1:$2'));
  else {
    ms = instantOf(zone, y as number, m as number, d as number, h as number, min as number);
    ms += Number(time[6] ?? 0) * 1000 + Math.round(Number(time[7] ?? 0) * 1000);
  }
  if (Number.isNaN(ms)) throw invalid(path, `${value} is not a time.`);
  // Both ends are included: the range runs to the end of the `to` instant's millisecond.
  return end ? ms + 1 : ms;
}

/** The query's date_range (a name, or [from, to]) as a range; `path` is its pointer. */
export function parseDateRange(value: unknown, zone: string, nowMs: number, path: string): TimeRange {
  if (typeof value === 'string') {
    if (!(DATE_RANGE_NAMES as readonly string[]).includes(value)) {
      throw invalid(path, `date_range is one of ${DATE_RANGE_NAMES.join(', ')}, or [from, to].`);
    }
    return namedRange(value as DateRangeName, zone, nowMs);
  }
  if (!Array.isArray(value) || value.length !== 2)
    throw invalid(path, `date_range is one of ${DATE_RANGE_NAMES.join(', ')}, or [from, to].`);
  const fromMs = parseEnd(value[0], zone, false, `${path}/0`);
  const toMs = parseEnd(value[1], zone, true, `${path}/1`);
  if (toMs <= fromMs) throw invalid(`${path}/1`, 'The end of date_range must not be before its start.');
  if (toMs - fromMs > MAX_RANGE_DAYS * DAY) throw invalid(`${path}/1`, `A date_range spans at most ${MAX_RANGE_DAYS} days.`);
  return { fromMs, toMs };
}

/** True when both ends are the starts of days in the zone (then comparisons move by whole days). */
function wholeDays(range: TimeRange, zone: string): boolean {
  return startOfDay(zone, range.fromMs) === range.fromMs && startOfDay(zone, range.toMs) === range.toMs;
}

/** A year earlier on the zone's clocks (29 February becomes 1 March). */
function yearEarlier(ms: number, zone: string): number {
  const w = wallTime(zone, ms);
  return instantOf(zone, w.year - 1, w.month, w.day, w.hour, w.minute) + (ms % MINUTE);
}

/** The range a comparison looks at: the same length just before, or the same dates a year before. */
export function comparisonRange(kind: Comparison, range: TimeRange, zone: string): TimeRange {
  if (kind === 'year_over_year') return { fromMs: yearEarlier(range.fromMs, zone), toMs: yearEarlier(range.toMs, zone) };
  if (wholeDays(range, zone)) {
    // Whole local days: as many days before (a DST change makes one of them 23 or 25 hours).
    const days = Math.round((Date.parse(localDate(zone, range.toMs)) - Date.parse(localDate(zone, range.fromMs))) / DAY);
    return { fromMs: startOfDay(zone, range.fromMs, -days), toMs: range.fromMs };
  }
  return { fromMs: range.fromMs - (range.toMs - range.fromMs), toMs: range.fromMs };
}
