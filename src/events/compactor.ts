import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { type BackgroundLoop, startLoop } from '../lifecycle/background-loop.js';
import type { Coordination } from '../storage/coordination.js';
import type { EventStore } from './event-store.js';
import { applyRetention } from './retention.js';

// The elected compactor: every worker runs this loop, and the one that takes the lock does a
// pass over every site: retention first (no point compacting a day about to go), then
// compaction and garbage collection. A pass that outlives its lock lets a second compactor in;
// manifests commit once per generation, so the slower one's work is discarded, never doubled.

export interface CompactorOptions {
  intervalMs: number;
  /** A site's retention in days, or null to keep its events forever. */
  retentionDays(siteId: string): Promise<number | null>;
  graceMs: number;
  lockKey: string;
}

export function startCompactor(
  deps: { store: EventStore; coordination: Pick<Coordination, 'tryLock' | 'unlock'>; log: Logger },
  options: CompactorOptions,
): BackgroundLoop {
  const { store, coordination, log } = deps;
  const token = randomBytes(8).toString('hex');
  const lockMs = Math.max(60_000, options.intervalMs * 4);
  return startLoop({
    name: 'event compactor',
    log,
    intervalMs: options.intervalMs,
    delayFirst: true,
    async step(signal) {
      if (!(await coordination.tryLock(options.lockKey, token, lockMs))) return undefined;
      try {
        for (const siteId of await store.sites()) {
          if (signal.aborted) break;
          const expired = await applyRetention(store.root, siteId, await options.retentionDays(siteId), Date.now(), options.graceMs);
          if (expired.length > 0) log.info({ siteId, days: expired }, 'event partitions past retention deleted');
          await store.maintainSite(siteId);
        }
      } finally {
        await coordination.unlock(options.lockKey, token);
      }
      return undefined;
    },
  });
}
