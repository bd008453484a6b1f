import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  instantOf,
  isTimeZone,
  localDate,
  localIso,
  nextHour,
  offsetMs,
  startOfDay,
  startOfHour,
  startOfMonth,
  startOfWeek,
  wallTime,
  zoneName,
} from '../src/time/zone.js';
import { propertyParams } from './helpers.js';

// zone.ts against a brute force that only asks Intl for the wall clock, minute by minute.

const MINUTE = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;

const ZONES = [
  'UTC',
  'Europe/Berlin', // DST at 01:00 UTC
  'America/New_York', // behind UTC, DST at 02:00 local
  'America/St_Johns', // -03:30, with DST
  'Asia/Kolkata', // +05:30
  'Asia/Kathmandu', // +05:45
  'Pacific/Chatham', // +12:45 / +13:45
  'Pacific/Apia', // +13 (+14 with DST until 2021; skipped 30 Dec 2011)
  'Pacific/Kiritimati', // +14
  'Australia/Sydney', // southern hemisphere
  'Australia/Lord_Howe', // DST of 30 minutes
  'America/Santiago', // DST changes at midnight
  'America/Havana', // falls back from 01:00 to midnight
];

const formatters = new Map<string, Intl.DateTimeFormat>();

/** The wall clock as Intl shows it, asked afresh every time (zone.ts caches offsets). */
function intlWall(zone: string, ms: number) {
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
  const p = Object.fromEntries(f.formatToParts(new Date(ms)).map((x) => [x.type, Number(x.value)]));
  return { year: p.year, month: p.month, day: p.day, hour: p.hour, minute: p.minute, second: p.second } as Record<
    'year' | 'month' | 'day' | 'hour' | 'minute' | 'second',
    number
  >;
}

/** A wall time as a number (the UTC instant with the same fields), to compare wall times. */
const wallMs = (zone: string, ms: number) => {
  const w = intlWall(zone, ms);
  return Date.UTC(w.year, w.month - 1, w.day, w.hour, w.minute, w.second);
};

const intlDate = (zone: string, ms: number) => new Date(wallMs(zone, ms)).toISOString().slice(0, 10);

const floorMinute = (ms: number) => Math.floor(ms / MINUTE) * MINUTE;

/** The first instant of the run of minutes, back from ms, that `same` holds for. */
function scanBack(ms: number, same: (t: number) => boolean): number {
  let t = floorMinute(ms);
  while (same(t - MINUTE)) t -= MINUTE;
  return t;
}

function bruteStartOfDay(zone: string, ms: number): number {
  const date = intlDate(zone, ms);
  return scanBack(ms, (t) => intlDate(zone, t) === date);
}

function bruteStartOfHour(zone: string, ms: number): number {
  let t = floorMinute(ms);
  while (intlWall(zone, t).minute !== 0) t -= MINUTE;
  return t;
}

/** Every instant (minute steps) showing the wall time; in a gap, 'compatible': the wall time less the offset before it. */
function bruteInstantOf(zone: string, wall: number): number {
  let lastBefore = wall - 15 * HOUR;
  for (let t = wall - 15 * HOUR; t <= wall + 15 * HOUR; t += MINUTE) {
    const w = wallMs(zone, t);
    if (w === wall) return t;
    if (w < wall) lastBefore = t;
  }
  return wall - (wallMs(zone, lastBefore) - lastBefore);
}

// 1995–2035: old DST rules, Apia's skipped day, rules the runtime projects forward.
const instant = fc.integer({ min: Date.UTC(1995, 0, 1), max: Date.UTC(2035, 0, 1) });
const zone = fc.constantFrom(...ZONES);

/** Instants within a day of a DST change of the zone (found by the offset moving), else any. */
const nearChange = fc.tuple(zone, instant, fc.integer({ min: -DAY, max: DAY })).map(([z, ms, delta]) => {
  const year = new Date(ms).getUTCFullYear();
  const start = Date.UTC(year, 0, 1);
  let prev = offsetMs(z, start);
  for (let t = start + DAY; t < start + 366 * DAY; t += DAY) {
    const o = offsetMs(z, t);
    if (o !== prev && t > ms - 200 * DAY) {
      // Narrow it to the minute.
      let lo = t - DAY;
      let hi = t;
      while (hi - lo > MINUTE) {
        const mid = floorMinute((lo + hi) / 2);
        if (offsetMs(z, mid) === prev) lo = mid;
        else hi = mid;
      }
      return { zone: z, ms: hi + delta };
    }
    prev = o;
  }
  return { zone: z, ms };
});
const anyOrNearChange = fc.oneof(
  zone.chain((z) => instant.map((ms) => ({ zone: z, ms }))),
  nearChange,
);

describe('zone', () => {
  it('day starts are the first minute showing the date', () => {
    fc.assert(
      fc.property(anyOrNearChange, ({ zone, ms }) => {
        const start = startOfDay(zone, ms);
        expect(start).toBe(bruteStartOfDay(zone, ms));
        expect(startOfDay(zone, ms, 1)).toBe(bruteNextDay(zone, ms));
        // The day before, unless the zone skipped that date (Kiribati on 31 Dec 1994, Samoa on 30 Dec 2011).
        const w = intlWall(zone, start);
        const dayBefore = new Date(Date.UTC(w.year, w.month - 1, w.day - 1)).toISOString().slice(0, 10);
        if (intlDate(zone, start - 1) === dayBefore) expect(startOfDay(zone, ms, -1)).toBe(bruteStartOfDay(zone, start - 1));
      }),
      propertyParams(50, 25_000),
    );
  });

  it('hour starts are the last minute at or before the instant with a whole-hour wall clock', () => {
    fc.assert(
      fc.property(anyOrNearChange, ({ zone, ms }) => {
        const start = startOfHour(zone, ms);
        expect(start).toBe(bruteStartOfHour(zone, ms));
        const next = nextHour(zone, start);
        expect(next).toBeGreaterThan(ms);
        expect(intlWall(zone, next).minute).toBe(0);
        // No whole hour between: the brute force from just before the next start lands back here.
        expect(bruteStartOfHour(zone, next - 1)).toBe(start);
      }),
      propertyParams(150, 20_000),
    );
  });

  it('instantOf finds the first instance of a wall time, and carries one in a gap forward', () => {
    fc.assert(
      fc.property(anyOrNearChange, fc.integer({ min: 0, max: 23 }), fc.integer({ min: 0, max: 59 }), ({ zone, ms }, hour, minute) => {
        const w = wallTime(zone, ms);
        const wall = Date.UTC(w.year, w.month - 1, w.day, hour, minute);
        expect(instantOf(zone, w.year, w.month, w.day, hour, minute)).toBe(bruteInstantOf(zone, wall));
      }),
      propertyParams(80, 25_000),
    );
  });

  it('weeks start on a Monday, months on the 1st, at the start of that day', () => {
    fc.assert(
      fc.property(anyOrNearChange, ({ zone, ms }) => {
        const week = startOfWeek(zone, ms);
        expect(week).toBeLessThanOrEqual(ms);
        expect(startOfWeek(zone, ms, 1)).toBeGreaterThan(ms);
        expect(week).toBe(startOfDay(zone, week));
        const w = wallTime(zone, week);
        expect(new Date(Date.UTC(w.year, w.month - 1, w.day)).getUTCDay()).toBe(1);
        const month = startOfMonth(zone, ms);
        expect(month).toBeLessThanOrEqual(ms);
        expect(startOfMonth(zone, ms, 1)).toBeGreaterThan(ms);
        expect(month).toBe(startOfDay(zone, month));
        expect(wallTime(zone, month).day).toBe(1);
      }),
      propertyParams(150, 20_000),
    );
  });

  it('localIso is the same instant, written in the wall clock with its offset', () => {
    fc.assert(
      fc.property(anyOrNearChange, ({ zone, ms }) => {
        const iso = localIso(zone, ms);
        expect(Date.parse(iso)).toBe(ms);
        expect(wallTime(zone, ms)).toEqual(intlWall(zone, ms));
        expect(localDate(zone, ms)).toBe(intlDate(zone, ms));
        const w = intlWall(zone, ms);
        expect(iso.slice(0, 19)).toBe(
          new Date(Date.UTC(w.year, w.month - 1, w.day, w.hour, w.minute, w.second)).toISOString().slice(0, 19),
        );
        if (zone === 'UTC') expect(iso).toBe(new Date(ms).toISOString().replace('Z', '+00:00'));
      }),
      propertyParams(300, 10_000),
    );
  });

  it('days around known DST changes, +05:30 and +14 (hand-checked)', () => {
    // Berlin falls back on 25 Oct 2026 (25 hours) and springs forward on 29 Mar 2026 (23 hours).
    const oct25 = startOfDay('Europe/Berlin', Date.UTC(2026, 9, 25, 12));
    expect(new Date(oct25).toISOString()).toBe('2026-10-24T22:00:00.000Z');
    expect(startOfDay('Europe/Berlin', oct25, 1) - oct25).toBe(25 * HOUR);
    const mar29 = startOfDay('Europe/Berlin', Date.UTC(2026, 2, 29, 12));
    expect(new Date(mar29).toISOString()).toBe('2026-03-28T23:00:00.000Z');
    expect(startOfDay('Europe/Berlin', mar29, 1) - mar29).toBe(23 * HOUR);
    // The repeated 02:00 is two hours of its own, told apart by their offsets.
    expect(localIso('Europe/Berlin', Date.UTC(2026, 9, 25, 0))).toBe('2026-10-25T02:00:00.000+02:00');
    expect(localIso('Europe/Berlin', Date.UTC(2026, 9, 25, 1))).toBe('2026-10-25T02:00:00.000+01:00');
    expect(nextHour('Europe/Berlin', Date.UTC(2026, 9, 25, 0))).toBe(Date.UTC(2026, 9, 25, 1));
    // 02:30 on the spring day does not exist: it is 03:30 CEST.
    expect(instantOf('Europe/Berlin', 2026, 3, 29, 2, 30)).toBe(Date.UTC(2026, 2, 29, 1, 30));
    expect(new Date(startOfDay('Asia/Kolkata', Date.UTC(2026, 0, 10, 20))).toISOString()).toBe('2026-01-10T18:30:00.000Z');
    expect(new Date(startOfHour('Asia/Kolkata', Date.UTC(2026, 0, 10, 20, 10))).toISOString()).toBe('2026-01-10T19:30:00.000Z');
    expect(new Date(startOfDay('Pacific/Kiritimati', Date.UTC(2026, 0, 10, 9))).toISOString()).toBe('2026-01-09T10:00:00.000Z');
    expect(localDate('Pacific/Kiritimati', Date.UTC(2026, 0, 10, 9))).toBe('2026-01-10');
    // Santiago springs forward at midnight: 6 Sep 2026 starts at 01:00 -03.
    expect(localIso('America/Santiago', startOfDay('America/Santiago', Date.UTC(2026, 8, 6, 15)))).toBe('2026-09-06T01:00:00.000-03:00');
  });

  it('zone names: IANA names and aliases, case fixed, nothing else', () => {
    expect(zoneName('Europe/Berlin')).toBe('Europe/Berlin');
    expect(zoneName('europe/berlin')).toBe('Europe/Berlin');
    expect(zoneName('utc')).toBe('UTC');
    expect(zoneName('Asia/Kolkata')).toBe('Asia/Kolkata');
    expect(zoneName('Asia/Calcutta')).toBe('Asia/Calcutta');
    for (const bad of ['', 'Mars/Olympus', '+05:30', 'Z', 'Europe/Berlin ', '../etc', 'x'.repeat(65), 'Europe\u0000Berlin']) {
      expect(zoneName(bad), bad).toBeNull();
      expect(isTimeZone(bad)).toBe(false);
    }
  });
});

function bruteNextDay(zone: string, ms: number): number {
  const date = intlDate(zone, ms);
  let t = floorMinute(ms);
  while (intlDate(zone, t) === date) t += MINUTE;
  return t;
}
