import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { DATABASE_URL, dropTestData, eventually, REDIS_URL, testConfig, uniqueName } from './helpers.js';
import { type ServerProcess, startServerProcess, stopServerProcess } from './server-process.js';

// TALLY_HTTP_PROCESSES=2: `tally serve` as users run it forks two HTTP processes sharing the port
// and runs the worker itself; counts are the same whichever process answers, a dead HTTP process
// is replaced, and SIGTERM stops them all gracefully (exit 0).

/** Pids of the `serve --no-worker` processes the primary forked. */
function httpProcesses(pid: number): number[] {
  let children: number[];
  try {
    children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
  return children.filter((child) => {
    try {
      return readFileSync(`/proc/${child}/cmdline`, 'utf8').split('\0').includes('--no-worker');
    } catch {
      return false;
    }
  });
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('tally serve with TALLY_HTTP_PROCESSES=2', () => {
  const name = uniqueName('cluster');
  const env: Record<string, string> = {
    REDIS_URL,
    DATABASE_URL,
    TALLY_PG_SCHEMA: name,
    TALLY_REDIS_PREFIX: name,
    TALLY_HTTP_PROCESSES: '2',
  };
  let server: ServerProcess | undefined;
  afterAll(async () => {
    if (server) await stopServerProcess(server, 'SIGKILL');
    await dropTestData(testConfig('external', env));
  });

  it('serves from two processes, replaces a dead one, and stops on SIGTERM with exit 0', { timeout: 120_000 }, async () => {
    server = await startServerProcess(env);
    const { url, secretKey, proc } = server;
    const first = httpProcesses(proc.pid as number);
    expect(first).toHaveLength(2);
    const authorization = `Bearer ${secretKey}`;
    const call = async (method: string, path: string, body?: unknown) => {
      const res = await fetch(
        `${url}${path}`,
        body === undefined
          ? { method, headers: { authorization } }
          : { method, headers: { authorization, 'content-type': 'application/json' }, body: JSON.stringify(body) },
      );
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    };

    // Concurrent requests open several connections: the two processes take them in turn.
    const created = await Promise.all(
      Array.from({ length: 40 }, (_, i) => call('POST', '/v1/notifications', { id: `n${i}`, userId: i % 2 === 0 ? 'a' : 'b', title: 't' })),
    );
    expect(created.every((r) => r.status === 201)).toBe(true);
    const read = await Promise.all(Array.from({ length: 10 }, (_, i) => call('POST', `/v1/notifications/n${2 * i}/read`)));
    expect(read.every((r) => r.status === 200 && r.body['changed'] === true)).toBe(true);
    for (let i = 0; i < 6; i++) {
      const [a, b] = await Promise.all([call('GET', '/v1/users/a/notifications/count'), call('GET', '/v1/users/b/notifications/count')]);
      expect([a.body, b.body]).toEqual([{ unread: 10 }, { unread: 20 }]);
    }

    // A dead HTTP process is replaced; the others keep serving meanwhile.
    process.kill(first[0] as number, 'SIGKILL');
    const second = await eventually(async () => {
      const now = httpProcesses(proc.pid as number);
      if (now.length !== 2 || now.includes(first[0] as number)) throw new Error(`HTTP processes: ${now.join(', ')}`);
      return now;
    }, 30_000);
    expect((await call('GET', '/v1/users/a/notifications/count')).body).toEqual({ unread: 10 });

    expect(await stopServerProcess(server, 'SIGTERM')).toBe(0);
    expect(second.filter(alive)).toEqual([]);
  });
});
