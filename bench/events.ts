import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compactPartition } from '../src/events/compaction.js';
import { openEventEngine } from '../src/events/engine.js';
import type { EventRow } from '../src/events/event-row.js';
import { createEventStore } from '../src/events/event-store.js';
import { dayOf, partitionPath } from '../src/events/layout.js';
import { readPartition } from '../src/events/partition.js';
import { int, ms, table } from './lib/report.js';

// npm run bench:events — the columnar event store alone: BENCH_EVENTS (1,000,000) events of one
// site and one UTC day, with realistic columns (100,000 visitors, 500 pages, 2,000 products, 20
// referrers, 50 countries, UTM, two custom properties, revenue on purchases), appended in
// batches of BENCH_BATCH (1,000) through the sink's own path (one segment per batch). Reported:
// events/s and process CPU µs per event of the appends and of the compactor's merges (every 50
// segments), bytes on disk per event as segments and after the day's rewrite into one sorted
// file beside its summaries, the rewrite's time, and what a redelivered batch's lookup of held ids and a dedupe before
// a read cost on that day.

const EVENTS = Number(process.env['BENCH_EVENTS'] ?? 1_000_000);
const BATCH = Number(process.env['BENCH_BATCH'] ?? 1_000);
/** Segments between two compactor passes (one pass per 10 s: 50 batches is 5,000 events/s). */
const MERGE_EVERY = 50;
const SITE = 'bench';
const DAY = Date.parse('2026-06-01T00:00:00Z');

const pick = <T>(list: readonly T[], i: number) => list[i % list.length] as T;
const REFERRERS = Array.from({ length: 20 }, (_, i) => `ref${i}.example`);
const COUNTRIES = Array.from({ length: 50 }, (_, i) => String.fromCharCode(65 + (i % 26), 65 + Math.floor(i / 26)));
const BROWSERS = ['Chrome', 'Firefox', 'Safari', 'Edge', 'Opera'];
const OSES = ['Windows', 'macOS', 'Linux', 'iOS', 'Android'];

function eventAt(n: number): EventRow {
  // A cheap deterministic spread: multiplicative hashes of the event number.
  const h = (k: number) => Math.abs(Math.imul(n + 1, k) ^ (n >>> 3));
  const visitor = `v${h(2654435761) % 100_000}`;
  const kind = n % 10 < 6 ? 'pageview' : n % 10 < 9 ? 'event' : 'engagement';
  const page = `/page/${h(40503) % 500}`;
  const referrer = h(97) % 3 === 0 ? pick(REFERRERS, h(31)) : null;
  const purchase = kind === 'event' && n % 50 === 0;
  return {
    site_id: SITE,
    message_id: `msg-${n.toString(36)}-${h(7919).toString(36)}`,
    ts: DAY + Math.floor((n / EVENTS) * 86_399_000),
    type: kind === 'pageview' ? 'page' : 'track',
    kind,
    name: kind === 'event' ? (purchase ? 'Order Completed' : 'Product Clicked') : null,
    visitor,
    session: `${visitor}:${Math.floor(n / 20_000)}`,
    user_id: h(13) % 4 === 0 ? `user-${h(17) % 20_000}` : null,
    hostname: 'shop.example',
    page,
    entry_page: `/page/${h(40503) % 50}`,
    source: referrer ?? 'Direct',
    referrer: referrer ? `https://${referrer}/some/path` : null,
    referrer_host: referrer,
    utm_source: h(101) % 5 === 0 ? 'newsletter' : null,
    utm_medium: h(101) % 5 === 0 ? 'email' : null,
    utm_campaign: h(101) % 5 === 0 ? `spring-${h(7) % 4}` : null,
    utm_term: null,
    utm_content: null,
    browser: pick(BROWSERS, h(3)),
    os: pick(OSES, h(5)),
    device: h(11) % 3 === 0 ? 'mobile' : 'desktop',
    country: pick(COUNTRIES, h(19)),
    region: null,
    product: kind === 'event' ? `sku-${h(23) % 2000}` : null,
    revenue: purchase ? (h(29) % 20_000) / 100 : null,
    engaged_ms: kind === 'engagement' ? h(37) % 120_000 : 0,
    props: { plan: pick(['free', 'pro', 'team'], h(41)), ab: pick(['a', 'b'], h(43)) },
    bot: h(47) % 100 === 0,
  };
}

async function folderBytes(dir: string, match: (name: string) => boolean): Promise<number> {
  let total = 0;
  for (const name of await readdir(dir)) if (match(name)) total += (await stat(join(dir, name))).size;
  return total;
}

const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

async function main() {
  const root = await mkdtemp(join(tmpdir(), 'tally-bench-events-'));
  const engine = await openEventEngine({ threads: 2 });
  const store = createEventStore({ root, engine, graceMs: 600_000, dirtyWindowMs: 30_000, now: () => DAY + 43_200_000 });
  const dir = partitionPath(root, SITE, dayOf(DAY));
  /** Bytes of the segments not merged yet (merged ones stay on disk for the grace period). */
  const visibleSegmentBytes = async () => {
    const segmentNames = new Set((await readPartition(dir, dayOf(DAY)))?.segments);
    return folderBytes(dir, (n) => segmentNames.has(n));
  };
  try {
    let building = 0;
    let merging = 0;
    let mergingCpu = 0;
    let segments = 0;
    const wall0 = performance.now();
    const cpu0 = cpuMs();
    for (let start = 0, batch = 1; start < EVENTS; start += BATCH, batch++) {
      const b0 = performance.now();
      const rows = Array.from({ length: Math.min(BATCH, EVENTS - start) }, (_, i) => eventAt(start + i));
      building += performance.now() - b0;
      await store.append(SITE, rows, { dirty: false });
      if (batch % MERGE_EVERY === 0) {
        // As the compactor does during the day: the new segments merged into one more file.
        segments += await visibleSegmentBytes();
        const m0 = performance.now();
        const mc0 = cpuMs();
        await store.maintainSite(SITE);
        merging += performance.now() - m0;
        mergingCpu += cpuMs() - mc0;
      }
    }
    const wall = performance.now() - wall0 - building - merging;
    const cpu = cpuMs() - cpu0 - building - mergingCpu;
    segments += await visibleSegmentBytes();

    // The day is over: its files are rewritten into one, sorted by ts.
    const c0 = performance.now();
    const rc0 = cpuMs();
    const p = await readPartition(dir, dayOf(DAY));
    if (!p || !(await compactPartition(engine, p, 'rewrite', DAY + 86_400_000, 30_000))) throw new Error('compaction failed');
    const compaction = performance.now() - c0;
    const compactionCpu = cpuMs() - rc0;
    const after = await readPartition(dir, dayOf(DAY));
    const compacted = await folderBytes(dir, (n) => n === after?.visible[0]);
    const summaryNames = Object.values(after?.manifest.summaries ?? {});
    const summaries = await folderBytes(dir, (n) => summaryNames.includes(n));

    // A redelivered batch of 1,000 events from the middle of the day: which does the store hold?
    const again = Array.from({ length: 1000 }, (_, i) => eventAt(Math.floor(EVENTS / 2) + i));
    const l0 = performance.now();
    const held = await store.heldIds(SITE, again);
    const lookup = performance.now() - l0;
    if (held.size !== again.length) throw new Error(`lookup found ${held.size} of ${again.length}`);

    // A dirty segment (half of it already stored): the next read dedupes the whole day first.
    const fresh = Array.from({ length: 500 }, (_, i) => ({ ...eventAt(i), message_id: `late-${i}` }));
    await store.append(SITE, [...again.slice(0, 500), ...fresh], { dirty: true });
    const d0 = performance.now();
    const snapshot = await store.snapshot(SITE, DAY, DAY + 86_400_000);
    const dedupe = performance.now() - d0;
    const [count] = await store.sql.all('SELECT count(*) AS n, count(DISTINCT message_id) AS ids FROM read_parquet($1)', [snapshot.files]);
    snapshot.release();
    if (Number(count?.['n']) !== EVENTS + 500 || Number(count?.['ids']) !== EVENTS + 500)
      throw new Error(`after dedupe: ${count?.['n']} rows, ${count?.['ids']} ids`);

    process.stdout.write(
      `${table(
        ['measure', 'value'],
        [
          { measure: 'events', value: int(EVENTS) },
          { measure: `append, batches of ${int(BATCH)}: events/s`, value: int((EVENTS / wall) * 1000) },
          { measure: 'append: process CPU per event', value: `${((cpu / EVENTS) * 1000).toFixed(1)} µs` },
          { measure: 'on disk as segments', value: `${(segments / 1e6).toFixed(1)} MB (${(segments / EVENTS).toFixed(1)} B/event)` },
          { measure: `merges every ${MERGE_EVERY} segments: CPU per event`, value: `${((mergingCpu / EVENTS) * 1000).toFixed(1)} µs` },
          { measure: 'rewrite of the finished day into one sorted file: wall / CPU', value: `${ms(compaction)} / ${ms(compactionCpu)}` },
          {
            measure: 'on disk after the rewrite: the compacted file',
            value: `${(compacted / 1e6).toFixed(1)} MB (${(compacted / EVENTS).toFixed(1)} B/event)`,
          },
          {
            measure: 'and its summaries (visits, pages and props files)',
            value: `${(summaries / 1e6).toFixed(1)} MB (${(summaries / EVENTS).toFixed(1)} B/event)`,
          },
          { measure: 'held-ids lookup, 1,000 redelivered events', value: ms(lookup) },
          { measure: 'read after a dirty segment (dedupe of the day first)', value: ms(dedupe) },
        ],
      )}\n`,
    );
  } finally {
    engine.close();
    await rm(root, { recursive: true, force: true });
  }
}

await main();
