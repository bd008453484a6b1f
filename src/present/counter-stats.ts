import { type Keys, part } from '../storage/keys.js';
import type { Realtime } from '../storage/realtime.js';

// Per-user and per-product figures, read from the hot counters (see process/aggregate.ts).

export function createCounterStats(deps: { realtime: Realtime; keys: Keys }) {
  const { realtime, keys } = deps;
  return {
    async user(siteId: string, userId: string) {
      const id = part(userId);
      const [totals, events] = await Promise.all([
        realtime.hgetall(keys.siteKey(siteId, `u:${id}`)),
        realtime.hgetall(keys.siteKey(siteId, `ue:${id}`)),
      ]);
      return {
        userId,
        events,
        pageviews: totals['pageviews'] ?? 0,
        clicks: totals['clicks'] ?? 0,
        productsClicked: totals['products'] ?? 0,
      };
    },

    async product(siteId: string, productId: string) {
      const totals = await realtime.hgetall(keys.siteKey(siteId, `p:${part(productId)}`));
      return { productId, clicks: totals['clicks'] ?? 0, uniqueUsers: totals['users'] ?? 0 };
    },

    userClicks: (siteId: string, userId: string) => realtime.hget(keys.siteKey(siteId, `u:${part(userId)}`), 'clicks'),
  };
}

export type CounterStats = ReturnType<typeof createCounterStats>;
