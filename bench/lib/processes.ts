import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';

// Child processes of a benchmark: servers under test and load generators. Every child is
// tracked, so an interrupted benchmark (Ctrl-C, a thrown error, the global deadline) still
// stops what it started — by pid, never by name.

const running = new Set<ChildProcess>();

function killAll(): void {
  for (const child of running) child.kill('SIGKILL');
}
process.once('exit', killAll);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    killAll();
    process.exit(130);
  });
}

export interface Spawned {
  child: ChildProcess;
  pid: number;
  /** Everything the process wrote so far (stdout and stderr), for error messages. */
  output(): string;
  /** Resolves with the exit code (or the signal's name) once the process is gone. */
  exited: Promise<number | string>;
}

export interface SpawnOptions {
  cwd?: string;
  env?: Record<string, string | undefined>;
}

/** Starts a child process whose output is kept (up to 64 KB) rather than shown. */
export function start(command: string, args: readonly string[], options: SpawnOptions = {}): Spawned {
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (child.pid === undefined) throw new Error(`could not start ${command}`);
  running.add(child);
  let output = '';
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString('utf8')).slice(-65_536);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => {
      running.delete(child);
      resolve(code ?? signal ?? 'unknown');
    });
    child.once('error', (err) => {
      running.delete(child);
      output += `\n${err.message}`;
      resolve('error');
    });
  });
  return { child, pid: child.pid, output: () => output, exited };
}

/** Runs a command to its end (killed after timeoutMs) and returns its exit code and output. */
export async function run(
  command: string,
  args: readonly string[],
  options: SpawnOptions & { timeoutMs: number },
): Promise<{ code: number | string; stdout: string; stderr: string }> {
  const child = spawn(command, args, { cwd: options.cwd, env: { ...process.env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs);
  const code = await new Promise<number | string>((resolve) => {
    child.once('exit', (c, signal) => resolve(c ?? signal ?? 'unknown'));
    child.once('error', (err) => {
      stderr += err.message;
      resolve('error');
    });
  });
  clearTimeout(timer);
  running.delete(child);
  return { code, stdout, stderr };
}

/** SIGTERM, then SIGKILL if the process is still there after graceMs. */
export async function stop(proc: Spawned, graceMs = 10_000): Promise<void> {
  if (proc.child.exitCode !== null || proc.child.signalCode !== null) return;
  proc.child.kill('SIGTERM');
  const timer = setTimeout(() => proc.child.kill('SIGKILL'), graceMs);
  await proc.exited;
  clearTimeout(timer);
}

/** A TCP port nobody listens on right now (on 127.0.0.1). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/** True when something accepts TCP connections on 127.0.0.1:port. */
export async function portInUse(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(true));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(false)));
  });
}

/**
 * Polls `url` until `ok(status)` holds, the process dies, or timeoutMs passes (then throws with
 * the process's output, which usually says why).
 */
export async function waitForHttp(
  url: string,
  proc: Spawned,
  options: { timeoutMs?: number; ok?: (status: number) => boolean } = {},
): Promise<void> {
  const deadline = Date.now() + (options.timeoutMs ?? 30_000);
  const ok = options.ok ?? ((status: number) => status === 200);
  let last = 'no answer';
  while (Date.now() < deadline) {
    if (proc.child.exitCode !== null || proc.child.signalCode !== null) {
      throw new Error(`the server exited before it was ready:\n${proc.output()}`);
    }
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
      await res.arrayBuffer();
      if (ok(res.status)) return;
      last = `HTTP ${res.status}`;
    } catch (err) {
      last = (err as Error).message;
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`${url} was not ready after ${options.timeoutMs ?? 30_000} ms (${last}):\n${proc.output()}`);
}

function parentOf(pid: number): number | undefined {
  try {
    // /proc/<pid>/stat: "pid (comm) state ppid ..."; comm may hold spaces, so split after ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return undefined;
  }
}

function rssKb(pid: number): number {
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) : 0;
  } catch {
    return 0;
  }
}

/** Resident memory of a process and all its descendants (gunicorn's workers), in MB. */
export function treeRssMb(root: number): number {
  const pids = readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .map(Number);
  const children = new Map<number, number[]>();
  for (const pid of pids) {
    const parent = parentOf(pid);
    if (parent !== undefined) children.set(parent, [...(children.get(parent) ?? []), pid]);
  }
  let kb = 0;
  const queue = [root];
  while (queue.length > 0) {
    const pid = queue.pop() as number;
    kb += rssKb(pid);
    queue.push(...(children.get(pid) ?? []));
  }
  return kb / 1024;
}

/**
 * Samples the summed treeRssMb of the processes every everyMs until the returned function is
 * called; gives the peak.
 */
export function samplePeakRss(pids: number | readonly number[], everyMs = 250): () => number {
  const roots = typeof pids === 'number' ? [pids] : pids;
  const sample = () => roots.reduce((sum, pid) => sum + treeRssMb(pid), 0);
  let peak = sample();
  const timer = setInterval(() => {
    peak = Math.max(peak, sample());
  }, everyMs);
  return () => {
    clearInterval(timer);
    return Math.max(peak, sample());
  };
}

/** Every live process: name, parent and CPU seconds used so far (user + system). */
export type CpuSnapshot = Map<number, { name: string; parent: number; seconds: number }>;

/** Which processes of a snapshot a figure sums. */
export type PickProcess = (pid: number, snapshot: CpuSnapshot) => boolean;

const TICKS_PER_SECOND = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

export function cpuSnapshot(): CpuSnapshot {
  const snapshot: CpuSnapshot = new Map();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      snapshot.set(Number(entry), {
        name: stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')),
        parent: Number(fields[1]),
        seconds: (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND,
      });
    } catch {
      // It exited between the listing and the read.
    }
  }
  return snapshot;
}

/**
 * CPU seconds used between two snapshots by the processes `pick` selects in the second (a process
 * born in between counts from zero; one that exited in between is lost: measure long-lived ones).
 */
export function cpuBetween(before: CpuSnapshot, after: CpuSnapshot, pick: PickProcess): number {
  let seconds = 0;
  for (const [pid, proc] of after) if (pick(pid, after)) seconds += proc.seconds - (before.get(pid)?.seconds ?? 0);
  return seconds;
}

/** Selects processes by their name (comm). */
export const named =
  (name: string): PickProcess =>
  (pid, snapshot) =>
    snapshot.get(pid)?.name === name;

/** Selects the roots and their descendants. */
export const treeOf =
  (...roots: number[]): PickProcess =>
  (pid, snapshot) => {
    for (let at: number | undefined = pid; at !== undefined && at > 1; at = snapshot.get(at)?.parent) if (roots.includes(at)) return true;
    return false;
  };
