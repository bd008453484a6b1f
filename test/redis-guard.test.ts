import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../src/config.js';
import { openContext } from '../src/context.js';
import { dropTestData, testConfig } from './helpers.js';
import { startTestCluster } from './redis-cluster.js';

// Tally refuses to start against a Redis that may evict keys: pending counter deltas live only in
// Redis until flushed. Each case runs against a throwaway redis-server of its own.

const run = promisify(execFile);

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

interface ThrowawayRedis {
  url: string;
  stop(): void;
}

async function startRedis(...extra: string[]): Promise<ThrowawayRedis> {
  const port = await freePort();
  const proc: ChildProcess = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', ...extra],
    {
      stdio: 'ignore',
    },
  );
  const stop = () => proc.kill('SIGKILL');
  for (let i = 0; ; i++) {
    try {
      await run('redis-cli', ['-p', String(port), 'ping']);
      break;
    } catch (err) {
      if (i > 50) {
        stop();
        throw err;
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  return { url: `redis://127.0.0.1:${port}`, stop };
}

/** A logger whose warnings the test can read. */
function recordingLog() {
  const lines: { level: number; msg: string }[] = [];
  const log = pino({ level: 'warn' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  return { log, warnings: () => lines.filter((l) => l.level === 40).map((l) => l.msg) };
}

describe('the Redis eviction guard', () => {
  let evicting: ThrowawayRedis;
  let noConfig: ThrowawayRedis;

  beforeAll(async () => {
    evicting = await startRedis('--maxmemory-policy', 'allkeys-lru');
    // A managed Redis that disables CONFIG, evicting or not: Tally cannot know.
    noConfig = await startRedis('--maxmemory-policy', 'allkeys-lru', '--rename-command', 'CONFIG', '');
  });

  afterAll(() => {
    evicting?.stop();
    noConfig?.stop();
  });

  it('refuses to start against a Redis whose maxmemory-policy can evict', async () => {
    const config = testConfig('external', { REDIS_URL: evicting.url });
    const { log } = recordingLog();
    const opening = openContext(config, log);
    await expect(opening).rejects.toThrow(ConfigError);
    await expect(opening).rejects.toThrow(
      /has maxmemory-policy allkeys-lru.*loses counts silently.*noeviction.*TALLY_ALLOW_EVICTING_REDIS=true/,
    );
  });

  it('starts with a warning when TALLY_ALLOW_EVICTING_REDIS=true', async () => {
    const config = testConfig('external', { REDIS_URL: evicting.url, TALLY_ALLOW_EVICTING_REDIS: 'true' });
    const { log, warnings } = recordingLog();
    const ctx = await openContext(config, log);
    try {
      expect(await ctx.sites.count()).toBe(0);
      expect(warnings()).toEqual([expect.stringMatching(/TALLY_ALLOW_EVICTING_REDIS=true.*lost silently/)]);
    } finally {
      await ctx.close();
      await dropTestData(config);
    }
  });

  it('starts with a warning when Redis refuses CONFIG GET', async () => {
    const config = testConfig('external', { REDIS_URL: noConfig.url });
    const { log, warnings } = recordingLog();
    const ctx = await openContext(config, log);
    try {
      expect(warnings()).toEqual([expect.stringMatching(/could not read Redis maxmemory-policy.*noeviction/)]);
    } finally {
      await ctx.close();
      await dropTestData(config);
    }
  });

  it("starts without a warning against the machine's Redis (noeviction)", async () => {
    const config = testConfig('external');
    const { log, warnings } = recordingLog();
    const ctx = await openContext(config, log);
    try {
      expect(warnings()).toEqual([]);
    } finally {
      await ctx.close();
      await dropTestData(config);
    }
  });

  it('checks every master of a Redis Cluster', async () => {
    const cluster = await startTestCluster();
    try {
      const last = cluster.nodes[2] as { host: string; port: number };
      await run('redis-cli', ['-p', String(last.port), 'config', 'set', 'maxmemory-policy', 'volatile-lru']);
      const config = testConfig('external', { REDIS_CLUSTER_NODES: cluster.nodes.map((n) => `${n.host}:${n.port}`).join(',') });
      await expect(openContext(config, recordingLog().log)).rejects.toThrow(`127.0.0.1:${last.port} has maxmemory-policy volatile-lru`);
    } finally {
      await cluster.stop();
    }
  }, 30_000);
});
