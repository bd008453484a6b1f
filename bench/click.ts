import { existsSync } from 'node:fs';
import { loadavg } from 'node:os';
import { resolve } from 'node:path';
import { mapConcurrent } from './lib/concurrent.js';
import { freePort, portInUse, run, type Spawned, samplePeakRss, start, stop, waitForHttp } from './lib/processes.js';
import { int, mb, ms, type Row, table, times } from './lib/report.js';
import { REPO_ROOT, startTally, type TallyServer, unlinkMatching } from './lib/tally-server.js';
import { hasWrk, type LoadResult, runLoad } from './lib/wrk.js';

// npm run bench:click — the seed's single-click path, POST /click with a random user (1..10000)
// and product (1..1000), 64 connections, against Tally and, in the same run, the tutorial's
// Flask app as the tutorial runs it (app.run) and under gunicorn (2 sync workers). Each system
// runs alone: start, warm up, measure, stop. After Tally's run, every click is read back.
//
// Environment: BENCH_DURATION_S (10), BENCH_WARMUP_S (2), BENCH_SYSTEMS (tally,app.run,gunicorn;
// also tally-split: `serve --no-worker` plus one `tally worker`, the scale-out layout),
// BENCH_NODE_ARGS (node flags for Tally, e.g. "--cpu-prof --cpu-prof-dir=.bench/prof"),
// BENCH_HTTP_PROCESSES (Tally's TALLY_HTTP_PROCESSES, default 1), BENCH_FLASK_DIR (../shared/baselines/seed1_flask).

const CONNECTIONS = 64;
const THREADS = 2;
const USERS = 10_000;
const PRODUCTS = 1_000;
const DURATION_S = Number(process.env['BENCH_DURATION_S'] ?? 10);
const WARMUP_S = Number(process.env['BENCH_WARMUP_S'] ?? 2);
const SYSTEMS = (process.env['BENCH_SYSTEMS'] ?? 'tally,app.run,gunicorn').split(',');
const FLASK_DIR = resolve(process.env['BENCH_FLASK_DIR'] ?? resolve(REPO_ROOT, '../shared/baselines/seed1_flask'));
// Debian's interpreter and gunicorn: the python3 on PATH may be one without Flask.
const PYTHON = '/usr/bin/python3';
const GUNICORN = '/usr/bin/gunicorn';
const FLASK_REDIS = 'redis://127.0.0.1:6379/0';
const SCRIPT = resolve(REPO_ROOT, 'bench/lua/click.lua');
const DEADLINE_MS = 5 * 60_000;

interface Measured {
  system: string;
  load: LoadResult;
  rssMb: number;
  note?: string;
}

const say = (line: string) => process.stdout.write(line + '\n');

/** Warm-up, then the measured run with the server's memory sampled. Returns 2xx of both runs too. */
async function measure(url: string, pids: number | number[], env: Record<string, string> = {}) {
  const base = { url: `${url}/click`, script: SCRIPT, connections: CONNECTIONS, threads: THREADS, env };
  const warm = WARMUP_S > 0 ? await runLoad({ ...base, durationSeconds: WARMUP_S }) : undefined;
  const peakRss = samplePeakRss(pids);
  const load = await runLoad({ ...base, durationSeconds: DURATION_S });
  return { load, rssMb: peakRss(), warm };
}

/**
 * Reads every user's and product's clicks back through the stats API once the processor has
 * drained the streams, and checks them against what the server acknowledged.
 */
async function verifyCounts(tally: TallyServer, clientOk: number, slack: number): Promise<{ ok: boolean; text: string }> {
  await tally.waitDrained();
  const accepted = (await tally.metrics()).get('tally_ingested_events_total') ?? NaN;
  const get = async (path: string) => {
    const res = await fetch(`${tally.url}${path}`, { headers: { authorization: tally.bearer }, signal: AbortSignal.timeout(10_000) });
    if (res.status !== 200) throw new Error(`GET ${path} answered ${res.status}: ${await res.text()}`);
    return (await res.json()) as { clicks: number };
  };
  const ids = (n: number) => Array.from({ length: n }, (_, i) => i + 1);
  const userClicks = await mapConcurrent(ids(USERS), 16, async (id) => (await get(`/v1/stats/users/${id}`)).clicks);
  const productClicks = await mapConcurrent(ids(PRODUCTS), 16, async (id) => (await get(`/v1/stats/products/${id}`)).clicks);
  const byUsers = userClicks.reduce((a, b) => a + b, 0);
  const byProducts = productClicks.reduce((a, b) => a + b, 0);
  // wrk drops the requests in flight when it stops; the server may have accepted them.
  const ok = byUsers === accepted && byProducts === accepted && clientOk <= accepted && accepted <= clientOk + slack;
  const text =
    `${ok ? 'counts exact' : 'COUNTS WRONG'}: the server accepted ${int(accepted)} clicks (wrk received ${int(clientOk)} 200s; ` +
    `${int(accepted - clientOk)} were in flight when wrk stopped, at most ${slack} could be); ` +
    `read back ${int(byUsers)} over ${int(USERS)} users and ${int(byProducts)} over ${int(PRODUCTS)} products.`;
  return { ok, text };
}

async function benchTally(split: boolean): Promise<{ result: Measured; verified: { ok: boolean; text: string } }> {
  const nodeArgs = (process.env['BENCH_NODE_ARGS'] ?? '').split(' ').filter(Boolean);
  const layout = split ? { serveArgs: ['--no-worker'], workers: 1 } : {};
  const processes = process.env['BENCH_HTTP_PROCESSES'] ?? '1';
  const tally = await startTally({
    env: { TALLY_COLLECT_RATE_LIMIT: '0', LOG_LEVEL: 'warn', TALLY_HTTP_PROCESSES: processes },
    nodeArgs,
    ...layout,
  });
  const system = split ? 'Tally, serve --no-worker + worker' : 'Tally (node dist/cli.js serve)';
  try {
    say(`${system}: ${tally.url} (pids ${tally.pids.join(', ')}), measuring…`);
    const { load, rssMb, warm } = await measure(tally.url, tally.pids, { BENCH_AUTH: tally.basic });
    const clientOk = load.ok + (warm?.ok ?? 0);
    const slack = CONNECTIONS * (warm ? 2 : 1) + load.socketErrors + (warm?.socketErrors ?? 0);
    const verified = await verifyCounts(tally, clientOk, slack);
    return { result: { system, load, rssMb }, verified: { ...verified, text: `${system}: ${verified.text}` } };
  } finally {
    await tally.stop();
    await tally.cleanup();
  }
}

/** Why the Flask baseline cannot run here, or undefined when it can. */
async function flaskMissing(): Promise<string | undefined> {
  if (!existsSync(resolve(FLASK_DIR, 'app.py'))) return `${FLASK_DIR}/app.py is missing`;
  const probe = await run(PYTHON, ['-c', 'import flask, redis'], { timeoutMs: 10_000 });
  if (probe.code !== 0) return `${PYTHON} lacks Flask or redis-py (apt-get install -y python3-flask python3-redis)`;
  return undefined;
}

async function benchFlask(system: 'app.run' | 'gunicorn'): Promise<Measured | string> {
  let port = 5000;
  let proc: Spawned;
  if (system === 'app.run') {
    // app.run() listens on 5000, as the tutorial has it.
    if (await portInUse(port)) return 'port 5000 is taken (another benchmark running?)';
    proc = start(PYTHON, ['app.py'], { cwd: FLASK_DIR });
  } else {
    if (!existsSync(GUNICORN)) return `${GUNICORN} is missing (apt-get install -y gunicorn)`;
    port = await freePort();
    proc = start(GUNICORN, ['-w', '2', '-b', `127.0.0.1:${port}`, 'app:app'], { cwd: FLASK_DIR });
  }
  const url = `http://127.0.0.1:${port}`;
  try {
    // Any answer means it serves (its read route fails on purpose for users with clicks).
    await waitForHttp(`${url}/user/0/clicks`, proc, { ok: () => true });
    say(`Flask ${system}: ${url} (pid ${proc.pid}), measuring…`);
    const { load, rssMb } = await measure(url, proc.pid);
    return { system: system === 'app.run' ? 'Flask, app.run (tutorial)' : 'Flask, gunicorn -w 2', load, rssMb };
  } finally {
    await stop(proc);
  }
}

function row(m: Measured): Row {
  return {
    system: m.system,
    'req/s': int(m.load.rps),
    p50: ms(m.load.latencyMs.p50),
    p99: ms(m.load.latencyMs.p99),
    'non-2xx': int(m.load.failedStatus),
    'socket errors': int(m.load.socketErrors),
    'server RSS (peak)': mb(m.rssMb),
  };
}

function compare(name: string, tally: Measured, other: Measured | undefined, label: string, target: number): string {
  if (!other) return `${name} vs ${label}: no baseline figures.`;
  const ratio = tally.load.rps / other.load.rps;
  const p99 = tally.load.latencyMs.p99 < other.load.latencyMs.p99;
  const met = ratio >= target && p99;
  return (
    `${name} vs ${label}: ${times(tally.load.rps, other.load.rps)} req/s, p99 ${ms(tally.load.latencyMs.p99)} vs ` +
    `${ms(other.load.latencyMs.p99)} — target ≥ ${target}× with a lower p99: ${met ? 'met' : 'NOT met'}`
  );
}

async function main(): Promise<number> {
  if (!(await hasWrk())) {
    say('bench:click needs wrk (apt-get install -y wrk).');
    return 1;
  }
  say(
    `POST /click, random user 1..${USERS} and product 1..${PRODUCTS}; wrk ${THREADS} threads, ${CONNECTIONS} connections, ${WARMUP_S} s warm-up + ${DURATION_S} s each`,
  );
  // Figures belong to a build and a machine state: say which.
  const head = await run('git', ['describe', '--always', '--dirty'], { cwd: REPO_ROOT, timeoutMs: 5000 });
  say(
    `build: ${head.stdout.trim() || 'unknown'}; load average before the run: ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
  const results: Measured[] = [];
  const verified: { ok: boolean; text: string }[] = [];
  for (const split of [false, true]) {
    if (!SYSTEMS.includes(split ? 'tally-split' : 'tally')) continue;
    const tally = await benchTally(split);
    results.push(tally.result);
    verified.push(tally.verified);
    say(tally.verified.text);
  }
  const flaskSystems = (['app.run', 'gunicorn'] as const).filter((s) => SYSTEMS.includes(s));
  if (flaskSystems.length > 0) {
    const missing = await flaskMissing();
    if (missing) say(`Flask baseline skipped: ${missing}.`);
    else {
      try {
        for (const system of flaskSystems) {
          const measured = await benchFlask(system);
          if (typeof measured === 'string') say(`Flask ${system} skipped: ${measured}.`);
          else results.push(measured);
        }
      } finally {
        // The tutorial's app writes into db 0: remove its keys.
        for (const pattern of ['user:*:clicks', 'product:*:clicks']) await unlinkMatching(FLASK_REDIS, pattern);
      }
    }
  }

  say('');
  say(table(['system', 'req/s', 'p50', 'p99', 'non-2xx', 'socket errors', 'server RSS (peak)'], results.map(row)));
  say('');
  for (const tally of results.filter((r) => r.system.startsWith('Tally'))) {
    const label = tally.system === 'Tally (node dist/cli.js serve)' ? 'Tally' : tally.system;
    say(
      compare(
        label,
        tally,
        results.find((r) => r.system.includes('app.run')),
        'app.run',
        10,
      ),
    );
    say(
      compare(
        label,
        tally,
        results.find((r) => r.system.includes('gunicorn')),
        'gunicorn',
        4,
      ),
    );
  }
  for (const v of verified) say(v.text);
  return verified.some((v) => !v.ok) ? 1 : 0;
}

const deadline = setTimeout(() => {
  process.stderr.write(`bench:click did not finish within ${DEADLINE_MS / 1000} s; stopping its processes.\n`);
  process.exit(1);
}, DEADLINE_MS);
deadline.unref();

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`bench:click failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
