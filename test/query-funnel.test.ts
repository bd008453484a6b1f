import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EventRow } from '../src/events/event-row.js';
import { NO_FILTER, type SqlParams } from '../src/query/event-source.js';
import { type FunnelStep, funnelAlgorithm, funnelSteps, queryFunnel } from '../src/query/funnel.js';
import { openTestEventStore, type TestEventStore } from './event-files.js';
import { eventRow } from './event-store-fixture.js';
import { modelFunnel } from './funnel-model.js';
import { propertyParams, uniqueName } from './helpers.js';

// Funnels over real Parquet files with the store's columns, checked by hand and against the
// plain model of test/funnel-model.ts.

const T0 = Date.UTC(2026, 2, 1, 12);
const MIN = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;

let files: TestEventStore;
beforeAll(async () => {
  files = await openTestEventStore();
});
afterAll(async () => {
  await files.close();
});

let seq = 0;
const view = (site: string, visitor: string, at: number, page: string, more: Partial<EventRow> = {}) =>
  eventRow({ site_id: site, message_id: `m${String(++seq).padStart(6, '0')}`, ts: at, visitor, page, ...more });
const track = (site: string, visitor: string, at: number, name: string, more: Partial<EventRow> = {}) =>
  view(site, visitor, at, '/app', { type: 'track', kind: 'event', name, ...more });

const visitorsAt = async (site: string, steps: FunnelStep[], windowMs: number | null = null, where = NO_FILTER) =>
  (await queryFunnel(files.events, { siteId: site, fromMs: T0 - DAY, toMs: T0 + 10 * DAY, steps, windowMs, where })).map((s) => s.visitors);

describe('funnels, checked by hand', () => {
  it('counts a visitor at step k only when steps 1..k happened in that order', async () => {
    const site = uniqueName('f');
    await files.write([
      view(site, 'in-order', T0, '/pricing'),
      view(site, 'in-order', T0 + MIN, '/signup'),
      track(site, 'in-order', T0 + 2 * MIN, 'Signed Up'),
      // Did every step, but signed up before seeing the pricing page.
      track(site, 'reversed', T0, 'Signed Up'),
      view(site, 'reversed', T0 + MIN, '/pricing'),
      view(site, 'reversed', T0 + 2 * MIN, '/signup'),
      // Skipped step 2: stops at step 1, whatever comes later.
      view(site, 'skipper', T0, '/pricing/pro'),
      track(site, 'skipper', T0 + MIN, 'Signed Up'),
      // Never entered.
      view(site, 'bystander', T0, '/signup'),
    ]);
    expect(await visitorsAt(site, [{ page: '/pricing*' }, { page: '/signup' }, { event: 'Signed Up' }])).toEqual([3, 2, 1]);
  });

  it('keeps the last step within the window of step 1, and tries a later step 1 when an earlier one is too old', async () => {
    const site = uniqueName('f');
    await files.write([
      view(site, 'slow', T0, '/a'),
      view(site, 'slow', T0 + 2 * DAY, '/b'),
      // Came back: a fresh step 1 one hour before step 2.
      view(site, 'restart', T0, '/a'),
      view(site, 'restart', T0 + 2 * DAY - 60 * MIN, '/a'),
      view(site, 'restart', T0 + 2 * DAY, '/b'),
      // Exactly at the window's end still counts.
      view(site, 'edge', T0, '/a'),
      view(site, 'edge', T0 + DAY, '/b'),
    ]);
    const steps = [{ page: '/a' }, { page: '/b' }];
    expect(await visitorsAt(site, steps, DAY)).toEqual([3, 2]);
    expect(await visitorsAt(site, steps, DAY - 1)).toEqual([3, 1]);
    expect(await visitorsAt(site, steps, null)).toEqual([3, 3]);
    // A window as long as the range (11 days) cannot bind: the earliest chains answer.
    expect(await visitorsAt(site, steps, 11 * DAY)).toEqual([3, 3]);
    expect(funnelAlgorithm({ siteId: site, fromMs: T0 - DAY, toMs: T0 + 10 * DAY, steps, windowMs: 11 * DAY, where: NO_FILTER })).toBe(
      'earliest',
    );
    expect(funnelAlgorithm({ siteId: site, fromMs: T0 - DAY, toMs: T0 + 10 * DAY, steps, windowMs: 11 * DAY - 1, where: NO_FILTER })).toBe(
      'latest-start',
    );
  });

  it('needs one event per step when steps repeat, and a later event for each step', async () => {
    const site = uniqueName('f');
    await files.write([
      view(site, 'once', T0, '/p'),
      view(site, 'twice', T0, '/p'),
      view(site, 'twice', T0 + MIN, '/p'),
      view(site, 'thrice', T0, '/p'),
      view(site, 'thrice', T0 + MIN, '/p'),
      view(site, 'thrice', T0 + 2 * MIN, '/p'),
    ]);
    expect(await visitorsAt(site, [{ page: '/p' }, { page: '/p' }, { page: '/p' }])).toEqual([3, 2, 1]);
  });

  it('does not chain events of the same millisecond, in either order', async () => {
    const site = uniqueName('f');
    await files.write([
      eventRow({ site_id: site, message_id: 'b', ts: T0, visitor: 'v', page: '/a' }),
      eventRow({ site_id: site, message_id: 'a', ts: T0, visitor: 'v', page: '/b' }),
    ]);
    expect(await visitorsAt(site, [{ page: '/a' }, { page: '/b' }])).toEqual([1, 0]);
    expect(await visitorsAt(site, [{ page: '/b' }, { page: '/a' }])).toEqual([1, 0]);
  });

  it('takes filters, the date range, and leaves out bots and other sites', async () => {
    const site = uniqueName('f');
    const other = uniqueName('f');
    await files.write([
      view(site, 'de', T0, '/a', { country: 'DE' }),
      view(site, 'de', T0 + MIN, '/b', { country: 'DE' }),
      view(site, 'fr', T0, '/a', { country: 'FR' }),
      view(site, 'fr', T0 + MIN, '/b', { country: 'FR' }),
      view(site, 'bot', T0, '/a', { bot: true }),
      view(site, 'bot', T0 + MIN, '/b', { bot: true }),
      view(site, 'early', T0 - 2 * DAY, '/a'),
      view(site, 'early', T0, '/b'),
      view(other, 'elsewhere', T0, '/a'),
    ]);
    const steps = [{ page: '/a' }, { page: '/b' }];
    expect(await visitorsAt(site, steps)).toEqual([2, 2]);
    expect(await visitorsAt(site, steps, null, (p: SqlParams) => `country = ${p.add('DE')}`)).toEqual([1, 1]);
  });

  it('matches page patterns: * for any characters, % and _ literal', async () => {
    const site = uniqueName('f');
    await files.write([
      view(site, 'v1', T0, '/a_c'),
      view(site, 'v2', T0, '/abc'),
      view(site, 'v3', T0, '/100%'),
      view(site, 'v4', T0, '/blog/x/y'),
    ]);
    expect(await visitorsAt(site, [{ page: '/a_c' }, { page: '/none' }])).toEqual([1, 0]);
    expect(await visitorsAt(site, [{ page: '/100%' }, { page: '/none' }])).toEqual([1, 0]);
    expect(await visitorsAt(site, [{ page: '/blog/*' }, { page: '/none' }])).toEqual([1, 0]);
    expect(await visitorsAt(site, [{ page: '*' }, { page: '/none' }])).toEqual([4, 0]);
  });

  it('answers zeros for a site with no files', async () => {
    expect(await visitorsAt(uniqueName('f'), [{ page: '/a' }, { page: '/b' }])).toEqual([0, 0]);
  });

  it('gives conversion rates against step 1 and drop-offs against the step before', () => {
    expect(funnelSteps([3, 2, 0])).toEqual([
      { visitors: 3, conversion_rate: 100, dropoff: 0 },
      { visitors: 2, conversion_rate: 66.67, dropoff: 1 },
      { visitors: 0, conversion_rate: 0, dropoff: 2 },
    ]);
    expect(funnelSteps([0, 0])).toEqual([
      { visitors: 0, conversion_rate: 0, dropoff: 0 },
      { visitors: 0, conversion_rate: 0, dropoff: 0 },
    ]);
  });
});

describe('funnels against the plain model', () => {
  const PAGES = ['/', '/pricing', '/pricing/pro', '/signup', '/a_b', '/a%b', '/axb'];
  const PATTERNS = ['/pricing', '/pricing*', '/*', '/a_b', '/a%b', '*up', '/signup'];
  const NAMES = ['Signed Up', 'Paid', 'signed up'];
  const stepArb: fc.Arbitrary<FunnelStep> = fc.oneof(
    fc.constantFrom(...PATTERNS).map((page) => ({ page })),
    fc.constantFrom(...NAMES).map((event) => ({ event })),
  );
  const eventArb = fc.record({
    visitor: fc.integer({ min: 1, max: 6 }),
    // Few distinct times, so ties (which never chain) happen.
    at: fc.integer({ min: -2, max: 16 }),
    page: fc.constantFrom(...PAGES),
    name: fc.option(fc.constantFrom(...NAMES), { nil: null }),
    country: fc.constantFrom('DE', 'FR', null),
    bot: fc.integer({ min: 0, max: 9 }).map((n) => n === 0),
    id: fc.integer({ min: 0, max: 1_000_000 }),
  });

  const eventsArb = fc.array(eventArb, { minLength: 0, maxLength: 80, size: 'large' });
  const stepsArb = fc.array(stepArb, { minLength: 2, maxLength: 5 });
  /** The window in time units, or none. */
  const windowArb = fc.option(fc.integer({ min: 0, max: 6 }), { nil: null });

  type Drawn = typeof eventArb extends fc.Arbitrary<infer T> ? T : never;
  /** Times are whole units after T0 (noon UTC). */
  const drawnRows = (site: string, drawn: readonly Drawn[], unit = 10 * MIN) =>
    drawn.map((d, i) =>
      eventRow({
        site_id: site,
        message_id: `${d.id}-${i}`,
        ts: T0 + d.at * unit,
        visitor: `v${d.visitor}`,
        ...(d.name === null ? { page: d.page } : { type: 'track', kind: 'event', name: d.name, page: d.page }),
        country: d.country,
        bot: d.bot,
      }),
    );

  it("gives the model's visitors at every step (fixed seed)", async () => {
    await fc.assert(
      fc.asyncProperty(eventsArb, stepsArb, windowArb, fc.constantFrom(null, 'DE', 'FR'), async (drawn, steps, windowUnits, country) => {
        const site = uniqueName('fp');
        const rows = drawnRows(site, drawn);
        if (rows.length > 0) await files.write(rows);
        const q = {
          siteId: site,
          fromMs: T0,
          toMs: T0 + 14 * 10 * MIN,
          steps,
          windowMs: windowUnits === null ? null : windowUnits * 10 * MIN,
        };
        const where = country === null ? NO_FILTER : (p: SqlParams) => `country = ${p.add(country)}`;
        const got = (await queryFunnel(files.events, { ...q, where })).map((s) => s.visitors);
        expect(got).toEqual(modelFunnel(rows, q, (e) => country === null || e.country === country));
      }),
      propertyParams(60, 100_000),
    );
  }, 120_000);

  // Without a window the earliest chain is taken (hash joins); with one, the latest start of a
  // chain is followed (ASOF joins). The second is exact for any window, so the two must agree
  // when the window is the whole range.
  it('gives the same visitors by earliest chains and by latest starts without a window (fixed seed)', async () => {
    await fc.assert(
      fc.asyncProperty(eventsArb, stepsArb, async (drawn, steps) => {
        const site = uniqueName('fa');
        const rows = drawnRows(site, drawn);
        if (rows.length > 0) await files.write(rows);
        const q = { siteId: site, fromMs: T0, toMs: T0 + 14 * 10 * MIN, steps, windowMs: null, where: NO_FILTER };
        expect(funnelAlgorithm(q)).toBe('earliest');
        const earliest = (await queryFunnel(files.events, q, 'earliest')).map((s) => s.visitors);
        const latest = (await queryFunnel(files.events, q, 'latest-start')).map((s) => s.visitors);
        expect(earliest).toEqual(latest);
        expect(earliest).toEqual(modelFunnel(rows, q));
      }),
      propertyParams(60, 100_000),
    );
  }, 120_000);

  // A funnel without filters reads the page steps of whole compacted days from their pages files
  // and their event steps from the event files: the same rows, compacted or not, give the same
  // visitors, and the model's. Units of 4 hours spread the events over four UTC days, two of them
  // whole in the range.
  it('gives the same visitors from the pages files of compacted days as from their events (fixed seed)', async () => {
    await fc.assert(
      fc.asyncProperty(eventsArb, stepsArb, windowArb, async (drawn, steps, windowUnits) => {
        const [plain, compacted] = [uniqueName('fs'), uniqueName('fc')];
        const unit = 4 * HOUR;
        const range = { fromMs: T0 - 12 * HOUR, toMs: T0 + 14 * unit, steps, windowMs: windowUnits === null ? null : windowUnits * unit };
        const rows = drawnRows(plain, drawn, unit);
        if (rows.length > 0) await files.write([...rows, ...drawnRows(compacted, drawn, unit)]);
        await files.compact(compacted);
        const ask = async (siteId: string) =>
          (await queryFunnel(files.events, { siteId, ...range, where: NO_FILTER })).map((s) => s.visitors);
        const got = await ask(compacted);
        expect(got).toEqual(await ask(plain));
        expect(got).toEqual(modelFunnel(rows, { siteId: plain, ...range }));
      }),
      propertyParams(60, 100_000),
    );
  }, 120_000);
});
