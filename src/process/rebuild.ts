import { restoreAnalyticsCounters } from '../counters/analytics-counters.js';
import { figureSuffix, RES_SECONDS, type Res, type UnknownNames } from '../counters/counter-names.js';
import type { RestoreItem } from '../storage/analytics-realtime.js';
import type { Db } from '../storage/db.js';
import type { Realtime } from '../storage/realtime.js';
import { heldInRealtime, RESOLUTIONS, RETENTION_SECONDS, ttlOf } from './buckets.js';

// Restores a site's analytics in the real-time layer from PostgreSQL (`tally rebuild` after
// Redis lost its data; every start of the embedded mode, whose layer starts empty): the
// per-user counters, and every time bucket the layer would still hold (totals, rankings,
// HyperLogLogs) with the expiry it would have had. Deltas not yet flushed are not in
// PostgreSQL: flush first (the command does). Not restored, because they are short-lived:
// dedupe keys (a retry within 24 h of the loss counts again), session state (a visit spanning
// the loss counts as two) and the five-minute live set. The embedded start restores the event
// rows' session state apart, from the event store (src/process/restore-sessions.ts).

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

export async function rebuildSite(
  deps: { db: Db; realtime: Pick<Realtime, 'analytics'>; unknownNames: UnknownNames },
  siteId: string,
  nowMs = Date.now(),
): Promise<RebuildResult> {
  const { db } = deps;
  const hot = deps.realtime.analytics;
  const counters = await restoreAnalyticsCounters(deps, siteId, deps.unknownNames);
  let buckets = 0;
  let uniques = 0;
  const pending: RestoreItem[] = [];
  const push = async (item: RestoreItem) => {
    pending.push(item);
    if (pending.length >= CHUNK) await hot.restore(siteId, pending.splice(0));
  };

  for (const res of RESOLUTIONS) {
    const since = oldestHeld(res, nowMs);
    const rows = await db.query<{ bucket: number; dim: string; value: string; metric: string; count: number }>(
      `SELECT bucket, dim, value, metric, count FROM rollups
       WHERE site_id = $1 AND res = $2 AND bucket >= $3 ORDER BY bucket, dim, metric`,
      [siteId, res, since],
    );
    // Rows come grouped by key: each group becomes one hash or sorted set.
    let current: { suffix: string; kind: 'counters' | 'ranking'; bucket: number; values: Record<string, number> } | undefined;
    const emit = async () => {
      if (!current || !heldInRealtime(res, current.bucket, nowMs)) return;
      const ttl = ttlOf(res, current.bucket, nowMs);
      await push({ kind: current.kind, suffix: current.suffix, values: current.values, ...(ttl !== undefined ? { ttlSeconds: ttl } : {}) });
      buckets += 1;
    };
    for (const row of rows.rows) {
      const suffix = figureSuffix(
        row.dim === ''
          ? { kind: 'totals', res, bucket: row.bucket }
          : { kind: 'ranking', res, bucket: row.bucket, dim: row.dim, metric: row.metric },
      );
      if (current?.suffix !== suffix) {
        await emit();
        current = { suffix, kind: row.dim === '' ? 'counters' : 'ranking', bucket: row.bucket, values: {} };
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
      const suffix = figureSuffix(
        row.dim === ''
          ? { kind: 'unique', res, bucket: row.bucket }
          : { kind: 'unique', res, bucket: row.bucket, dim: row.dim, value: row.value },
      );
      const ttl = ttlOf(res, row.bucket, nowMs);
      await push({ kind: 'unique', suffix, hll: Buffer.from(row.hll), ...(ttl !== undefined ? { ttlSeconds: ttl } : {}) });
      uniques += 1;
    }
  }
  await hot.restore(siteId, pending);
  return { counters, buckets, uniques };
}
