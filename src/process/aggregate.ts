import type { CollectedMessage } from '../collect/message.js';
import { durableName } from '../counters/analytics-counters.js';
import { type BufferKeys, type Keys, part } from '../storage/keys.js';
import type { AggregateBatch, AggregateOp, Durable, SessionView } from '../storage/realtime.js';
import {
  bucketOf,
  type Dimension,
  heldInRealtime,
  type RankMetric,
  type Res,
  RESOLUTIONS,
  rankSuffix,
  TOTALS,
  totalsSuffix,
  ttlOf,
  uniqueSuffix,
} from './buckets.js';
import type { Enriched } from './enrich.js';

// What a batch of one site's messages counts, summed into as few ops as possible for the one
// atomic step (lua/apply-aggregate.lua). Identical increments of the batch become one op, the
// visitors of a HyperLogLog one PFADD: the step's cost follows the batch's distinct counters,
// not its events. Dedupe stays per event: the step runs only if every event is new, and the
// caller drops the duplicates it reports and aggregates again.
//
// Per-user and per-product counters (durable in the counters table), in hashes {s:<site>}:<suffix>:
//   u:<visitor>     pageviews, clicks, products (distinct products clicked)
//   ue:<visitor>    one field per track event name
//   p:<product>     clicks, users (distinct users who clicked it)
//   pu:<product>    one field per user: that user's clicks on the product (its first click
//                   makes the distinct counts above move, exactly)
// Time buckets (rollups, HyperLogLogs, rankings): see buckets.ts.

/** A retried message (same site + messageId) is recognised for at least 24 hours. */
export const DEDUPE_TTL_SECONDS = 25 * 60 * 60;
export const PRODUCT_CLICKED = 'Product Clicked';
/** Sessions end after this much inactivity. */
export const SESSION_GAP_MS = 30 * 60 * 1000;
/** A visitor's session state outlives the gap (late events still find it). */
const SESSION_STATE_TTL_SECONDS = 2 * 3600;
/** "Live" visitors: seen in the last five minutes. */
export const LIVE_WINDOW_MS = 5 * 60 * 1000;
/** Members per PFADD (Lua's unpack has a stack limit). */
const PFADD_CHUNK = 1000;

/** The product of a `Product Clicked` track, or undefined. */
export function clickedProduct(m: CollectedMessage): string | undefined {
  if (m.type !== 'track' || m.event !== PRODUCT_CLICKED) return undefined;
  const id = m.properties['product_id'];
  if (typeof id === 'string' && id !== '' && id.length <= 256) return id;
  if (typeof id === 'number' && Number.isFinite(id)) return String(id);
  return undefined;
}

export interface Counted {
  message: CollectedMessage;
  enriched: Enriched;
}

/** Sums a batch's ops by target. */
class OpSums {
  private readonly counts = new Map<string, Extract<AggregateOp, { op: 'count' }>>();
  private readonly ranks = new Map<string, Extract<AggregateOp, { op: 'zincrby' }>>();
  private readonly uniques = new Map<string, { members: Set<string>; dirty: Durable }>();
  private readonly expiries = new Map<string, number>();
  private readonly live = new Map<string, number>();
  private readonly sessions = new Map<string, SessionView[]>();

  count(key: string, field: string, by: number, durable: Durable, onFirst?: () => AggregateOp[]): void {
    const id = key + '\n' + field;
    const op = this.counts.get(id);
    if (op) op.by += by;
    else {
      const created: Extract<AggregateOp, { op: 'count' }> = { op: 'count', key, field, by, durable };
      if (onFirst) created.onFirst = onFirst();
      this.counts.set(id, created);
    }
  }

  rank(key: string, member: string, durable: Durable): void {
    const id = key + '\n' + member;
    const op = this.ranks.get(id);
    if (op) op.by += 1;
    else this.ranks.set(id, { op: 'zincrby', key, member, by: 1, durable });
  }

  unique(key: string, member: string, dirty: Durable): void {
    let u = this.uniques.get(key);
    if (!u) this.uniques.set(key, (u = { members: new Set(), dirty }));
    u.members.add(member);
  }

  expire(key: string, seconds: number | undefined): void {
    if (seconds !== undefined) this.expiries.set(key, seconds);
  }

  seen(visitor: string, at: number): void {
    if ((this.live.get(visitor) ?? -Infinity) < at) this.live.set(visitor, at);
  }

  view(stateKey: string, view: SessionView): void {
    const views = this.sessions.get(stateKey);
    if (views) views.push(view);
    else this.sessions.set(stateKey, [view]);
  }

  ops(extra: { liveKey: string; rollups: BufferKeys; nowMs: number }): AggregateOp[] {
    const ops: AggregateOp[] = [...this.counts.values(), ...this.ranks.values()];
    for (const [key, { members, dirty }] of this.uniques) {
      const all = [...members];
      for (let i = 0; i < all.length; i += PFADD_CHUNK) ops.push({ op: 'pfadd', key, members: all.slice(i, i + PFADD_CHUNK), dirty });
    }
    for (const [key, views] of this.sessions) {
      views.sort((a, b) => a.at - b.at);
      ops.push({ op: 'session', key, buffer: extra.rollups, gapMs: SESSION_GAP_MS, ttlSeconds: SESSION_STATE_TTL_SECONDS, views });
    }
    for (const [member, score] of this.live) ops.push({ op: 'zmax', key: extra.liveKey, member, score });
    if (this.live.size > 0) {
      ops.push({ op: 'zremrangebyscore', key: extra.liveKey, max: extra.nowMs - LIVE_WINDOW_MS });
      this.expiries.set(extra.liveKey, Math.ceil((2 * LIVE_WINDOW_MS) / 1000));
    }
    for (const [key, seconds] of this.expiries) ops.push({ op: 'expire', key, seconds });
    return ops;
  }
}

/** What every event of one site's batch shares: key prefix, buffers, and each bucket's names. */
interface BatchScope {
  key(suffix: string): string;
  rollups: BufferKeys;
  uniques: BufferKeys;
  bucket(res: Res, at: number): BucketScope;
}

interface BucketScope {
  res: Res;
  bucket: number;
  ttl: number | undefined;
  /** A HyperLogLog is copied to PostgreSQL whole, so one that expired must not start again from
   * empty: visitors arriving after a bucket's retention are counted, not added to it. */
  held: boolean;
  totals: string;
  totalsKey: string;
}

export function createAggregator(keys: Keys) {
  function scopeOf(siteId: string, nowMs: number): BatchScope {
    const prefix = keys.site(siteId) + ':';
    const buckets = new Map<string, BucketScope>();
    return {
      key: (suffix) => prefix + suffix,
      rollups: keys.rollupBuffer(siteId),
      uniques: keys.uniquesBuffer(siteId),
      bucket(res, at) {
        const bucket = bucketOf(res, at);
        const id = res + bucket;
        let scope = buckets.get(id);
        if (!scope) {
          const totals = totalsSuffix(res, bucket);
          scope = { res, bucket, ttl: ttlOf(res, bucket, nowMs), held: heldInRealtime(res, bucket, nowMs), totals, totalsKey: prefix + totals };
          buckets.set(id, scope);
        }
        return scope;
      },
    };
  }

  /** Adds one human event's bucket figures at every resolution. */
  function countBuckets(sums: OpSums, scope: BatchScope, e: Enriched): void {
    const views: SessionView = { at: e.at, totals: [] };
    for (const res of RESOLUTIONS) {
      const b = scope.bucket(res, e.at);
      const total = (field: string, by: number) => sums.count(b.totalsKey, field, by, { buffer: scope.rollups, name: `${b.totals}|${field}` });
      const rank = (dim: Dimension, metric: RankMetric, value: string | undefined) => {
        if (value === undefined) return;
        const suffix = rankSuffix(res, b.bucket, dim, metric);
        const key = scope.key(suffix);
        sums.rank(key, value, { buffer: scope.rollups, name: durableName(suffix, value) });
        sums.expire(key, b.ttl);
      };
      const unique = (dim?: Dimension, value?: string) => {
        if (!b.held || (dim !== undefined && value === undefined)) return;
        const suffix = uniqueSuffix(res, b.bucket, dim, value);
        const key = scope.key(suffix);
        sums.unique(key, e.visitor, { buffer: scope.uniques, name: suffix });
        sums.expire(key, b.ttl);
      };
      sums.expire(b.totalsKey, b.ttl);
      const totalsKey = b.totalsKey;
      const totals = b.totals;
      if (e.bot) {
        total(TOTALS.bots, 1);
        continue;
      }
      switch (e.kind) {
        case 'pageview':
          total(TOTALS.pageviews, 1);
          views.totals.push({ key: totalsKey, name: totals });
          unique();
          for (const [dim, value] of [
            ['page', e.page],
            ['referrer', e.referrer],
            ['utm_source', e.utmSource],
            ['browser', e.browser],
            ['os', e.os],
            ['device', e.device],
          ] as const) {
            rank(dim, 'pv', value);
            unique(dim, value);
          }
          rank('user', 'pv', e.user);
          break;
        case 'event':
          total(TOTALS.events, 1);
          unique();
          rank('event', 'ev', e.event);
          unique('event', e.event);
          rank('user', 'ev', e.user);
          if (e.product !== undefined) {
            total(TOTALS.clicks, 1);
            rank('product', 'ck', e.product);
            unique('product', e.product);
            rank('user', 'ck', e.user);
          }
          break;
        case 'engagement':
          unique();
          if (e.engagedMs > 0) {
            total(TOTALS.engagedMs, e.engagedMs);
            total(TOTALS.engagements, 1);
          }
          break;
        case 'other':
          break;
      }
    }
    if (e.bot || e.kind === 'other') return;
    sums.seen(e.visitor, e.at);
    if (e.kind === 'pageview') sums.view(scope.key(`vs:${part(e.visitor)}`), views);
  }

  /** The tutorial's per-user and per-product counters, for callers that name their user. */
  function countUser(sums: OpSums, scope: BatchScope, buffer: BufferKeys, m: CollectedMessage, e: Enriched): void {
    if (e.user === undefined || e.bot) return;
    const visitor = part(e.user);
    const counter = (suffix: string, field: string, onFirst?: () => AggregateOp[]) =>
      sums.count(scope.key(suffix), field, 1, { buffer, name: durableName(suffix, field) }, onFirst);
    const first = (suffix: string, field: string): AggregateOp => ({
      op: 'count',
      key: scope.key(suffix),
      field,
      by: 1,
      durable: { buffer, name: durableName(suffix, field) },
    });
    if (m.type === 'page' || m.type === 'screen') counter(`u:${visitor}`, 'pageviews');
    if (m.type === 'track' && m.event !== undefined) counter(`ue:${visitor}`, m.event);
    if (e.product !== undefined) {
      const p = part(e.product);
      counter(`u:${visitor}`, 'clicks');
      counter(`p:${p}`, 'clicks');
      counter(`pu:${p}`, visitor, () => [first(`u:${visitor}`, 'products'), first(`p:${p}`, 'users')]);
    }
  }

  /** One site's counted messages as one pre-aggregated batch (dedupe keys in the same order). */
  return function buildBatch(siteId: string, items: readonly Counted[], nowMs: number): AggregateBatch {
    const sums = new OpSums();
    const scope = scopeOf(siteId, nowMs);
    const users = keys.analyticsBuffer(siteId);
    for (const { message, enriched } of items) {
      countBuckets(sums, scope, enriched);
      countUser(sums, scope, users, message, enriched);
    }
    return {
      dedupeTtlSeconds: DEDUPE_TTL_SECONDS,
      dedupeKeys: items.map((i) => keys.dedupe(siteId, i.message.messageId)),
      ops: sums.ops({ liveKey: scope.key('live'), rollups: scope.rollups, nowMs }),
    };
  };
}

export type BuildBatch = ReturnType<typeof createAggregator>;
