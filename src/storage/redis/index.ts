import type { Keys } from '../keys.js';
import type { Realtime } from '../realtime.js';
import { createRedisAnalytics } from './analytics-realtime.js';
import { defineScripts, type RedisClient } from './client.js';
import { createRedisCoordination } from './coordination.js';
import { createRedisCounterBuffers } from './counter-buffers.js';
import { createRedisInboxCounts } from './inbox-counts.js';
import { createRedisIngestQueue } from './ingest-queue.js';
import { createRedisLiveChannel } from './live-channel.js';
import { createRedisSessions } from './sessions.js';

export { connectRedis, type RedisClient } from './client.js';

/** The production real-time layer over one Redis (or Redis Cluster) client, which it closes. */
export function createRedisRealtime(client: RedisClient, keys: Keys): Realtime {
  const call = defineScripts(client);
  const live = createRedisLiveChannel(client);
  return {
    kind: 'redis',
    queue: createRedisIngestQueue(client, call),
    buffers: createRedisCounterBuffers(client, call),
    analytics: createRedisAnalytics(client, call, keys),
    inbox: createRedisInboxCounts(client, call),
    live,
    coordination: createRedisCoordination(client, call),
    sessions: createRedisSessions(call, keys),
    async ping() {
      await client.ping();
    },
    async close() {
      live.close();
      await client.quit().catch(() => client.disconnect());
    },
  };
}
