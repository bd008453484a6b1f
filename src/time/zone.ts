// Wall-clock arithmetic in a site's IANA time zone, with the runtime's own zone data (Intl):
// where a day, week, month or hour starts there, as UTC instants. DST days are 23 or 25 hours
// long. A wall time that occurs twice (fall back) means its first instance; one that does not
// occur (spring forward) means the instant the clocks jumped past it, shifted by the jump
// (02:30 on Berlin's spring day is 03:30 CEST): Temporal's 'compatible' rule. So a day starts at
// the first instant that shows its date, also where DST changes at midnight (Santiago, Havana).

export interface WallTime {
  year: number;
  /** 1–12 */
  month: number;
  /** 1–31 */
  day: number;
  hour: number;
  minute: number;
  second: number;
}

const MINUTE = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;
/** IANA names are letters, digits and `_+-/`; the longest is under 40 characters. */
const ZONE_NAME = /^[A-Za-z0-9_+\-/]{1,64}$/;

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(zone: string): Intl.DateTimeFormat {
  let f = formatters.get(zone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: zone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(zone, f);
  }
  return f;
}

/**
 * The name to store for a zone the runtime knows (`europe/berlin` → `Europe/Berlin`), or null.
 * An alias keeps the spelling it was given: the runtime would answer `Asia/Calcutta` for
 * `Asia/Kolkata`, which is not what the user chose.
 */
export function zoneName(zone: string): string | null {
  if (!ZONE_NAME.test(zone)) return null;
  let resolved: string;
  try {
    resolved = formatter(zone).resolvedOptions().timeZone;
  } catch {
    return null;
  }
  return resolved.toLowerCase() === zone.toLowerCase() ? resolved : zone;
}

/** True when the runtime knows the IANA zone (e.g. `Europe/Berlin`, `UTC`). */
export function isTimeZone(zone: string): boolean {
  return zoneName(zone) !== null;
}

/** The wall time as Intl reads it: slow, so offsetMs keeps what it learns. */
function readWallTime(zone: string, ms: number): WallTime {
  const parts: Record<string, number> = {};
  for (const p of formatter(zone).formatToParts(new Date(ms))) {
    if (p.type !== 'literal') parts[p.type] = Number(p.value);
  }
  return {
    year: parts.year ?? 1970,
    month: parts.month ?? 1,
    day: parts.day ?? 1,
    hour: parts.hour ?? 0,
    minute: parts.minute ?? 0,
    second: parts.second ?? 0,
  };
}

function readOffset(zone: string, ms: number): number {
  const w = readWallTime(zone, ms);
  const asUtc = Date.UTC(w.year, w.month - 1, w.day, w.hour, w.minute, w.second);
  return asUtc - (ms - (((ms % 1000) + 1000) % 1000));
}

/** Offsets of whole UTC hours in which the zone's offset does not change, by zone and hour. */
const hourOffsets = new Map<string, number>();
const MAX_CACHED_HOURS = 100_000;

/** Offset of `zone` from UTC at instant `ms`, in ms (Berlin in winter: +3,600,000). */
export function offsetMs(zone: string, ms: number): number {
  // Zones change their offset at most once in an hour: the same offset at an hour's first and
  // last second holds for the whole hour, and is kept; an hour with a change is read each time.
  const hour = Math.floor(ms / HOUR);
  const key = `${zone}|${hour}`;
  const cached = hourOffsets.get(key);
  if (cached !== undefined) return cached;
  const first = readOffset(zone, hour * HOUR);
  if (first !== readOffset(zone, hour * HOUR + HOUR - 1000)) return readOffset(zone, ms);
  if (hourOffsets.size >= MAX_CACHED_HOURS) hourOffsets.clear();
  hourOffsets.set(key, first);
  return first;
}

/** The wall time in `zone` at instant `ms`. */
export function wallTime(zone: string, ms: number): WallTime {
  const d = new Date(ms + offsetMs(zone, ms));
  return {
    year: d.getUTCFullYear(),
    month: d.getUTCMonth() + 1,
    day: d.getUTCDate(),
    hour: d.getUTCHours(),
    minute: d.getUTCMinutes(),
    second: d.getUTCSeconds(),
  };
}

/**
 * The instant at which `zone`'s clocks show the wall time (month and day may overflow, as
 * Date.UTC's do: day 0 is the last day of the month before). The offsets in force a day before
 * and a day after are the candidates (no zone changes its offset twice within two days): each
 * one that gives back the wall time is an instance of it; none means a gap.
 */
export function instantOf(zone: string, year: number, month: number, day: number, hour = 0, minute = 0): number {
  const wall = Date.UTC(year, month - 1, day, hour, minute);
  const before = offsetMs(zone, wall - DAY);
  const after = offsetMs(zone, wall + DAY);
  let first: number | undefined;
  for (const offset of before === after ? [before] : [before, after]) {
    const ms = wall - offset;
    if (offsetMs(zone, ms) === offset && (first === undefined || ms < first)) first = ms;
  }
  // In a gap, the offset before the change carries the wall time past it.
  return first ?? wall - before;
}

/** Start of the day in `zone` that holds instant `ms`, plus `days` days (negative: earlier). */
export function startOfDay(zone: string, ms: number, days = 0): number {
  const w = wallTime(zone, ms);
  return instantOf(zone, w.year, w.month, w.day + days);
}

/** Start of the ISO week (Monday) in `zone` that holds `ms`, plus `weeks` weeks. */
export function startOfWeek(zone: string, ms: number, weeks = 0): number {
  const w = wallTime(zone, ms);
  const weekday = (new Date(Date.UTC(w.year, w.month - 1, w.day)).getUTCDay() + 6) % 7; // Monday 0
  return instantOf(zone, w.year, w.month, w.day - weekday + 7 * weeks);
}

/** Start of the month in `zone` that holds `ms`, plus `months` months. */
export function startOfMonth(zone: string, ms: number, months = 0): number {
  const w = wallTime(zone, ms);
  return instantOf(zone, w.year, w.month + months, 1);
}

/**
 * Start of the local hour that holds `ms`: the last instant at or before it whose wall clock
 * shows a whole hour. It differs from UTC's hour in zones offset by 30 or 45 minutes; a repeated
 * hour (fall back) is an hour of its own, so a 25-hour day has 25 of them. Where DST moves the
 * clocks by 30 minutes (Lord Howe Island), the hour around the change lasts 90 minutes.
 */
export function startOfHour(zone: string, ms: number): number {
  const w = wallTime(zone, ms);
  const start = ms - ((w.minute * 60 + w.second) * 1000 + (((ms % 1000) + 1000) % 1000));
  const s = wallTime(zone, start);
  return s.minute === 0 && s.second === 0 ? start : startOfHour(zone, start - 1);
}

/** Start of the local hour after the one that starts at `hourStart`. */
export function nextHour(zone: string, hourStart: number): number {
  // An hour lasts at least 60 minutes, so the hour that holds this instant is the next one.
  return startOfHour(zone, hourStart + 2 * HOUR - 1);
}

const pad = (n: number, width = 2) => String(Math.abs(n)).padStart(width, '0');

/** The local date (YYYY-MM-DD) in `zone` at instant `ms`. */
export function localDate(zone: string, ms: number): string {
  const w = wallTime(zone, ms);
  return `${pad(w.year, 4)}-${pad(w.month)}-${pad(w.day)}`;
}

/**
 * The instant as ISO 8601 in `zone`'s wall time with its offset (`2026-10-25T02:00:00.000+01:00`):
 * the same instant as the UTC form, and it reads as the site's clock did.
 */
export function localIso(zone: string, ms: number): string {
  const w = wallTime(zone, ms);
  const offsetMinutes = Math.round(offsetMs(zone, ms) / MINUTE);
  const sign = offsetMinutes < 0 ? '-' : '+';
  const millis = pad(((ms % 1000) + 1000) % 1000, 3);
  return (
    `${pad(w.year, 4)}-${pad(w.month)}-${pad(w.day)}T${pad(w.hour)}:${pad(w.minute)}:${pad(w.second)}.${millis}` +
    `${sign}${pad(Math.floor(Math.abs(offsetMinutes) / 60))}:${pad(Math.abs(offsetMinutes) % 60)}`
  );
}
