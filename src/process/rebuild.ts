import { restoreAnalyticsCounters } from '../counters/analytics-counters.js';
import type { Db } from '../storage/db.js';
import type { Keys } from '../storage/keys.js';
import type { Realtime, RestoreItem } from '../storage/realtime.js';
import {
  heldInRealtime,
  type Res,
  RES_SECONDS,
  RESOLUTIONS,
  RETENTION_SECONDS,
  rankSuffix,
  type Dimension,
  type RankMetric,
  totalsSuffix,
  ttlOf,
  uniqueSuffix,
} from './buckets.js';

// Restores a site's analytics in the real-time layer from PostgreSQL (`tally rebuild` after
// Redis lost its data; every start of the embedded mode, whose layer starts empty): the
// per-user counters, and every time bucket the layer would still hold (totals, rankings,
// HyperLogLogs) with the expiry it would have had. Deltas not yet flushed are not in
// PostgreSQL: flush first (the command does). Not restored, because they are short-lived:
// dedupe keys (a retry within 24 h of the loss counts again), session state (a visit spanning
// the loss counts as two) and the five-minute live set.

const CHUNK = 500;

export interface RebuildResult {
  counters: number;
  buckets: number;
  uniques: number;
}

/** The oldest bucket start (epoch s) of a resolution the real-time layer still holds. */
function oldestHeld(res: Res, nowMs: number): number {
  const retention = RETENTION_SECONDS[res];
  return retention === undefined ? Number.MIN_SAFE_INTEGER : Math.floor(nowMs / 1000) - retention - RES_SECONDS[res];
}

export async function rebuildSite(deps: { db: Db; realtime: Realtime; keys: Keys }, siteId: string, nowMs = Date.now()): Promise<RebuildResult> {
  const { db, realtime, keys } = deps;
  const counters = await restoreAnalyticsCounters(deps, siteId);
  let buckets = 0;
  let uniques = 0;
  const pending: RestoreItem[] = [];
  const push = async (item: RestoreItem) => {
    pending.push(item);
    if (pending.length >= CHUNK) await realtime.restore(pending.splice(0));
  };

  for (const res of RESOLUTIONS) {
    const since = oldestHeld(res, nowMs);
    const rows = await db.query<{ bucket: number; dim: string; value: string; metric: string; count: number }>(
      `SELECT bucket, dim, value, metric, count FROM rollups
       WHERE site_id = $1 AND res = $2 AND bucket >= $3 ORDER BY bucket, dim, metric`,
      [siteId, res, since],
    );
    // Rows come grouped by key: each group becomes one hash or sorted set.
    let current: { key: string; kind: 'hash' | 'zset'; bucket: number; values: Record<string, number> } | undefined;
    const emit = async () => {
      if (!current || !heldInRealtime(res, current.bucket, nowMs)) return;
      const ttl = ttlOf(res, current.bucket, nowMs);
      await push({ kind: current.kind, key: current.key, values: current.values, ...(ttl !== undefined ? { ttlSeconds: ttl } : {}) });
      buckets += 1;
    };
    for (const row of rows.rows) {
      const suffix = row.dim === '' ? totalsSuffix(res, row.bucket) : rankSuffix(res, row.bucket, row.dim as Dimension, row.metric as RankMetric);
      const key = keys.siteKey(siteId, suffix);
      if (current?.key !== key) {
        await emit();
        current = { key, kind: row.dim === '' ? 'hash' : 'zset', bucket: row.bucket, values: {} };
      }
      current.values[row.dim === '' ? row.metric : row.value] = row.count;
    }
    await emit();

    const sketches = await db.query<{ bucket: number; dim: string; value: string; hll: Uint8Array }>(
      'SELECT bucket, dim, value, hll FROM uniques WHERE site_id = $1 AND res = $2 AND bucket >= $3',
      [siteId, res, since],
    );
    for (const row of sketches.rows) {
      if (!heldInRealtime(res, row.bucket, nowMs)) continue;
      const suffix = row.dim === '' ? uniqueSuffix(res, row.bucket) : uniqueSuffix(res, row.bucket, row.dim as Dimension, row.value);
      const ttl = ttlOf(res, row.bucket, nowMs);
      await push({ kind: 'unique', key: keys.siteKey(siteId, suffix), dump: Buffer.from(row.hll), ...(ttl !== undefined ? { ttlSeconds: ttl } : {}) });
      uniques += 1;
    }
  }
  await realtime.restore(pending);
  return { counters, buckets, uniques };
}
