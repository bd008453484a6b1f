import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from './processes.js';

// The load generator: wrk (C, event loop per thread), in a process of its own so it never shares
// the server's event loop. A benchmark's Lua script builds the requests (see bench/lua/click.lua);
// this module appends a `done()` that reports the figures as one JSON line, so scripts must not
// define `done` themselves.

export interface LoadOptions {
  /** Base URL; the script's requests go to its path unless they set their own. */
  url: string;
  /** Path of the Lua script that builds the requests. */
  script: string;
  connections: number;
  threads: number;
  durationSeconds: number;
  /** A request without an answer after this long counts as a timeout error. */
  timeoutSeconds?: number;
  /** Environment for the script (os.getenv), e.g. an Authorization header. */
  env?: Record<string, string>;
}

export interface LoadResult {
  /** Responses received (any status). */
  responses: number;
  /** Responses with a 2xx or 3xx status. */
  ok: number;
  /** Responses with another status. */
  failedStatus: number;
  /** Connect, read, write errors and timeouts. */
  socketErrors: number;
  seconds: number;
  /** Successful responses per second. */
  rps: number;
  latencyMs: { p50: number; p90: number; p99: number; max: number };
}

const REPORTER = `
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\\nWRK_JSON {"responses":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"p50":%d,"p90":%d,"p99":%d,"max":%d}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
`;

interface WrkReport {
  responses: number;
  duration_us: number;
  connect: number;
  read: number;
  write: number;
  status: number;
  timeout: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

/** Runs wrk against options.url and returns its figures; throws if wrk is missing or fails. */
export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const dir = mkdtempSync(join(tmpdir(), 'tally-bench-'));
  const script = join(dir, 'load.lua');
  writeFileSync(script, readFileSync(options.script, 'utf8') + REPORTER);
  try {
    const timeout = options.timeoutSeconds ?? 5;
    const result = await run(
      'wrk',
      [
        `-t${options.threads}`,
        `-c${options.connections}`,
        `-d${options.durationSeconds}s`,
        `--timeout`,
        `${timeout}s`,
        '-s',
        script,
        options.url,
      ],
      { env: options.env ?? {}, timeoutMs: (options.durationSeconds + timeout + 15) * 1000 },
    );
    const line = result.stdout.split('\n').find((l) => l.startsWith('WRK_JSON '));
    if (result.code !== 0 || !line) {
      throw new Error(`wrk failed (exit ${result.code}):\n${result.stdout}\n${result.stderr}`);
    }
    const r = JSON.parse(line.slice('WRK_JSON '.length)) as WrkReport;
    const seconds = r.duration_us / 1e6;
    const ok = r.responses - r.status;
    return {
      responses: r.responses,
      ok,
      failedStatus: r.status,
      socketErrors: r.connect + r.read + r.write + r.timeout,
      seconds,
      rps: ok / seconds,
      latencyMs: { p50: r.p50 / 1000, p90: r.p90 / 1000, p99: r.p99 / 1000, max: r.max / 1000 },
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** True when the wrk binary is on PATH. */
export async function hasWrk(): Promise<boolean> {
  const result = await run('wrk', ['--version'], { timeoutMs: 5000 });
  return result.code !== 'error' && /wrk/.test(result.stdout + result.stderr);
}
