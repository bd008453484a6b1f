import { createHash } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compactionNeeded } from '../src/events/compaction.js';
import { type EventEngine, openEventEngine } from '../src/events/engine.js';
import type { EventRow } from '../src/events/event-row.js';
import { createEventStore, type EventStore } from '../src/events/event-store.js';
import { DAY_MS, dayOf, kindOf, partitionPath, segmentInfo } from '../src/events/layout.js';
import { PAGE_COLUMNS } from '../src/events/pages-file.js';
import { readPartition } from '../src/events/partition.js';
import { PROP_COLUMNS } from '../src/events/props-file.js';
import { applyRetention } from '../src/events/retention.js';
import { VISIT_COLUMNS } from '../src/events/visits-file.js';
import { eventRow, storedEvents } from './stored-events.js';

// The columnar event store on real Parquet files in a temp folder: what goes in comes out, once;
// segments that may repeat message_ids are deduped before any read sees them; compaction keeps
// one sorted file per finished day and deletes what it replaced only after the grace period;
// retention drops whole days.

const SITE = 'site/with odd=chars';
const row = (id: string, ts: number, extra: Partial<EventRow> = {}) => eventRow(SITE, id, ts, extra);
const T0 = Date.parse('2026-03-01T10:00:00Z');
const ONE_SESSION = { session: 's-1' };

describe('event store', () => {
  let engine: EventEngine;
  let dir: string;
  let n = 0;
  beforeAll(async () => {
    engine = await openEventEngine({ threads: 1 });
    dir = await mkdtemp(join(tmpdir(), 'tally-store-test-'));
  });
  afterAll(async () => {
    engine.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** A store on a fresh folder; `clock` moves its time. */
  function freshStore(options: { graceMs?: number; dirtyWindowMs?: number } = {}) {
    const clock = { now: T0 + DAY_MS };
    const store = createEventStore({
      root: join(dir, `s${n++}`),
      engine,
      graceMs: options.graceMs ?? 60_000,
      dirtyWindowMs: options.dirtyWindowMs ?? 30_000,
      now: () => clock.now,
    });
    return { store, clock };
  }

  const ids = async (store: EventStore, from = -8.64e15, to = 8.64e15) => {
    const snapshot = await store.snapshot(SITE, from, to);
    try {
      if (snapshot.files.length === 0) return [];
      const rows = await store.sql.all('SELECT message_id FROM read_parquet($1) ORDER BY message_id', [snapshot.files]);
      return rows.map((r) => r['message_id'] as string);
    } finally {
      snapshot.release();
    }
  };

  it('reads back every column as written', async () => {
    const { store } = freshStore();
    const written = row('a', T0 + 1, {
      type: 'track',
      kind: 'event',
      name: 'Order "Completed"',
      user_id: 'u\n1',
      product: 'sku-1',
      revenue: 19.99,
      engaged_ms: 1234,
      props: { plan: 'pro', ünï: '😀' },
      bot: true,
      country: 'DE',
      utm_source: 'news',
    });
    await store.append(SITE, [written], { dirty: false });
    const [got] = await storedEvents(store, SITE, 'SELECT * FROM events');
    expect(got).toBeDefined();
    const props = JSON.parse(got!['props'] as string);
    const { visitor_h, session_h, ...columns } = got!;
    expect({ ...columns, ts: (got!['ts'] as Date).getTime(), engaged_ms: Number(got!['engaged_ms']), props }).toEqual(written);
    // The derived keys: bytes 8–15 of the MD5 digest, little-endian (DuckDB's md5_number_lower),
    // computed here without DuckDB.
    const md5Lower = (text: string) => createHash('md5').update(text).digest().readBigUInt64LE(8);
    expect({ visitor_h, session_h }).toEqual({ visitor_h: md5Lower(written.visitor), session_h: md5Lower(written.session) });
  });

  it('names the partition keys in the path (site=, day=), as Hive-style readers expect', async () => {
    const { store } = freshStore();
    await store.append(SITE, [row('p1', T0)], { dirty: false });
    const snapshot = await store.snapshot(SITE, T0, T0 + 1);
    const rows = await store.sql.all('SELECT site, day, site_id FROM read_parquet($1, hive_partitioning = true)', [snapshot.files]);
    snapshot.release();
    expect(rows).toEqual([{ site: SITE, day: new Date(`${dayOf(T0)}T00:00:00Z`), site_id: SITE }]);
  });

  it('partitions by UTC day and snapshots only the days of a range', async () => {
    const { store } = freshStore();
    await store.append(SITE, [row('d1', T0 - DAY_MS), row('d2', T0), row('d3', T0 + 2 * DAY_MS)], { dirty: false });
    const days = (await readdir(join(store.root, (await readdir(store.root))[0]!))).sort();
    expect(days).toEqual([`day=${dayOf(T0 - DAY_MS)}`, `day=${dayOf(T0)}`, `day=${dayOf(T0 + 2 * DAY_MS)}`]);
    expect(await ids(store, T0 - 1000, T0 + 1000)).toEqual(['d2']);
    expect(await ids(store, T0 - DAY_MS, T0 + 1)).toEqual(['d1', 'd2']);
    expect(await ids(store)).toEqual(['d1', 'd2', 'd3']);
  });

  it('finds the message_ids it holds, and only those', async () => {
    const { store } = freshStore();
    await store.append(SITE, [row('h1', T0), row('h2', T0 + 5)], { dirty: false });
    const held = await store.heldIds(SITE, [row('h1', T0), row('h2', T0 + 5), row('h3', T0 + 5), row('h1', T0 + DAY_MS)]);
    expect([...held].sort()).toEqual(['h1', 'h2']);
  });

  it('dedupes a partition holding a possibly repeating segment before a snapshot shows it', async () => {
    const { store } = freshStore();
    await store.append(SITE, [row('x1', T0), row('x2', T0 + 1)], { dirty: false });
    // A redelivery that raced the first write: the same rows again, marked as possibly repeating.
    await store.append(SITE, [row('x2', T0 + 1), row('x3', T0 + 2)], { dirty: true });
    expect(await ids(store)).toEqual(['x1', 'x2', 'x3']);
    const p = await readPartition(partitionPath(store.root, SITE, dayOf(T0)), dayOf(T0));
    expect(p!.visible).toHaveLength(1);
    expect(p!.visible[0]!.startsWith('c-')).toBe(true);
  });

  it('marks a segment written after its entries became claimable, and keeps deduping in the dirty window', async () => {
    const { store, clock } = freshStore({ dirtyWindowMs: 30_000 });
    await store.append(SITE, [row('l1', T0)], { dirty: false, claimableAt: performance.now() - 1 });
    const day = dayOf(T0);
    const before = await readPartition(partitionPath(store.root, SITE, day), day);
    expect(before!.segments.map((s) => segmentInfo(s).dirty)).toEqual([true]);
    expect(await ids(store)).toEqual(['l1']);
    // A segment the slow writer's race partner finishes inside the window is deduped too.
    clock.now = Date.now();
    await store.append(SITE, [row('l1', T0), row('l2', T0 + 1)], { dirty: false });
    expect(await ids(store)).toEqual(['l1', 'l2']);
    // After the window, a clean new segment is visible as it is.
    clock.now = Date.now() + 60_000;
    await store.append(SITE, [row('l3', T0 + 2)], { dirty: false });
    const after = await readPartition(partitionPath(store.root, SITE, day), day);
    expect(compactionNeeded(after!, Date.parse(`${day}T12:00:00Z`))).toBe('dedupe');
    // Two compacted files (the second without l1, which the first holds) and the new segment.
    expect(after!.visible).toHaveLength(3);
    expect(await ids(store)).toEqual(['l1', 'l2', 'l3']);
  });

  it("merges today's segments, rewrites a finished day into one sorted file, and deletes replaced files after the grace period", async () => {
    const { store, clock } = freshStore({ graceMs: 60_000 });
    const day = dayOf(T0);
    const dirOf = partitionPath(store.root, SITE, day);
    clock.now = T0 + 3600_000; // the day is today: segments are merged, not rewritten
    for (let i = 0; i < 5; i++)
      await store.append(
        SITE,
        [row(`m${i}`, T0 + (5 - i) * 1000, { ...ONE_SESSION, page: `/p${i % 2}`, props: i % 2 === 1 ? { plan: 'pro' } : {} })],
        {
          dirty: false,
        },
      );
    expect(await store.maintainSite(SITE)).toBe(1);
    let p = await readPartition(dirOf, day);
    expect(p!.manifest.files).toHaveLength(1);
    expect(p!.segments).toEqual([]);
    // A snapshot taken now holds the merged file; the day then ends and is rewritten into one.
    await store.append(SITE, [row('m5', T0 + 500, ONE_SESSION)], { dirty: false });
    const held = await store.snapshot(SITE, T0, T0 + DAY_MS);
    clock.now = T0 + DAY_MS + 1;
    expect(await store.maintainSite(SITE)).toBe(1);
    p = await readPartition(dirOf, day);
    expect(p!.visible).toHaveLength(1);
    const rows = await store.sql.all('SELECT message_id FROM read_parquet($1)', [p!.visible.map((f) => join(dirOf, f))]);
    // One source and one session: the file's order is then the events' time order.
    expect(rows.map((r) => r['message_id'])).toEqual(['m5', 'm4', 'm3', 'm2', 'm1', 'm0']);
    // Beside it, the day's summaries, each with its columns; first its visits: its one session, far from midnight.
    const { visits, pages, props } = p!.manifest.summaries!;
    expect([kindOf(visits), kindOf(pages), kindOf(props)]).toEqual(['summary', 'summary', 'summary']);
    const columnsOf = async (file: string) => {
      const schema = await store.sql.all(
        'SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM read_parquet($1, hive_partitioning = false))',
        [join(dirOf, file)],
      );
      return Object.fromEntries(schema.map((c) => [c['column_name'], c['column_type']]));
    };
    // DuckDB reads a millisecond timestamp back as TIMESTAMP.
    const written = (columns: Record<string, string>) =>
      Object.fromEntries(Object.entries(columns).map(([c, t]) => [c, t === 'TIMESTAMP_MS' ? 'TIMESTAMP' : t]));
    expect(await columnsOf(visits)).toEqual(written(VISIT_COLUMNS));
    expect(await columnsOf(pages)).toEqual(written(PAGE_COLUMNS));
    expect(await columnsOf(props)).toEqual(written(PROP_COLUMNS));
    const [visit, ...more] = await store.sql.all('SELECT pageviews, duration_ms, edge, bot FROM read_parquet($1)', [join(dirOf, visits)]);
    expect(more).toEqual([]);
    expect({ ...visit, pageviews: Number(visit?.['pageviews']), duration_ms: Number(visit?.['duration_ms']) }).toEqual({
      pageviews: 6,
      duration_ms: 5000 - 500,
      edge: false,
      bot: false,
    });
    // Then its page views, by page, visitor and time.
    const views = (await store.sql.all('SELECT page, visitor_h, epoch_ms(ts) AS t FROM read_parquet($1)', [join(dirOf, pages)])).map(
      (v) => ({ page: v['page'] as string, visitor: BigInt(v['visitor_h'] as bigint), t: Number(v['t']) - T0 }),
    );
    expect(views.map((v) => [v.page, v.t]).sort()).toEqual([
      ['/', 500],
      ['/p0', 1000],
      ['/p0', 3000],
      ['/p0', 5000],
      ['/p1', 2000],
      ['/p1', 4000],
    ]);
    // Its figures by property: per key, value and visitor ("(none)": the visitor's events without
    // the key), then per visitor over all events (no key); each of the six page views has a visitor of its own.
    const byProp = await store.sql.all('SELECT key, value, pageviews, events FROM read_parquet($1)', [join(dirOf, props)]);
    expect(byProp.map((r) => [r['key'], r['value'], Number(r['pageviews']), Number(r['events'])])).toEqual([
      ...Array(4).fill(['plan', '(none)', 1, 0]),
      ...Array(2).fill(['plan', 'pro', 1, 0]),
      ...Array(6).fill([null, '(none)', 1, 0]),
    ]);
    const ordered = [...views].sort((a, b) =>
      a.page !== b.page ? (a.page < b.page ? -1 : 1) : a.visitor !== b.visitor ? (a.visitor < b.visitor ? -1 : 1) : a.t - b.t,
    );
    expect(views).toEqual(ordered);
    const snapshot = await store.snapshot(SITE, T0, T0 + 1);
    expect(snapshot.days).toEqual([
      {
        startMs: T0 - 10 * 3_600_000,
        files: [join(dirOf, p!.visible[0] as string)],
        summaries: { visits: join(dirOf, visits), pages: join(dirOf, pages), props: join(dirOf, props) },
        propKeys: { keys: ['plan'], complete: true },
      },
    ]);
    snapshot.release();
    const onDisk = async () => (await readdir(dirOf)).filter((f) => f.endsWith('.parquet')).length;
    // The segments merged during the day are gone (their grace period passed); the merged file
    // and the last segment were replaced just now and stay, beside the new file and its summaries.
    expect(await onDisk()).toBe(6);
    // After the grace period, what this process's snapshot holds stays until it is released.
    clock.now += 60_000;
    await store.maintainSite(SITE);
    expect(await onDisk()).toBe(6);
    held.release();
    await store.maintainSite(SITE);
    expect(await onDisk()).toBe(4);
    expect((await readdir(dirOf)).filter((f) => kindOf(f) === 'manifest')).toHaveLength(1);
    expect(await ids(store)).toEqual(['m0', 'm1', 'm2', 'm3', 'm4', 'm5']);
  });

  it("folds a busy day's files level by level: few files visible, each event rewritten a logarithmic number of times", async () => {
    // Replaced files stay for the whole test: every compacted file ever written is then on disk.
    const { store, clock } = freshStore({ graceMs: 1e12 });
    const day = dayOf(T0);
    const dirOf = partitionPath(store.root, SITE, day);
    clock.now = T0 + 3600_000;
    const passes = 64;
    // Fewer than 4 files per level, and log4(64) + 1 levels.
    const maxFiles = 3 * 4;
    const written: string[] = [];
    for (let pass = 0; pass < passes; pass++) {
      for (const k of [0, 1]) {
        const id = `f${pass}-${k}`;
        written.push(id);
        await store.append(SITE, [row(id, T0 + pass * 1000 + k)], { dirty: false });
      }
      await store.maintainSite(SITE);
      const p = await readPartition(dirOf, day);
      expect(p!.segments).toEqual([]);
      expect(p!.manifest.files.length).toBeLessThanOrEqual(maxFiles);
    }
    expect(await ids(store)).toEqual([...written].sort());
    // Rows compaction wrote: each event once by its merge, then once per fold (three levels up).
    const compacted = (await readdir(dirOf)).filter((f) => kindOf(f) === 'compacted').map((f) => join(dirOf, f));
    const [rowsWritten] = await store.sql.all('SELECT count(*)::INTEGER AS n FROM read_parquet($1)', [compacted]);
    expect(rowsWritten?.['n']).toBeLessThanOrEqual(written.length * (1 + 3));
  });

  it("stops reading a day's summaries when a late event arrives, and writes them again with the next rewrite", async () => {
    const { store, clock } = freshStore({ graceMs: 60_000 });
    const day = dayOf(T0);
    const dirOf = partitionPath(store.root, SITE, day);
    // A session 10 minutes before midnight: its row may go on in the next day.
    const late = Date.parse(`${day}T23:50:00Z`);
    await store.append(
      SITE,
      [row('a', T0, ONE_SESSION), row('b', late, { session: 's-2', kind: 'other' }), row('c', late + 1, { session: 's-2' })],
      {
        dirty: false,
      },
    );
    expect(await store.maintainSite(SITE)).toBe(1);
    const summarised = async () => {
      const snapshot = await store.snapshot(SITE, T0, T0 + 1);
      snapshot.release();
      return snapshot.days.map((d) => d.summaries !== undefined);
    };
    expect(await summarised()).toEqual([true]);
    const firsts = (await readPartition(dirOf, day))!.manifest.summaries!;
    const first = firsts.visits;
    const edges = await store.sql.all('SELECT edge FROM read_parquet($1) ORDER BY edge', [join(dirOf, first)]);
    expect(edges.map((r) => r['edge'])).toEqual([false, true]);
    await store.append(SITE, [row('d', T0 + 5000, ONE_SESSION)], { dirty: false });
    expect(await summarised()).toEqual([false]);
    clock.now += 1;
    expect(await store.maintainSite(SITE)).toBe(1);
    const p = await readPartition(dirOf, day);
    const seconds = p!.manifest.summaries!;
    expect([seconds.visits === firsts.visits, seconds.pages === firsts.pages]).toEqual([false, false]);
    expect([p!.manifest.replaced[firsts.visits], p!.manifest.replaced[firsts.pages]]).toEqual([clock.now, clock.now]);
    expect(await summarised()).toEqual([true]);
    const [visit] = await store.sql.all('SELECT pageviews FROM read_parquet($1) WHERE NOT edge', [join(dirOf, seconds.visits)]);
    expect(Number(visit?.['pageviews'])).toBe(2);
    const [views] = await store.sql.all('SELECT count(*) AS n FROM read_parquet($1)', [join(dirOf, seconds.pages)]);
    expect(Number(views?.['n'])).toBe(3);
  });

  it("refuses rows of another site (a site's folder holds only its rows)", async () => {
    const { store } = freshStore();
    await expect(store.append(SITE, [eventRow('other', 'x', T0, {})], { dirty: false })).rejects.toThrow(/another site/);
  });

  it('drops whole days past a site retention: hidden at once, deleted after the grace period', async () => {
    const { store } = freshStore();
    // Retention compares with the expiry marks' file times: real time.
    const now = Date.now();
    await store.append(SITE, [row('old', now - 10 * DAY_MS), row('edge', now - 6 * DAY_MS), row('new', now)], { dirty: false });
    expect(await applyRetention(store.root, SITE, null, now, 60_000)).toEqual([]);
    expect(await ids(store)).toEqual(['edge', 'new', 'old']);
    // 7 days: today and the 6 before it stay.
    expect(await applyRetention(store.root, SITE, 7, now, 60_000)).toEqual([]);
    expect(await ids(store)).toEqual(['edge', 'new']);
    expect(await applyRetention(store.root, SITE, 7, now + 61_000, 60_000)).toEqual([dayOf(now - 10 * DAY_MS)]);
    expect(await applyRetention(store.root, SITE, 1, now, 0)).toEqual([dayOf(now - 6 * DAY_MS)]);
    expect(await ids(store)).toEqual(['new']);
  });

  it('runs SELECT statements only, with bound values', async () => {
    const { store } = freshStore();
    await expect(store.sql.all("COPY (SELECT 1) TO '/tmp/tally-never.parquet'")).rejects.toThrow(/SELECT statements only/);
    await expect(store.sql.all('CREATE TABLE t (a INT)')).rejects.toThrow(/SELECT statements only/);
    expect(await store.sql.all('SELECT $1 AS text, $2 AS n, $3 AS list', ["it's", 2.5, ['a', 'b']])).toEqual([
      { text: "it's", n: 2.5, list: ['a', 'b'] },
    ]);
  });

  it('deletes the files of a compaction that never committed once they are a grace period old, not those of a newer one', async () => {
    const { store, clock } = freshStore({ graceMs: 60_000 });
    const day = dayOf(T0);
    const dirOf = partitionPath(store.root, SITE, day);
    await store.append(SITE, [row('g1', T0, ONE_SESSION)], { dirty: false });
    expect(await store.maintainSite(SITE)).toBe(1);
    const p = await readPartition(dirOf, day);
    expect(p!.manifest.gen).toBe(1);
    // What a compaction of generation 1 killed before its commit (or one that lost it) left, and
    // what one of generation 2 is writing now.
    const { writeFile } = await import('node:fs/promises');
    const lost = [
      'c-0000000001-aaaaaaaaaaaa.parquet',
      'v-0000000001-bbbbbbbbbbbb.parquet',
      'p-0000000001-cccccccccccc.parquet',
      'k-0000000001-ffffffffffff.parquet',
    ];
    const running = ['c-0000000002-dddddddddddd.parquet', 'p-0000000002-eeeeeeeeeeee.parquet'];
    for (const name of [...lost, ...running]) await writeFile(join(dirOf, name), 'x');
    const names = async () => (await readdir(dirOf)).sort();
    // Younger than the grace period (the files' age is their modification time's): all stay.
    clock.now = Date.now();
    await store.maintainSite(SITE);
    expect(await names()).toEqual(expect.arrayContaining([...lost, ...running]));
    clock.now = Date.now() + 60_000;
    await store.maintainSite(SITE);
    const live = [...p!.visible, ...Object.values(p!.manifest.summaries!), '_manifest-0000000001.json'];
    expect(await names()).toEqual([...live, ...running].sort());
    expect(await ids(store)).toEqual(['g1']);
  });

  it('leaves nothing visible of a write that died before its rename', async () => {
    const { store } = freshStore();
    await store.append(SITE, [row('k1', T0)], { dirty: false });
    const dirOf = partitionPath(store.root, SITE, dayOf(T0));
    const { writeFile } = await import('node:fs/promises');
    await writeFile(join(dirOf, '.tmp-deadbeef.parquet'), 'half a file');
    expect(await ids(store)).toEqual(['k1']);
  });
});
