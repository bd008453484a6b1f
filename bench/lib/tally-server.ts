import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import pg from 'pg';
import { freePort, run, type Spawned, start, stop, waitForHttp } from './processes.js';

// A Tally server under test: the built CLI (`node dist/cli.js serve`, so run `npm run build`
// first) in external mode, in a Redis key prefix and PostgreSQL schema of its own, with a fresh
// site and an event store folder in the temp dir. `cleanup()` removes the prefix's keys, drops
// the schema and deletes the folder.

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const REDIS_URL = process.env['BENCH_REDIS_URL'] ?? 'redis://127.0.0.1:6379';
export const DATABASE_URL = process.env['BENCH_DATABASE_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';

export interface TallyOptions {
  /** Extra environment (TALLY_COLLECT_RATE_LIMIT, TALLY_STREAM_SHARDS, …). */
  env?: Record<string, string>;
  /** Arguments for node itself, e.g. ['--cpu-prof', '--cpu-prof-dir=.bench']. */
  nodeArgs?: string[];
  /** Arguments after `serve`, e.g. ['--no-worker']. */
  serveArgs?: string[];
  /** Also start this many `tally worker` processes (with serveArgs ['--no-worker']: the split layout). */
  workers?: number;
}

export interface TallyServer {
  url: string;
  /** The `serve` process. */
  pid: number;
  proc: Spawned;
  /** The serve process, then the workers: what memory and CPU are summed over. */
  pids: number[];
  /** Its PostgreSQL schema (also its Redis key prefix). */
  schema: string;
  site: { id: string; writeKey: string; secretKey: string };
  /** Authorization header of the site's write key (Basic, empty password). */
  basic: string;
  /** Authorization header of the site's secret key. */
  bearer: string;
  /** The server's /metrics, as series ("name" or "name{labels}") → value. */
  metrics(): Promise<Map<string, number>>;
  /** Waits until the processor has acknowledged every ingested batch (stream backlog 0). */
  waitDrained(timeoutMs?: number): Promise<void>;
  /** SIGTERM (graceful shutdown) to the workers, then to serve; SIGKILL after 15 s. */
  stop(): Promise<void>;
  /** Deletes the prefix's Redis keys and drops the schema. Call after stop(). */
  cleanup(): Promise<void>;
}

function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

/** Deletes every key matching the pattern (SCAN + UNLINK: fine in a tool, never in Tally). */
export async function unlinkMatching(redisUrl: string, pattern: string): Promise<number> {
  const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 2 });
  await redis.connect();
  let removed = 0;
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) removed += await redis.unlink(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
  return removed;
}

async function dropSchema(schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: DATABASE_URL, connectionTimeoutMillis: 5000 });
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  } finally {
    await client.end();
  }
}

export async function startTally(options: TallyOptions = {}): Promise<TallyServer> {
  const cli = `${REPO_ROOT}dist/cli.js`;
  if (!existsSync(cli)) throw new Error('dist/cli.js is missing: run `npm run build` first.');
  const name = `bench_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;
  const port = await freePort();
  const env: Record<string, string> = {
    REDIS_URL,
    DATABASE_URL,
    TALLY_REDIS_PREFIX: name,
    TALLY_PG_SCHEMA: name,
    TALLY_EVENTS_DIR: mkdtempSync(join(tmpdir(), `${name}-events-`)),
    PORT: String(port),
    HOST: '127.0.0.1',
    LOG_LEVEL: 'warn',
    ...options.env,
  };
  const cleanup = async () => {
    await unlinkMatching(REDIS_URL, `${name}:*`);
    await dropSchema(name);
    rmSync(env['TALLY_EVENTS_DIR'] as string, { recursive: true, force: true });
  };

  // `site create` migrates the fresh schema and prints the new site's keys as JSON.
  const created = await run(process.execPath, [cli, 'site', 'create', 'bench'], { cwd: REPO_ROOT, env, timeoutMs: 60_000 });
  const json = created.stdout.slice(created.stdout.indexOf('{'));
  if (created.code !== 0 || !json.startsWith('{')) {
    await cleanup();
    throw new Error(`tally site create failed (exit ${created.code}):\n${created.stdout}\n${created.stderr}`);
  }
  const site = JSON.parse(json) as TallyServer['site'];

  const proc = start(process.execPath, [...(options.nodeArgs ?? []), cli, 'serve', ...(options.serveArgs ?? [])], {
    cwd: REPO_ROOT,
    env,
  });
  const url = `http://127.0.0.1:${port}`;
  const workers: Spawned[] = [];
  const stopAll = async () => {
    await Promise.all(workers.map((w) => stop(w, 15_000)));
    await stop(proc, 15_000);
  };
  try {
    await waitForHttp(`${url}/readyz`, proc);
    for (let i = 0; i < (options.workers ?? 0); i++) {
      // A worker serves health and metrics only; any free port will do.
      const workerPort = await freePort();
      const worker = start(process.execPath, [...(options.nodeArgs ?? []), cli, 'worker'], {
        cwd: REPO_ROOT,
        env: { ...env, PORT: String(workerPort) },
      });
      workers.push(worker);
      await waitForHttp(`http://127.0.0.1:${workerPort}/readyz`, worker);
    }
  } catch (err) {
    await stopAll();
    await cleanup();
    throw err;
  }

  const metrics = async () => {
    const res = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(5000) });
    return parseMetrics(await res.text());
  };

  return {
    url,
    pid: proc.pid,
    proc,
    pids: [proc.pid, ...workers.map((w) => w.pid)],
    schema: name,
    site,
    basic: 'Basic ' + Buffer.from(`${site.writeKey}:`).toString('base64'),
    bearer: `Bearer ${site.secretKey}`,
    metrics,
    async waitDrained(timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const backlog = (await metrics()).get('tally_stream_backlog');
        if (backlog === 0) return;
        if (Date.now() > deadline) throw new Error(`the stream backlog is still ${backlog} after ${timeoutMs} ms`);
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    },
    stop: stopAll,
    cleanup,
  };
}
