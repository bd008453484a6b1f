import { localDate, offsetMs, startOfDay, startOfHour, startOfMonth, startOfWeek, wallTime } from '../time/zone.js';
import type { TimeUnit } from './dimensions.js';

// Time buckets of the query API in the site's time zone: the SQL that puts an event time (a UTC
// TIMESTAMP column) into its bucket, as the bucket start's epoch ms; the label an answer shows;
// and the bucket's ordinal within a range (how a comparison pairs its buckets with the query's).

const MINUTE = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;

/**
 * SQL for the start (epoch ms, BIGINT) of the bucket holding `ts`, with `zone` the placeholder
 * of the zone's name. Minutes are the same everywhere; an hour starts where the zone's clock
 * shows a whole hour (zones 30 or 45 minutes off UTC); days, weeks (ISO, Monday) and months
 * are truncated on the zone's wall clock and turned back into instants.
 */
export function bucketSql(unit: TimeUnit, ts: string, zone: string): string {
  const minute = `epoch_ms(date_trunc('minute', ${ts}))`;
  const local = `timezone(${zone}, timezone('UTC', ${ts}))`;
  switch (unit) {
    case 'minute':
      return minute;
    case 'hour':
      return `(${minute} - minute(${local}) * 60000)`;
    default:
      return `epoch_ms(timezone(${zone}, date_trunc('${unit}', ${local})))`;
  }
}

const pad = (n: number, width = 2) => String(n).padStart(width, '0');

/** How an answer names a bucket: a local date for days, weeks and months; a local time with its offset otherwise. */
export function bucketLabel(unit: TimeUnit, startMs: number, zone: string): string {
  if (unit === 'day' || unit === 'week' || unit === 'month') return localDate(zone, startMs);
  const w = wallTime(zone, startMs);
  const offset = offsetMs(zone, startMs) / MINUTE;
  const sign = offset < 0 ? '-' : '+';
  const abs = Math.abs(offset);
  return `${localDate(zone, startMs)}T${pad(w.hour)}:${pad(w.minute)}:00${sign}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`;
}

/** The start of the bucket that holds `ms`. */
export function bucketStart(unit: TimeUnit, ms: number, zone: string): number {
  switch (unit) {
    case 'minute':
      return Math.floor(ms / MINUTE) * MINUTE;
    case 'hour':
      return startOfHour(zone, ms);
    case 'day':
      return startOfDay(zone, ms);
    case 'week':
      return startOfWeek(zone, ms);
    case 'month':
      return startOfMonth(zone, ms);
  }
}

/** The start of the bucket after the one starting at `startMs`. */
export function nextBucket(unit: TimeUnit, startMs: number, zone: string): number {
  switch (unit) {
    case 'minute':
      return startMs + MINUTE;
    case 'hour':
      return startOfHour(zone, startMs + HOUR + MINUTE);
    case 'day':
      return startOfDay(zone, startMs, 1);
    case 'week':
      return startOfWeek(zone, startMs, 1);
    case 'month':
      return startOfMonth(zone, startMs, 1);
  }
}

/** Which bucket of a range (0 = the one holding its start) the bucket starting at `startMs` is. */
export function bucketOrdinal(unit: TimeUnit, startMs: number, rangeFromMs: number, zone: string): number {
  const first = bucketStart(unit, rangeFromMs, zone);
  const days = () => Math.round((Date.parse(localDate(zone, startMs)) - Date.parse(localDate(zone, first))) / DAY);
  switch (unit) {
    case 'minute':
      return Math.round((startMs - first) / MINUTE);
    case 'hour':
      return Math.round((startMs - first) / HOUR);
    case 'day':
      return days();
    case 'week':
      return Math.round(days() / 7);
    case 'month': {
      const a = wallTime(zone, startMs);
      const b = wallTime(zone, first);
      return (a.year - b.year) * 12 + (a.month - b.month);
    }
  }
}
