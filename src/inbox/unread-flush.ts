import type { DeltaSink } from '../counters/flush.js';
import { perSiteTargets, type SiteSource, type TargetProvider } from '../counters/flusher.js';
import type { Queryable } from '../storage/db.js';
import type { Keys } from '../storage/keys.js';
import { INBOX_SHARDS } from './unread-counter.js';

/** Applies a flushed batch of one site's unread deltas (field = user id): one statement. */
export function unreadSink(siteId: string): DeltaSink {
  return async (tx: Queryable, userIds, deltas) => {
    await tx.query(
      `INSERT INTO unread_counts (site_id, user_id, unread)
       SELECT $1, t.user_id, t.delta FROM unnest($2::text[], $3::int8[]) AS t(user_id, delta)
       ON CONFLICT (site_id, user_id) DO UPDATE SET unread = unread_counts.unread + excluded.unread`,
      [siteId, userIds, deltas],
    );
  };
}

/** Flush targets: every site's buffer shards, flushed together (one transaction, one statement per site). */
export function inboxTargets(deps: { keys: Keys; sites: SiteSource }): TargetProvider {
  return perSiteTargets(deps.sites, (siteId) => [
    { buffers: Array.from({ length: INBOX_SHARDS }, (_, shard) => deps.keys.inboxBuffer(siteId, shard)), sink: unreadSink(siteId) },
  ]);
}
