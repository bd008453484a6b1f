import type { Coordination } from '../coordination.js';
import type { CallScript, RedisClient } from './client.js';

export function createRedisCoordination(client: RedisClient, call: CallScript): Coordination {
  return {
    tryLock: async (key, token, ttlMs) => (await client.set(key, token, 'PX', ttlMs, 'NX')) === 'OK',

    async unlock(key, token) {
      await call('release-lock', [key], [token]);
    },

    async getOrSet(key, value, ttlSeconds) {
      const previous = (await client.call('SET', key, value, 'NX', 'GET', 'EX', ttlSeconds)) as string | null;
      return previous ?? value;
    },
  };
}
