import { resolve } from 'node:path';
import { Redis } from 'ioredis';
import pg from 'pg';
import { cpuBetween, cpuSnapshot, named, type PickProcess, run, treeOf, treeRssMb } from './lib/processes.js';
import { commandsBetween, type RedisUsage, redisUsage } from './lib/redis-usage.js';
import { int, mb, ms, table } from './lib/report.js';
import { DATABASE_URL, REDIS_URL, REPO_ROOT, startTally } from './lib/tally-server.js';
import { hasWrk, runLoad } from './lib/wrk.js';

// npm run bench:pipeline — end-to-end analytics throughput: wrk (a separate load process) posts
// Segment batches of 100 events to POST /v1/batch for BENCH_DURATION_S (120) seconds; Tally
// (external mode: Redis + PostgreSQL on this machine, its own key prefix and schema, removed at
// the end) collects, processes (enrichment, the atomic step, the event store's Parquet segments) and
// flushes. Reported: accepted events/s, end-to-end processed events/s (accepted events over the
// time until the stream backlog is empty), freshness (a probe page view on a site of its own,
// posted every 250 ms: time until /v1/stats/summary shows it, p50/p99), memory every 10 s, the
// ceiling of Redis alone (redis-benchmark -P 64), and Redis' CPU time per event during the run
// (INFO cpu): the rate one Redis core would allow for this workload. A saturating load keeps a
// backlog, so freshness there is queueing; a second, paced phase (each connection waits between
// requests) offers BENCH_PACED_FRACTION (0.5) of the end-to-end rate for BENCH_PACED_S (30) s and
// measures freshness below saturation. The page views counted are checked.
//
// Environment: BENCH_DURATION_S (120), BENCH_CONNECTIONS (16), BENCH_LAYOUT (single: `serve`;
// split: `serve --no-worker` + one `tally worker`), BENCH_NODE_ARGS (node flags for Tally, e.g.
// "--cpu-prof --cpu-prof-dir=.bench/prof").

const DURATION_S = Number(process.env['BENCH_DURATION_S'] ?? 120);
const CONNECTIONS = Number(process.env['BENCH_CONNECTIONS'] ?? 16);
const LAYOUT = process.env['BENCH_LAYOUT'] ?? 'single';
const PACED_FRACTION = Number(process.env['BENCH_PACED_FRACTION'] ?? 0.5);
const PACED_S = Number(process.env['BENCH_PACED_S'] ?? 30);
const EVENTS_PER_REQUEST = 100;
const PAGEVIEWS_PER_REQUEST = 60;
const PROBE_EVERY_MS = 250;
const ADMIN_TOKEN = 'bench-admin-token-0123456789';
const SCRIPT = resolve(REPO_ROOT, 'bench/lua/batch.lua');

const say = (line: string) => process.stdout.write(line + '\n');
const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;

async function redisCeiling(): Promise<string> {
  const result = await run('redis-benchmark', ['-q', '-P', '64', '-n', '2000000', '-t', 'incr,set'], { timeoutMs: 120_000 });
  return result.stdout
    .split(/\r|\n/)
    .filter((l) => /requests per second/.test(l))
    .map((l) => l.trim())
    .join('; ');
}

/** Rows inserted and updated so far in the schema's rollups and counters tables (PostgreSQL's statistics, read after they settle). */
async function durableRowsWritten(schema: string): Promise<{ rollups: number; counters: number }> {
  await new Promise((r) => setTimeout(r, 1000));
  const client = new pg.Client({ connectionString: DATABASE_URL });
  await client.connect();
  try {
    const result = await client.query<{ relname: string; n: string }>(
      `SELECT relname, n_tup_ins + n_tup_upd AS n FROM pg_stat_user_tables WHERE schemaname = $1 AND relname IN ('rollups', 'counters')`,
      [schema],
    );
    const of = (table: string) => Number(result.rows.find((r) => r.relname === table)?.n ?? NaN);
    return { rollups: of('rollups'), counters: of('counters') };
  } finally {
    await client.end();
  }
}

/** Redis' own usage, on a connection of its own. */
async function readRedisUsage(): Promise<RedisUsage> {
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 2 });
  try {
    return await redisUsage(redis);
  } finally {
    redis.disconnect();
  }
}

async function main(): Promise<void> {
  if (!(await hasWrk())) throw new Error('wrk is missing: apt-get install wrk');
  say(`redis-benchmark -P 64 (Redis alone): ${await redisCeiling()}`);

  const tally = await startTally({
    env: { TALLY_COLLECT_RATE_LIMIT: '0', ADMIN_TOKEN, TALLY_FLUSH_INTERVAL_MS: '1000' },
    ...(LAYOUT === 'split' ? { serveArgs: ['--no-worker'], workers: 1 } : {}),
    ...(process.env['BENCH_NODE_ARGS'] ? { nodeArgs: process.env['BENCH_NODE_ARGS'].split(' ') } : {}),
  });
  try {
    const created = await fetch(`${tally.url}/v1/sites`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'probe' }),
    });
    const probe = (await created.json()) as { writeKey: string; secretKey: string };

    // Freshness: one probe page view at a time, polled until the summary counts it; each sample
    // is kept for the phase it ran in (none while a backlog drains between phases).
    const freshness: Record<'saturated' | 'paced', number[]> = { saturated: [], paced: [] };
    const now: { phase: keyof typeof freshness | 'between' } = { phase: 'saturated' };
    let probing = true;
    let probeFailure: string | undefined;
    let sent = 0;
    const prober = (async () => {
      while (probing) {
        sent += 1;
        const started = performance.now();
        await fetch(`${tally.url}/v1/page`, {
          method: 'POST',
          headers: { authorization: 'Basic ' + Buffer.from(`${probe.writeKey}:`).toString('base64'), 'content-type': 'application/json' },
          body: JSON.stringify({ anonymousId: 'probe', name: 'probe', messageId: `probe-${sent}` }),
        });
        for (;;) {
          const res = await fetch(`${tally.url}/v1/stats/summary?period=today`, {
            headers: { authorization: `Bearer ${probe.secretKey}` },
          });
          if (((await res.json()) as { pageviews: number }).pageviews >= sent) break;
          if (performance.now() - started > 30_000) {
            // Not thrown: an unawaited rejection would end the run before its clean-up.
            probeFailure = 'a probe event did not show within 30 s (the processor fell behind)';
            return;
          }
          await new Promise((r) => setTimeout(r, 5));
        }
        const startedIn = now.phase;
        if (startedIn !== 'between') freshness[startedIn].push(performance.now() - started);
        await new Promise((r) => setTimeout(r, PROBE_EVERY_MS));
      }
    })().catch((err: unknown) => {
      probeFailure = `the probe failed: ${String(err)}`;
    });

    const memory: { at: number; mb: number }[] = [];
    const t0 = Date.now();
    const sampleMemory = () => memory.push({ at: (Date.now() - t0) / 1000, mb: tally.pids.reduce((n, pid) => n + treeRssMb(pid), 0) });
    sampleMemory();
    const sampler = setInterval(sampleMemory, 10_000);

    say(`load: ${CONNECTIONS} connections, batches of ${EVENTS_PER_REQUEST}, ${DURATION_S} s, layout ${LAYOUT}`);
    const redisBefore = await readRedisUsage();
    const cpuBefore = cpuSnapshot();
    const loadStart = Date.now();
    const load = await runLoad({
      url: tally.url,
      script: SCRIPT,
      connections: CONNECTIONS,
      threads: 1,
      durationSeconds: DURATION_S,
      timeoutSeconds: 10,
      env: { BENCH_AUTH: tally.basic },
    });
    const loadEnd = Date.now();
    const atLoadEnd = await tally.metrics();
    const backlogAtEnd = atLoadEnd.get('tally_stream_backlog') ?? NaN;
    // Durability lag: the age of the oldest counter delta that may not be in PostgreSQL yet.
    const flushLagAtEnd = atLoadEnd.get('tally_flush_lag_seconds') ?? NaN;
    await tally.waitDrained(300_000);
    const drainedAt = Date.now();
    const redisAfter = await readRedisUsage();
    const accepted = load.ok * EVENTS_PER_REQUEST;
    // PostgreSQL caught up once a flush pass that started after the load stopped left nothing
    // behind: the lag metric (age of the oldest delta that may not be durable) falls below the
    // time since then.
    let caughtUpAt = NaN;
    while (Date.now() - drainedAt < 300_000) {
      const lag = (await tally.metrics()).get('tally_flush_lag_seconds') ?? Infinity;
      if (lag < (Date.now() - loadEnd) / 1000) {
        caughtUpAt = Date.now();
        break;
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    const rowsWritten = await durableRowsWritten(tally.schema);
    // Every event's whole cost, from the load's start until PostgreSQL caught up (the same figure
    // for Redis above stops when the stream drained).
    const cpuCaughtUp = cpuSnapshot();
    const cpuPerEvent = (pick: PickProcess) => ((cpuBetween(cpuBefore, cpuCaughtUp, pick) / accepted) * 1e6).toFixed(1);

    // Paced: the same requests at PACED_FRACTION of the end-to-end rate just measured (each
    // connection waits between requests), for freshness when the processor is not saturated.
    const pacedTarget = (accepted / ((drainedAt - loadStart) / 1000)) * PACED_FRACTION;
    const delayMs = Math.max(1, Math.round((CONNECTIONS * 1000) / (pacedTarget / EVENTS_PER_REQUEST)));
    now.phase = 'paced';
    const paced = await runLoad({
      url: tally.url,
      script: SCRIPT,
      connections: CONNECTIONS,
      threads: 1,
      durationSeconds: PACED_S,
      timeoutSeconds: 10,
      env: { BENCH_AUTH: tally.basic, BENCH_DELAY_MS: String(delayMs) },
    });
    now.phase = 'between';
    await tally.waitDrained(300_000);
    clearInterval(sampler);
    sampleMemory();
    probing = false;
    await prober;
    if (probeFailure) throw new Error(probeFailure);

    // Other work on this Redis (other benchmarks, tests) counts too: a ceiling, not an exact cost.
    const redisCpu = redisAfter.cpuSeconds - redisBefore.cpuSeconds;
    // EVALSHA's time covers every script (per-script stats need Redis 7.4): reported as what it is.
    const scriptSeconds = (commandsBetween(redisBefore, redisAfter).find((c) => c.name === 'evalsha')?.usec ?? 0) / 1e6;
    const summary = (await (
      await fetch(`${tally.url}/v1/stats/summary?period=today`, { headers: { authorization: tally.bearer } })
    ).json()) as { pageviews: number };
    const sorted = [...freshness.saturated].sort((a, b) => a - b);
    const pacedSorted = [...freshness.paced].sort((a, b) => a - b);
    say('');
    say(
      table(
        ['figure', 'value'],
        [
          { figure: 'accepted events/s (2xx × 100 / s)', value: int(accepted / load.seconds) },
          { figure: 'end to end events/s (accepted / time until drained)', value: int(accepted / ((drainedAt - loadStart) / 1000)) },
          {
            figure: 'requests 2xx / non-2xx / socket errors',
            value: `${int(load.ok)} / ${int(load.failedStatus)} / ${int(load.socketErrors)}`,
          },
          { figure: 'request latency p50 / p99', value: `${ms(load.latencyMs.p50)} / ${ms(load.latencyMs.p99)}` },
          { figure: 'stream backlog when the load stopped (entries)', value: int(backlogAtEnd) },
          {
            figure: 'flush lag when the load stopped (age of the oldest delta not surely in PostgreSQL, s)',
            value: flushLagAtEnd.toFixed(1),
          },
          { figure: 'PostgreSQL caught up, s after the load stopped', value: ((caughtUpAt - loadEnd) / 1000).toFixed(1) },
          {
            figure: 'rows the write-behind wrote per event until then (rollups / counters: inserts + updates)',
            value: `${(rowsWritten.rollups / accepted).toFixed(2)} / ${(rowsWritten.counters / accepted).toFixed(2)}`,
          },
          {
            figure: `freshness p50 / p99 (${sorted.length} probes)`,
            value: `${ms(percentile(sorted, 50))} / ${ms(percentile(sorted, 99))}`,
          },
          {
            figure: `paced at ${PACED_FRACTION * 100} % for ${PACED_S} s: accepted events/s, request p99`,
            value: `${int((paced.ok * EVENTS_PER_REQUEST) / paced.seconds)}, ${ms(paced.latencyMs.p99)}`,
          },
          {
            figure: `paced: freshness p50 / p99 (${pacedSorted.length} probes)`,
            value: `${ms(percentile(pacedSorted, 50))} / ${ms(percentile(pacedSorted, 99))}`,
          },
          {
            figure: 'page views counted / answered 2xx to wrk, both phases (+ in flight at the ends)',
            value: `${int(summary.pageviews)} / ${int((load.ok + paced.ok) * PAGEVIEWS_PER_REQUEST)}`,
          },
          {
            figure: 'Redis CPU per event (whole server, load start to drained) → events/s one Redis core allows',
            value: `${((redisCpu / accepted) * 1e6).toFixed(1)} µs → ${int(accepted / redisCpu)}`,
          },
          {
            figure: 'CPU µs per event, load start to PostgreSQL caught up: Tally / Redis / PostgreSQL (from /proc)',
            value: [treeOf(...tally.pids), named('redis-server'), named('postgres')].map(cpuPerEvent).join(' / '),
          },
          {
            figure: 'Redis busy in scripts (EVALSHA time / wall time)',
            value: `${((scriptSeconds / ((drainedAt - loadStart) / 1000)) * 100).toFixed(0)} %`,
          },
        ],
      ),
    );
    say('');
    say('memory (RSS of the Tally processes): ' + memory.map((m) => `${m.at.toFixed(0)}s ${mb(m.mb)}`).join(', '));
    // Requests still in flight when wrk stopped were accepted but not seen by wrk: at most one per connection.
    const extra = summary.pageviews - (load.ok + paced.ok) * PAGEVIEWS_PER_REQUEST;
    if (extra < 0 || extra > 2 * CONNECTIONS * PAGEVIEWS_PER_REQUEST) {
      say(`page views do not match: ${extra} more than answered`);
      process.exitCode = 1;
    }
  } finally {
    await tally.stop();
    await tally.cleanup();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:pipeline failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
