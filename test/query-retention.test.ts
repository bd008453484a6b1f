import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EventRow } from '../src/events/event-row.js';
import { NO_FILTER, type SqlParams } from '../src/query/event-source.js';
import { queryRetention, type RetentionInterval, retentionPeriods } from '../src/query/retention.js';
import { instantOf, localDate } from '../src/time/zone.js';
import { openTestEventStore, type TestEventStore } from './event-files.js';
import { eventRow } from './event-store-fixture.js';
import { propertyParams, uniqueName } from './helpers.js';

// Retention cohorts over real Parquet files, in Europe/Berlin across the spring DST change
// (Sunday 2026-03-29, a 23-hour day), checked by hand.

const ZONE = 'Europe/Berlin';
const berlin = (day: number, hour: number, minute = 0) => instantOf(ZONE, 2026, 3, day, hour, minute);

let files: TestEventStore;
beforeAll(async () => {
  files = await openTestEventStore();
});
afterAll(async () => {
  await files.close();
});

let seq = 0;
const seen = (site: string, visitor: string, at: number, more: Partial<EventRow> = {}) =>
  eventRow({ site_id: site, message_id: `r${++seq}`, ts: at, visitor, ...more });

const retention = (site: string, interval: RetentionInterval, fromMs: number, toMs: number, where = NO_FILTER, zone = ZONE) =>
  queryRetention(files.events, { siteId: site, fromMs, toMs, interval, zone, where });

describe('retention', () => {
  it('puts visitors in the local day of their first event and counts local days after it, across the DST change', async () => {
    const site = uniqueName('r');
    await files.write([
      // Saturday 23:30 CET (22:30 UTC, still Saturday in UTC): back on Sunday and on Monday.
      seen(site, 'a', berlin(28, 23, 30)),
      seen(site, 'a', berlin(29, 12)),
      seen(site, 'a', berlin(30, 9)),
      // Sunday 00:30 CET is Saturday 23:30 UTC: the cohort of Sunday. Sunday 23:30 CEST (21:30
      // UTC) is the same local day: not a return. Monday 00:15 CEST (Sunday 22:15 UTC) is.
      seen(site, 'b', berlin(29, 0, 30)),
      seen(site, 'b', berlin(29, 23, 30)),
      seen(site, 'b', berlin(30, 0, 15)),
      // Seen before the range: in no cohort.
      seen(site, 'old', berlin(20, 10)),
      seen(site, 'old', berlin(29, 10)),
      // A bot is nobody.
      seen(site, 'bot', berlin(29, 10), { bot: true }),
    ]);
    expect(await retention(site, 'day', berlin(28, 0), berlin(31, 0))).toEqual([
      { start: '2026-03-28', visitors: 1, returning: [1, 1] },
      { start: '2026-03-29', visitors: 1, returning: [1] },
      { start: '2026-03-30', visitors: 0, returning: [] },
    ]);
  });

  it('cuts weeks at local Monday midnight, after a 167-hour week', async () => {
    const site = uniqueName('r');
    await files.write([
      // Week of Monday 23 March (00:00 CET = 22 March 23:00 UTC).
      seen(site, 'a', berlin(23, 0, 30)),
      // Sunday 29 March 23:30 CEST is 21:30 UTC: still that week; 168 hours after its start
      // would say so too. Monday 30 March 00:30 CEST (29 March 22:30 UTC) is within 168 hours of
      // the week's start but belongs to the next week.
      seen(site, 'a', berlin(29, 23, 30)),
      seen(site, 'b', berlin(24, 9)),
      seen(site, 'b', berlin(30, 0, 30)),
      seen(site, 'c', berlin(31, 12)),
    ]);
    // A range that starts on a Wednesday is widened to that week's Monday.
    expect(await retention(site, 'week', berlin(25, 0), berlin(35, 0))).toEqual([
      { start: '2026-03-23', visitors: 2, returning: [1] },
      { start: '2026-03-30', visitors: 1, returning: [] },
    ]);
  });

  it('applies filters to every event: cohorts and returns', async () => {
    const site = uniqueName('r');
    await files.write([
      seen(site, 'a', berlin(10, 10), { country: 'FR' }),
      seen(site, 'a', berlin(11, 10), { country: 'DE' }),
      seen(site, 'a', berlin(12, 10), { country: 'DE' }),
      seen(site, 'b', berlin(11, 10), { country: 'DE' }),
      seen(site, 'b', berlin(12, 10), { country: 'FR' }),
    ]);
    // Unfiltered, a was first seen on the 10th: only b is new on the 11th, and came back.
    expect(await retention(site, 'day', berlin(11, 0), berlin(13, 0))).toEqual([
      { start: '2026-03-11', visitors: 1, returning: [1] },
      { start: '2026-03-12', visitors: 0, returning: [] },
    ]);
    // In Germany, a was first seen on the 11th; b's return on the 12th was from France.
    expect(await retention(site, 'day', berlin(11, 0), berlin(13, 0), (p: SqlParams) => `country = ${p.add('DE')}`)).toEqual([
      { start: '2026-03-11', visitors: 2, returning: [1] },
      { start: '2026-03-12', visitors: 0, returning: [] },
    ]);
  });

  it('lists every period with zeros for a site with no events', async () => {
    expect(await retention(uniqueName('r'), 'day', berlin(1, 0), berlin(3, 0))).toEqual([
      { start: '2026-03-01', visitors: 0, returning: [0] },
      { start: '2026-03-02', visitors: 0, returning: [] },
    ]);
  });

  it('has periods of 23 and 25 hours where the clocks change', () => {
    const spring = retentionPeriods('day', ZONE, berlin(29, 0), berlin(30, 0) + 1);
    expect((spring[1] ?? 0) - (spring[0] ?? 0)).toBe(23 * 3_600_000);
    const autumn = retentionPeriods('day', ZONE, instantOf(ZONE, 2026, 10, 25), instantOf(ZONE, 2026, 10, 26) + 1);
    expect((autumn[1] ?? 0) - (autumn[0] ?? 0)).toBe(25 * 3_600_000);
  });
});

describe('retention against a plain model', () => {
  // Events are matched to periods by time buckets that every period start is a whole number of:
  // 15 minutes in Berlin; in Monrovia in 1971 (Monrovia mean time, UTC-00:44:30) a local
  // midnight is no whole minute of UTC, so the buckets are seconds.
  it.each([
    { zone: 'Europe/Berlin', year: 2026, what: 'around a DST change' },
    { zone: 'Africa/Monrovia', year: 1971, what: 'where local midnight was no whole minute of UTC' },
  ])(
    'gives the model’s cohorts, by local date, $what (fixed seed)',
    async ({ zone, year }) => {
      const start = instantOf(zone, year, 3, 27);
      expect(start % 60_000 === 0).toBe(zone === 'Europe/Berlin');
      await fc.assert(
        fc.asyncProperty(
          fc.array(
            fc.record({
              visitor: fc.integer({ min: 1, max: 8 }),
              // A local day (from the one before the range to the one after it), and a second
              // of it, or one within 20 minutes of its midnight: a bucket that held an instant
              // of the day before as well as of this one would count a visitor on the wrong day.
              day: fc.integer({ min: -1, max: 4 }),
              second: fc.oneof(fc.integer({ min: 0, max: 86_399 }), fc.integer({ min: -1_200, max: 1_200 })),
              bot: fc.integer({ min: 0, max: 9 }).map((n) => n === 0),
              de: fc.boolean(),
            }),
            { maxLength: 50, size: 'large' },
          ),
          fc.boolean(),
          async (drawn, onlyDe) => {
            const site = uniqueName('rp');
            const rows = drawn.map((d) =>
              seen(site, `v${d.visitor}`, instantOf(zone, year, 3, 27 + d.day) + d.second * 1000, {
                bot: d.bot,
                country: d.de ? 'DE' : 'FR',
              }),
            );
            if (rows.length > 0) await files.write(rows);
            const toMs = instantOf(zone, year, 3, 31);
            const got = await retention(site, 'day', start, toMs, onlyDe ? (p: SqlParams) => `country = ${p.add('DE')}` : NO_FILTER, zone);
            // The model: local dates of each visitor's kept events; cohorts are the dates of the range.
            const dates = [27, 28, 29, 30].map((day) => `${year}-03-${day}`);
            const expected = dates.map((date, i) => ({
              start: date,
              visitors: 0,
              returning: new Array<number>(dates.length - 1 - i).fill(0),
            }));
            const kept = rows.filter((r) => !r.bot && r.ts < toMs && (!onlyDe || r.country === 'DE'));
            for (const visitor of new Set(kept.map((r) => r.visitor))) {
              const mine = kept.filter((r) => r.visitor === visitor);
              if (Math.min(...mine.map((r) => r.ts)) < start) continue;
              const active = new Set(mine.map((r) => dates.indexOf(localDate(zone, r.ts))));
              const cohort = Math.min(...active);
              const entry = expected[cohort] as (typeof expected)[number];
              entry.visitors += 1;
              for (const i of active) if (i > cohort) entry.returning[i - cohort - 1] = (entry.returning[i - cohort - 1] ?? 0) + 1;
            }
            expect(got).toEqual(expected);
          },
        ),
        propertyParams(40, 100_000),
      );
    },
    120_000,
  );
});
