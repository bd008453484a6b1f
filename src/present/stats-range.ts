import { RES_SECONDS, type Res } from '../counters/counter-names.js';
import { TallyError } from '../errors.js';
import { bucketOf } from '../process/buckets.js';
import { instantOf, localIso, nextHour, offsetMs, startOfDay, startOfHour } from '../time/zone.js';

// Periods of the stats API as time ranges in the site's time zone, and ranges as the fewest UTC
// time buckets that cover them exactly (whole days, then whole hours, then minutes at the
// edges). A local day of Berlin is 23–25 hour buckets (or a UTC day and an hour); one of Kolkata
// (+05:30) is 30 minutes, 23 hours and 30 minutes. The counters keep every resolution in
// PostgreSQL forever (rollups, uniques), so any local range is cut from them exactly. UTC sites
// take the arithmetic below without zone look-ups.

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
  /** The site's IANA time zone: days, hours and labels follow it. */
  zone: string;
}

/** One point of a timeseries: its start as the API writes it, and the buckets that cover it. */
export interface Slot {
  t: string;
  buckets: Bucket[];
  /** For sums only, when shorter than `buckets`: the same span as buckets added and taken away. */
  terms?: Term[];
}

export interface Term {
  bucket: Bucket;
  sign: 1 | -1;
}

export interface Bucket {
  res: Res;
  /** Start, epoch seconds. */
  bucket: number;
}

const invalid = (path: string, message: string) => new TallyError('invalid_request', message, path);

/** A date, or a date and time without an offset: the site's wall clock. */
const WALL = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?)?$/;

function parseInstant(value: string, path: string, endOfDay: boolean, zone: string): number {
  const bad = () => invalid(path, `${path.slice(1)} must be a date (YYYY-MM-DD) or an ISO 8601 time.`);
  if (value.length > 40) throw bad();
  const wall = WALL.exec(value);
  if (!wall || zone === 'UTC') {
    const ms = Date.parse(wall ? `${wall[4] === undefined ? `${value}T00:00:00` : value}Z` : value);
    if (Number.isNaN(ms)) throw bad();
    // A date as `to` means the whole of that day.
    return wall && wall[4] === undefined && endOfDay ? ms + DAY : ms;
  }
  const [year, month, day, hour, minute, second] = wall.slice(1).map((n) => (n === undefined ? 0 : Number(n))) as number[];
  if (Number.isNaN(Date.parse(`${value.slice(0, 10)}T00:00:00Z`)) || (hour as number) > 23 || (minute as number) > 59) throw bad();
  const nextDay = wall[4] === undefined && endOfDay ? 1 : 0;
  return instantOf(zone, year as number, month as number, (day as number) + nextDay, hour, minute) + (second as number) * 1000;
}

function customInterval(span: number): Interval {
  if (span <= 2 * HOUR) return 'minute';
  if (span <= 2 * DAY) return 'hour';
  return 'day';
}

export function resolvePeriod(query: { period?: Period; from?: string; to?: string }, nowMs: number, zone: string): Range {
  const period = query.period ?? (query.from !== undefined || query.to !== undefined ? 'custom' : '30d');
  if (period !== 'custom' && (query.from !== undefined || query.to !== undefined)) {
    throw invalid(query.from !== undefined ? '/from' : '/to', 'from and to go with period=custom only.');
  }
  const minute = Math.floor(nowMs / MINUTE) * MINUTE;
  const utc = zone === 'UTC';
  const hour = utc ? Math.floor(nowMs / HOUR) * HOUR : startOfHour(zone, nowMs);
  const day = utc ? Math.floor(nowMs / DAY) * DAY : startOfDay(zone, nowMs);
  const tomorrow = utc ? day + DAY : startOfDay(zone, nowMs, 1);
  const daysBefore = (n: number) => (utc ? day - n * DAY : startOfDay(zone, nowMs, -n));
  switch (period) {
    case 'realtime':
      return { from: minute - 29 * MINUTE, to: minute + MINUTE, interval: 'minute', zone };
    case 'today':
      return { from: day, to: tomorrow, interval: 'hour', zone };
    case '24h':
      return { from: hour - 23 * HOUR, to: utc ? hour + HOUR : nextHour(zone, hour), interval: 'hour', zone };
    case '7d':
      return { from: daysBefore(6), to: tomorrow, interval: 'day', zone };
    case '30d':
      return { from: daysBefore(29), to: tomorrow, interval: 'day', zone };
    case 'custom': {
      if (query.from === undefined) throw invalid('/from', 'period=custom needs from (and to).');
      if (query.to === undefined) throw invalid('/to', 'period=custom needs to (and from).');
      const from = Math.floor(parseInstant(query.from, '/from', false, zone) / MINUTE) * MINUTE;
      const to = Math.ceil(parseInstant(query.to, '/to', true, zone) / MINUTE) * MINUTE;
      if (to <= from) throw invalid('/to', 'to must be after from.');
      // Local days: a DST change inside the range makes them an hour longer or shorter.
      const dst = utc ? 0 : Math.abs(offsetMs(zone, to) - offsetMs(zone, from));
      if (to - from > MAX_CUSTOM_DAYS * DAY + dst) throw invalid('/to', `A custom range spans at most ${MAX_CUSTOM_DAYS} days.`);
      return { from, to, interval: customInterval(to - from), zone };
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

const tooMany = (count: number, interval: Interval) =>
  invalid('/interval', `That is ${count} ${interval}s; a timeseries answers at most ${MAX_POINTS} points: use a longer interval.`);

/**
 * The points of a timeseries: every interval (a minute, or the site's local hour or day) that
 * overlaps the range, in time order, each with the buckets that cover it. A UTC site's points
 * are one bucket each, labelled with their UTC start; a zoned site's are labelled with their
 * local start and offset (`2026-10-25T00:00:00.000+02:00`).
 */
export function intervalSlots(range: Range, interval: Interval): Slot[] {
  const res = INTERVALS[interval];
  if (range.zone === 'UTC' || interval === 'minute') {
    const size = RES_SECONDS[res];
    const first = bucketOf(res, range.from);
    const count = Math.ceil((range.to / 1000 - first) / size);
    if (count > MAX_POINTS) throw tooMany(count, interval);
    const label = range.zone === 'UTC' ? (ms: number) => new Date(ms).toISOString() : (ms: number) => localIso(range.zone, ms);
    const out: Slot[] = [];
    for (let i = 0; i < count; i++) {
      const bucket = first + i * size;
      out.push({ t: label(bucket * 1000), buckets: [{ res, bucket }] });
    }
    return out;
  }
  const zone = range.zone;
  const next = interval === 'hour' ? (t: number) => nextHour(zone, t) : (t: number) => startOfDay(zone, t, 1);
  const out: Slot[] = [];
  for (let t = interval === 'hour' ? startOfHour(zone, range.from) : startOfDay(zone, range.from); t < range.to; ) {
    if (out.length === MAX_POINTS) {
      const size = interval === 'hour' ? HOUR : DAY;
      throw tooMany(MAX_POINTS + Math.ceil((range.to - t) / size), interval);
    }
    const end = next(t);
    const buckets = cover({ from: t, to: end });
    const terms = interval === 'day' ? dayTerms(t, end) : undefined;
    out.push(terms && terms.length < buckets.length ? { t: localIso(zone, t), buckets, terms } : { t: localIso(zone, t), buckets });
    t = end;
  }
  return out;
}

/**
 * A local day holds no UTC day (Berlin's runs 23:00 to 23:00 UTC), so its cover is 23–25 hours;
 * as a sum it is the UTC day it overlaps most, plus the hours before it, less the hours after
 * (or the reverse, for zones behind UTC): one day and a few hours to read instead of 24 hours.
 */
function dayTerms(from: number, to: number): Term[] {
  const add = (range: { from: number; to: number }, sign: 1 | -1) => cover(range).map((bucket) => ({ bucket, sign }));
  const days = (a: number, b: number) => {
    const out: Term[] = [];
    for (let d = a; d < b; d += DAY) out.push({ bucket: { res: 'd', bucket: d / 1000 }, sign: 1 });
    return out;
  };
  const [upFrom, upTo] = [Math.ceil(from / DAY) * DAY, Math.ceil(to / DAY) * DAY];
  const [downFrom, downTo] = [Math.floor(from / DAY) * DAY, Math.floor(to / DAY) * DAY];
  if (upFrom - from + (upTo - to) <= from - downFrom + (to - downTo)) {
    return [...add({ from, to: upFrom }, 1), ...days(upFrom, upTo), ...add({ from: to, to: upTo }, -1)];
  }
  return [...days(downFrom, downTo), ...add({ from: downFrom, to: from }, -1), ...add({ from: downTo, to }, 1)];
}
