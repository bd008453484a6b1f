import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RES_SECONDS } from '../src/counters/counter-names.js';
import { type Bucket, cover, intervalSlots, PERIODS, type Period, type Range, resolvePeriod } from '../src/present/stats-range.js';
import { localDate, wallTime } from '../src/time/zone.js';
import { propertyParams } from './helpers.js';

// Periods in a site's zone, and the UTC buckets that cover them, against plain definitions: a
// local day holds the instants that show its date (asked of Intl minute by minute), a cover is
// gap-free and exact, and a UTC site gets the same ranges and labels as before zones existed.

const MINUTE = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;
const ZONES = [
  'UTC',
  'Europe/Berlin',
  'America/New_York',
  'Asia/Kolkata',
  'Asia/Kathmandu',
  'Pacific/Kiritimati',
  'Australia/Sydney',
  'America/Santiago',
];

const zone = fc.constantFrom(...ZONES);
const now = fc.integer({ min: Date.UTC(2020, 0, 1), max: Date.UTC(2032, 0, 1) });

/** The buckets laid end to end: where they start and end, or an error at a gap or overlap. */
function span(buckets: readonly Bucket[]): { from: number; to: number } {
  let at = (buckets[0]?.bucket ?? 0) * 1000;
  const from = at;
  for (const b of buckets) {
    expect(b.bucket * 1000).toBe(at);
    expect(b.bucket % RES_SECONDS[b.res]).toBe(0);
    at += RES_SECONDS[b.res] * 1000;
  }
  return { from, to: at };
}

/** A local day start found the slow way: the first minute whose date is the date of `ms`. */
function dayStart(zone: string, ms: number): number {
  const date = localDate(zone, ms);
  let t = Math.floor(ms / MINUTE) * MINUTE;
  while (localDate(zone, t - MINUTE) === date) t -= MINUTE;
  return t;
}

/** The UTC arithmetic the stats routes used before time zones. */
function utcRange(period: Period, nowMs: number): Pick<Range, 'from' | 'to'> {
  const minute = Math.floor(nowMs / MINUTE) * MINUTE;
  const hour = Math.floor(nowMs / HOUR) * HOUR;
  const day = Math.floor(nowMs / DAY) * DAY;
  const ranges: Record<Exclude<Period, 'custom'>, Pick<Range, 'from' | 'to'>> = {
    realtime: { from: minute - 29 * MINUTE, to: minute + MINUTE },
    today: { from: day, to: day + DAY },
    '24h': { from: hour - 23 * HOUR, to: hour + HOUR },
    '7d': { from: day - 6 * DAY, to: day + DAY },
    '30d': { from: day - 29 * DAY, to: day + DAY },
  };
  return ranges[period as Exclude<Period, 'custom'>];
}

describe('stats ranges in a time zone', () => {
  it('today, 7d and 30d are whole local days ending with today, covered exactly', () => {
    fc.assert(
      fc.property(zone, now, fc.constantFrom('today', '7d', '30d') as fc.Arbitrary<Period>, (z, nowMs, period) => {
        const range = resolvePeriod({ period }, nowMs, z);
        const days = period === 'today' ? 1 : period === '7d' ? 7 : 30;
        expect(range.from).toBe(dayStart(z, range.from));
        expect(range.to).toBe(dayStart(z, range.to));
        expect(localDate(z, range.to - 1)).toBe(localDate(z, nowMs));
        expect(new Set(intervalSlots(range, 'day').map((s) => s.t.slice(0, 10))).size).toBe(days);
        expect(span(cover(range))).toEqual({ from: range.from, to: range.to });
      }),
      propertyParams(60, 20_000),
    );
  });

  it('a UTC site gets the ranges and points it got before zones', () => {
    fc.assert(
      fc.property(now, fc.constantFrom(...PERIODS.filter((p) => p !== 'custom')), (nowMs, period) => {
        const range = resolvePeriod({ period }, nowMs, 'UTC');
        expect({ from: range.from, to: range.to }).toEqual(utcRange(period, nowMs));
        for (const slot of intervalSlots(range, range.interval)) {
          expect(slot.buckets).toHaveLength(1);
          expect(slot.t).toBe(new Date((slot.buckets[0] as Bucket).bucket * 1000).toISOString());
        }
      }),
      propertyParams(200, 10_000),
    );
  });

  it('points are local hours and days, end to end, each covered exactly, labelled with their start', () => {
    fc.assert(
      fc.property(
        zone,
        now,
        fc.constantFrom('today', '24h', '7d', '30d') as fc.Arbitrary<Period>,
        fc.constantFrom('hour', 'day'),
        (z, nowMs, period, interval) => {
          const range = resolvePeriod({ period }, nowMs, z);
          const slots = intervalSlots(range, interval as 'hour' | 'day');
          let previousEnd: number | undefined;
          for (const slot of slots) {
            const { from, to } = span(slot.buckets);
            if (previousEnd !== undefined) expect(from).toBe(previousEnd);
            previousEnd = to;
            expect(Date.parse(slot.t)).toBe(from);
            const w = wallTime(z, from);
            expect(slot.t.slice(11, 16)).toBe(`${String(w.hour).padStart(2, '0')}:${String(w.minute).padStart(2, '0')}`);
            if (slot.terms) {
              // Added and taken away, the terms hold every instant of the point once, and nothing else.
              const edges = new Set<number>([from - MINUTE, to, to - MINUTE]);
              for (const { bucket: b } of slot.terms)
                for (const t of [b.bucket * 1000, (b.bucket + RES_SECONDS[b.res]) * 1000]) edges.add(t).add(t - MINUTE);
              for (const t of edges) {
                let held = 0;
                for (const { bucket: b, sign } of slot.terms)
                  if (t >= b.bucket * 1000 && t < (b.bucket + RES_SECONDS[b.res]) * 1000) held += sign;
                expect(held, new Date(t).toISOString()).toBe(t >= from && t < to ? 1 : 0);
              }
              expect(slot.terms.length).toBeLessThan(slot.buckets.length);
            }
            if (interval === 'day') {
              expect(from).toBe(dayStart(z, from));
              expect(to).toBe(dayStart(z, to));
              expect(localDate(z, to - 1)).toBe(localDate(z, from));
            } else {
              expect(w.minute).toBe(0);
              expect(wallTime(z, to).minute).toBe(0);
              expect(to - from).toBeGreaterThanOrEqual(HOUR);
            }
          }
          expect((slots[0]?.buckets[0]?.bucket ?? 0) * 1000).toBeLessThanOrEqual(range.from);
          expect(previousEnd).toBeGreaterThanOrEqual(range.to);
        },
      ),
      propertyParams(30, 25_000),
    );
  });

  it('custom dates are local dates; times without an offset are the wall clock', () => {
    const berlin = resolvePeriod({ from: '2026-10-25', to: '2026-10-25' }, 0, 'Europe/Berlin');
    expect([new Date(berlin.from).toISOString(), berlin.to - berlin.from]).toEqual(['2026-10-24T22:00:00.000Z', 25 * HOUR]);
    const wall = resolvePeriod({ from: '2026-10-25T02:30', to: '2026-10-25T02:30:30' }, 0, 'Europe/Berlin');
    expect([new Date(wall.from).toISOString(), new Date(wall.to).toISOString()]).toEqual([
      '2026-10-25T00:30:00.000Z',
      '2026-10-25T00:31:00.000Z',
    ]);
    const instant = resolvePeriod({ from: '2026-10-25T02:30:00+01:00', to: '2026-10-25T03:00:00Z' }, 0, 'Europe/Berlin');
    expect(new Date(instant.from).toISOString()).toBe('2026-10-25T01:30:00.000Z');
    const kolkata = resolvePeriod({ from: '2026-01-10', to: '2026-01-11' }, 0, 'Asia/Kolkata');
    expect(
      cover(kolkata)
        .map((b) => b.res)
        .join(''),
    ).toBe(`${'m'.repeat(30)}${'h'.repeat(5)}d${'h'.repeat(18)}${'m'.repeat(30)}`);
    // As before for UTC, also a time without an offset (which Date.parse would read in the process's zone).
    const utc = resolvePeriod({ from: '2026-01-10T10:00', to: '2026-01-10' }, 0, 'UTC');
    expect([new Date(utc.from).toISOString(), new Date(utc.to).toISOString()]).toEqual([
      '2026-01-10T10:00:00.000Z',
      '2026-01-11T00:00:00.000Z',
    ]);
    // 731 local days, DST changes included, is the longest.
    expect(() => resolvePeriod({ from: '2026-01-01', to: '2028-01-01' }, 0, 'Europe/Berlin')).not.toThrow();
    expect(() => resolvePeriod({ from: '2026-01-01', to: '2028-01-02' }, 0, 'Europe/Berlin')).toThrow(/731/);
    expect(() => resolvePeriod({ from: '2026-03-01T00:30', to: '2028-03-01T00:30' }, 0, 'Asia/Kolkata')).not.toThrow();
    expect(() => resolvePeriod({ from: '2026-03-01T00:30', to: '2028-03-01T00:31' }, 0, 'Asia/Kolkata')).toThrow(/731/);
  });
});
