import { figureSuffix } from '../counters/counter-names.js';
import type { Realtime } from '../storage/realtime.js';

// Per-user and per-product figures, read from the hot counters (see process/aggregate.ts).

export function createCounterStats(deps: { realtime: Pick<Realtime, 'analytics'> }) {
  const hot = deps.realtime.analytics;
  const user = (siteId: string, id: string) => hot.counters(siteId, figureSuffix({ kind: 'user', id }));
  return {
    async user(siteId: string, userId: string) {
      const [totals, events] = await Promise.all([
        user(siteId, userId),
        hot.counters(siteId, figureSuffix({ kind: 'userEvents', id: userId })),
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
      const totals = await hot.counters(siteId, figureSuffix({ kind: 'product', id: productId }));
      return { productId, clicks: totals['clicks'] ?? 0, uniqueUsers: totals['users'] ?? 0 };
    },

    userClicks: async (siteId: string, userId: string) => (await user(siteId, userId))['clicks'] ?? 0,
  };
}

export type CounterStats = ReturnType<typeof createCounterStats>;
