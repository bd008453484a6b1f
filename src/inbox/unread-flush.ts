import type { DeltaSink } from '../counters/flush.js';
import { perSiteTargets, type SiteSource, type TargetProvider } from '../counters/flusher.js';
import type { Queryable } from '../storage/db.js';
import { parseBufferField } from '../storage/inbox-count-names.js';
import type { Keys } from '../storage/keys.js';
import { INBOX_SHARDS } from './unread-counter.js';

/**
 * Applies a flushed batch of one site's count deltas (field: user and count name, see
 * src/storage/inbox-count-names.ts) to inbox_counts: one statement, one row per user and cell.
 * A field of the format before migration 0014 (a user's unread delta) is skipped: that migration
 * counted inbox_counts from the rows, which held those changes already.
 */
export function unreadSink(siteId: string): DeltaSink {
  return async (tx: Queryable, fields, deltas) => {
    const cells = new Map<string, { userId: string; tenant: string; category: string; unseen: number; unread: number; total: number }>();
    fields.forEach((field, i) => {
      const parsed = parseBufferField(field);
      if (!parsed) return;
      const key = JSON.stringify([parsed.userId, parsed.tenant, parsed.category]);
      let cell = cells.get(key);
      if (!cell) {
        cell = { userId: parsed.userId, tenant: parsed.tenant, category: parsed.category, unseen: 0, unread: 0, total: 0 };
        cells.set(key, cell);
      }
      cell[parsed.kind] += deltas[i] ?? 0;
    });
    if (cells.size === 0) return;
    const rows = [...cells.values()];
    await tx.query(
      `INSERT INTO inbox_counts (site_id, user_id, tenant, category, unseen, unread, total)
       SELECT $1, t.* FROM unnest($2::text[], $3::text[], $4::text[], $5::int8[], $6::int8[], $7::int8[])
         AS t(user_id, tenant, category, unseen, unread, total)
       ON CONFLICT (site_id, user_id, tenant, category) DO UPDATE SET unseen = inbox_counts.unseen + excluded.unseen,
         unread = inbox_counts.unread + excluded.unread, total = inbox_counts.total + excluded.total`,
      [
        siteId,
        rows.map((r) => r.userId),
        rows.map((r) => r.tenant),
        rows.map((r) => r.category),
        rows.map((r) => r.unseen),
        rows.map((r) => r.unread),
        rows.map((r) => r.total),
      ],
    );
  };
}

/** Flush targets: every site's buffer shards, flushed together (one transaction, one statement per site). */
export function inboxTargets(deps: { keys: Keys; sites: SiteSource }): TargetProvider {
  return perSiteTargets(deps.sites, (siteId) => [
    { buffers: Array.from({ length: INBOX_SHARDS }, (_, shard) => deps.keys.inboxBuffer(siteId, shard)), sink: unreadSink(siteId) },
  ]);
}
