import type { LiveChannel } from '../live-channel.js';
import { duplicate, type RedisClient } from './client.js';

// Redis pub/sub. One subscriber connection serves every live stream of this process.

export function createRedisLiveChannel(client: RedisClient): LiveChannel & { close(): void } {
  let subscriber: RedisClient | undefined;
  const handlers = new Map<string, Set<(message: string) => void>>();
  return {
    async publish(channel, message) {
      await client.publish(channel, message);
    },

    async subscribe(channel, onMessage) {
      if (!subscriber) {
        const created = duplicate(client);
        subscriber = created;
        created.on('message', (ch: string, message: string) => {
          for (const handler of handlers.get(ch) ?? []) handler(message);
        });
      }
      const sub: RedisClient = subscriber;
      let set = handlers.get(channel);
      if (!set) {
        set = new Set();
        handlers.set(channel, set);
        await sub.subscribe(channel);
      }
      set.add(onMessage);
      return async () => {
        const current = handlers.get(channel);
        if (!current?.delete(onMessage) || current.size > 0) return;
        handlers.delete(channel);
        await sub.unsubscribe(channel);
      };
    },

    close() {
      subscriber?.disconnect();
      handlers.clear();
    },
  };
}
