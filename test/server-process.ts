import { type ChildProcess, spawn } from 'node:child_process';

// Runs `tally serve` as a real child process (as users run it), for tests from outside.

const ROOT = new URL('..', import.meta.url).pathname;

/** The `tally` command as `npm start` runs it: dist/, which the global setup builds when stale. */
export const TALLY_CLI = new URL('../dist/cli.js', import.meta.url).pathname;

export interface ServerProcess {
  proc: ChildProcess;
  url: string;
  /** Keys printed when the process created the default site (empty on a store that had one). */
  writeKey: string;
  secretKey: string;
}

export function startServerProcess(env: Record<string, string>): Promise<ServerProcess> {
  const proc = spawn(process.execPath, [TALLY_CLI, 'serve'], {
    cwd: ROOT,
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', TALLY_FLUSH_INTERVAL_MS: '200', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  proc.stderr!.on('data', (chunk: Buffer) => (err += chunk.toString()));
  return new Promise((resolve, reject) => {
    let started = false;
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${out}\n${err}`)), 45_000);
    const exitedEarly = (code: number | null) => reject(new Error(`server exited with ${code}:\n${out}\n${err}`));
    proc.once('exit', exitedEarly);
    proc.stdout!.on('data', (chunk: Buffer) => {
      if (started) return;
      out += chunk.toString();
      const address = /"address":"(http:\/\/[^"]+)".*Tally is listening/.exec(out);
      if (!address) return;
      started = true;
      clearTimeout(timer);
      proc.off('exit', exitedEarly);
      resolve({
        proc,
        url: address[1] as string,
        writeKey: /twk_[A-Za-z0-9_-]+/.exec(out)?.[0] ?? '',
        secretKey: /tsk_[A-Za-z0-9_-]+/.exec(out)?.[0] ?? '',
      });
    });
  });
}

/** Sends a signal and resolves with the exit code once the process is gone. */
export function stopServerProcess(server: ServerProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
  if (server.proc.exitCode !== null || server.proc.signalCode !== null) return Promise.resolve(server.proc.exitCode);
  return new Promise((resolve) => {
    server.proc.once('exit', (code) => resolve(code));
    server.proc.kill(signal);
  });
}
