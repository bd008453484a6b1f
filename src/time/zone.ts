// Wall-clock arithmetic in a site's IANA time zone, with the runtime's own zone data (Intl):
// where a day, week or month starts there, as UTC instants. DST days are 23 or 25 hours long;
// a wall time that does not exist (spring forward) resolves as if the clocks had not moved yet
// (02:30 on Berlin's spring day is 03:30 CEST), and a repeated one (fall back) to its later
// instance: Temporal's 'compatible' rule for the first, simply the second pass for the other.

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

/** True when the runtime knows the IANA zone (e.g. `Europe/Berlin`, `UTC`). */
export function isTimeZone(zone: string): boolean {
  if (zone.length === 0 || zone.length > 64) return false;
  try {
    formatter(zone);
    return true;
  } catch {
    return false;
  }
}

/** The wall time in `zone` at instant `ms`. */
export function wallTime(zone: string, ms: number): WallTime {
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

/** Offset of `zone` from UTC at instant `ms`, in ms (Berlin in winter: +3,600,000). */
export function offsetMs(zone: string, ms: number): number {
  const w = wallTime(zone, ms);
  const asUtc = Date.UTC(w.year, w.month - 1, w.day, w.hour, w.minute, w.second);
  return asUtc - (ms - (((ms % 1000) + 1000) % 1000));
}

/**
 * The instant at which `zone`'s clocks show the wall time (month and day may overflow, as
 * Date.UTC's do: day 0 is the last day of the month before).
 */
export function instantOf(zone: string, year: number, month: number, day: number, hour = 0, minute = 0): number {
  const wall = Date.UTC(year, month - 1, day, hour, minute);
  // Two passes settle on the offset in force at the result (DST changes between guess and result).
  const ms = wall - offsetMs(zone, wall);
  return wall - offsetMs(zone, ms);
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

/** Start of the hour in `zone` that holds `ms` (differs from UTC's in zones offset by 30 or 45 minutes). */
export function startOfHour(zone: string, ms: number): number {
  const w = wallTime(zone, ms);
  return ms - (((((w.minute * 60 + w.second) * 1000 + (ms % 1000)) % 3_600_000) + 3_600_000) % 3_600_000);
}

/** The local date (YYYY-MM-DD) in `zone` at instant `ms`. */
export function localDate(zone: string, ms: number): string {
  const w = wallTime(zone, ms);
  return `${String(w.year).padStart(4, '0')}-${String(w.month).padStart(2, '0')}-${String(w.day).padStart(2, '0')}`;
}
