import { randomBytes } from 'node:crypto';
import { chmodSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { pino } from 'pino';
import { loadConfig } from '../src/config.js';
import { openContext } from '../src/context.js';
import { createRawEventWriter, type RawRow } from '../src/process/raw-events.js';
import { cpuBetween, cpuSnapshot, named } from './lib/processes.js';
import { int, table } from './lib/report.js';
import { DATABASE_URL, REDIS_URL, unlinkMatching } from './lib/tally-server.js';

// npm run bench:raw — what the durable copy of raw events costs PostgreSQL: every event is one
// row, so no pre-aggregation shrinks this part of ingest. Rows shaped like bench:pipeline's mix
// (60 % page views, the rest track events; a browser's context of ~300 bytes) go through the
// raw-event writer's own statement (src/process/raw-events.ts) in batches of BENCH_BATCH, from
// one writer, then from two at once, each time into an empty day partition of a fresh schema.
// For reference, the same rows by COPY from a file (server-side, so the connecting role must be
// allowed to read server files; skipped otherwise) into the same table: the floor of any insert
// of these rows, without the writer's ON CONFLICT. PostgreSQL's CPU comes from /proc (all its
// processes: run nothing else against it). Prints rows/s, PostgreSQL CPU µs per row, and the share
// of this machine's cores that 100,000 events/s would take for this copy alone.
//
// Environment: BENCH_ROWS (300,000), BENCH_BATCH (1,000: the processor writes one statement per
// read of its stream shard, up to that many events).

const ROWS = Number(process.env['BENCH_ROWS'] ?? 300_000);
const BATCH = Number(process.env['BENCH_BATCH'] ?? 1000);
const TARGET_EVENTS_PER_S = 100_000;
const CORES = availableParallelism();

const say = (line: string) => process.stdout.write(line + '\n');

const AGENT = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36';
const REFERRERS = ['', 'https://www.google.com/', 'https://news.ycombinator.com/'];

function rowsOf(run: string, day: string, from: number, count: number): RawRow[] {
  const at = new Date().toISOString();
  return Array.from({ length: count }, (_, k): RawRow => {
    const i = from + k;
    const visitor = 1 + ((i * 7919) % 100_000);
    const path = `/page/${1 + (i % 200)}`;
    const page = i % 100 < 60;
    return {
      s: 'bench',
      d: day,
      id: `${run}-${i}`,
      type: page ? 'page' : 'track',
      ts: at,
      rt: at,
      v: `v${visitor}`,
      u: visitor <= 30_000 ? `u${visitor}` : null,
      a: `v${visitor}`,
      e: page ? null : i % 100 < 80 ? 'Product Clicked' : `Event ${i % 20}`,
      n: null,
      g: null,
      pu: null,
      p: page ? {} : { product_id: `p${i % 1000}` },
      c: {
        ip: '203.0.113.7',
        userAgent: AGENT,
        page: { path, url: `https://shop.example${path}`, referrer: REFERRERS[i % REFERRERS.length] },
        library: { name: 'analytics.js', version: '4.1.0' },
      },
      t: {},
    };
  });
}

interface Measured {
  way: string;
  rows: number;
  seconds: number;
  pgSeconds: number;
}

async function timed(way: string, rows: number, fn: () => Promise<void>): Promise<Measured> {
  const before = cpuSnapshot();
  const t0 = performance.now();
  await fn();
  const seconds = (performance.now() - t0) / 1000;
  return { way, rows, seconds, pgSeconds: cpuBetween(before, cpuSnapshot(), named('postgres')) };
}

/** COPY's text format: tab-separated, \N for null, backslashes doubled. */
function copyLine(r: RawRow): string {
  const field = (v: unknown) => {
    if (v === null || v === undefined) return '\\N';
    const text = typeof v === 'string' ? v : JSON.stringify(v);
    return text.replace(/\\/g, '\\\\').replace(/\t/g, '\\t').replace(/\n/g, '\\n').replace(/\r/g, '\\r');
  };
  return [r.s, r.d, r.id, r.type, r.ts, r.rt, r.v, r.u, r.a, r.e, r.n, r.g, r.pu, r.p, r.c, r.t].map(field).join('\t');
}

async function main(): Promise<void> {
  const schema = `bench_raw_${Date.now().toString(36)}`;
  const config = loadConfig({ REDIS_URL, DATABASE_URL, TALLY_PG_SCHEMA: schema, TALLY_REDIS_PREFIX: schema, LOG_LEVEL: 'warn' });
  const ctx = await openContext(config, pino({ level: 'warn' }));
  const admin = new pg.Client({ connectionString: DATABASE_URL, options: `-c search_path=${schema}` });
  await admin.connect();
  const file = join(tmpdir(), `${schema}.tsv`);
  try {
    const writer = createRawEventWriter(ctx);
    const run = randomBytes(4).toString('hex');
    const results: Measured[] = [];
    // Each measurement writes into a day of its own, so each starts from an empty partition.
    const days = ['2026-01-01', '2026-01-02', '2026-01-03'];
    for (const [i, writers] of [1, 2].entries()) {
      const day = days[i] as string;
      const batches = Array.from({ length: Math.ceil(ROWS / BATCH) }, (_, b) =>
        rowsOf(run, day, b * BATCH, Math.min(BATCH, ROWS - b * BATCH)),
      );
      await writer.insert(batches[0]!.slice(0, 1)); // creates the partition outside the timing
      const rest = batches.slice(1);
      let next = 0;
      const rows = rest.reduce((n, b) => n + b.length, 0);
      results.push(
        await timed(`writer's statement, ${writers} writer${writers > 1 ? 's' : ''}`, rows, async () => {
          await Promise.all(
            Array.from({ length: writers }, async () => {
              while (next < rest.length) await writer.insert(rest[next++]!);
            }),
          );
        }),
      );
    }
    const copyDay = days[2] as string;
    await writer.insert(rowsOf(run, copyDay, ROWS, 1));
    writeFileSync(file, rowsOf(run, copyDay, 0, ROWS).map(copyLine).join('\n') + '\n');
    chmodSync(file, 0o644);
    try {
      results.push(await timed('COPY from a file (reference)', ROWS, async () => void (await admin.query(`COPY events FROM '${file}'`))));
    } catch (err) {
      say(`COPY skipped: ${(err as Error).message}`);
    }
    say(`bench:raw — ${int(ROWS)} raw events per measurement, batches of ${int(BATCH)}; ${CORES} cores; PostgreSQL CPU from /proc`);
    say('');
    say(
      table(
        ['way', 'rows/s', 'PostgreSQL CPU µs per row', 'PostgreSQL cores busy', `cores for ${int(TARGET_EVENTS_PER_S)} events/s`],
        results.map((r) => ({
          way: r.way,
          'rows/s': int(r.rows / r.seconds),
          'PostgreSQL CPU µs per row': ((r.pgSeconds / r.rows) * 1e6).toFixed(1),
          'PostgreSQL cores busy': (r.pgSeconds / r.seconds).toFixed(2),
          [`cores for ${int(TARGET_EVENTS_PER_S)} events/s`]: `${((r.pgSeconds / r.rows) * TARGET_EVENTS_PER_S).toFixed(2)} of ${CORES}`,
        })),
      ),
    );
  } finally {
    rmSync(file, { force: true });
    await admin.query(`DROP SCHEMA ${schema} CASCADE`).catch(() => undefined);
    await admin.end();
    await ctx.close();
    await unlinkMatching(REDIS_URL, `${schema}:*`);
  }
}

await main();
