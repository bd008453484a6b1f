import { Redis } from 'ioredis';
import { afterAll, beforeAll } from 'vitest';
import type { Db } from '../src/storage/db.js';
import { openEmbeddedRealtime } from '../src/storage/embedded/index.js';
import type { Keys } from '../src/storage/keys.js';
import { migrate } from '../src/storage/migrate.js';
import { IN_MEMORY, openPglite } from '../src/storage/pglite.js';
import type { Realtime } from '../src/storage/realtime.js';
import { createRedisRealtime } from '../src/storage/redis/index.js';
import { freshPgliteImage, REDIS_URL } from './helpers.js';
import { startTestCluster, type TestCluster } from './redis-cluster.js';

// The implementations every real-time contract suite runs against: Redis, a three-master Redis
// Cluster (a script whose keys spanned two hash slots fails there with CROSSSLOT) and the
// embedded default. Call once per test file, at its top level.

export type Layer = [name: string, open: (keys: Keys) => Promise<Realtime>];

export function realtimeLayers(): Layer[] {
  let cluster: TestCluster | undefined;
  let pglite: Db | undefined;
  const opened: Realtime[] = [];
  beforeAll(async () => {
    cluster = await startTestCluster();
    // The embedded queue's journal lives in PGlite: one in-memory database per file.
    pglite = await openPglite(IN_MEMORY, 'public', { template: await freshPgliteImage() });
    await migrate(pglite, 'public');
  }, 60_000);
  afterAll(async () => {
    for (const rt of opened) await rt.close();
    await pglite?.close();
    await cluster?.stop();
  });
  const track = (rt: Realtime) => {
    opened.push(rt);
    return rt;
  };
  return [
    ['redis', async (keys) => track(createRedisRealtime(new Redis(REDIS_URL), keys))],
    ['redis cluster', async (keys) => track(createRedisRealtime((cluster as TestCluster).client(), keys))],
    ['embedded', async (keys) => track(await openEmbeddedRealtime(keys, pglite as Db))],
  ];
}

/** A taken batch as name -> delta. */
export const deltasOf = (batch: { fields: string[]; deltas: number[] } | null): Record<string, number> =>
  Object.fromEntries((batch?.fields ?? []).map((f, i) => [f, batch?.deltas[i] ?? Number.NaN]));
