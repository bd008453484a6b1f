import type { CollectedMessage } from '../collect/message.js';
import { durableName, figureSuffix, type Res } from '../counters/counter-names.js';
import type { AggregateBatch, AggregateOp, Durable, PackedDeltas, SessionView } from '../storage/analytics-realtime.js';
import { type BufferKeys, type Keys, part } from '../storage/keys.js';
import { bucketOf, type Dimension, heldInRealtime, type RankMetric, RESOLUTIONS, TOTALS, ttlOf } from './buckets.js';
import type { Enriched } from './enrich.js';

// What a batch of one site's messages counts, summed into as few ops as possible for the one
// atomic step (lua/apply-aggregate.lua). Identical increments of the batch become one op, the
// visitors of a HyperLogLog one PFADD: the step's cost follows the batch's distinct counters,
// not its events. Dedupe stays per event: the step runs only if every event is new, and the
// caller drops the duplicates it reports and aggregates again. The durable twin of every summed
// increment (what the flush writes to PostgreSQL) does not depend on what Redis holds, so the
// batch carries those as packed deltas, one item per buffer, instead of an increment per name.
//
// Per-user and per-product counters (durable in the counters table) and the time buckets
// (rollups, HyperLogLogs, rankings) are named in src/counters/counter-names.ts.

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

type CountOp = Extract<AggregateOp, { op: 'count' }>;
type RankOp = Extract<AggregateOp, { op: 'zincrby' }>;

/** A summed op and the durable name its final sum is buffered under. */
interface Summed<T extends CountOp | RankOp> {
  op: T;
  durable: Durable;
}

/**
 * Sums a batch's ops by target. This runs for every event at every resolution, so it is shaped
 * for that: maps nested by key (no per-event "key + field" strings), durable names built once
 * per distinct op, and each key's expiry registered once, when the key is first named.
 */
class OpSums {
  private readonly counts = new Map<string, Map<string, Summed<CountOp>>>();
  private readonly ranks = new Map<string, Map<string, Summed<RankOp>>>();
  private readonly uniques = new Map<string, { members: Set<string>; dirty: Durable }>();
  private readonly expiries = new Map<string, number>();
  private readonly live = new Map<string, number>();
  private readonly sessions = new Map<string, SessionView[]>();

  /** HINCRBY key field by, buffered for PostgreSQL as "<durableSuffix>|<field>". */
  count(key: string, field: string, by: number, buffer: BufferKeys, durableSuffix: string, onFirst?: () => AggregateOp[]): void {
    let fields = this.counts.get(key);
    if (!fields) this.counts.set(key, (fields = new Map()));
    const summed = fields.get(field);
    if (summed) summed.op.by += by;
    else {
      const op: CountOp = { op: 'count', key, field, by };
      if (onFirst) op.onFirst = onFirst();
      fields.set(field, { op, durable: { buffer, name: durableName(durableSuffix, field) } });
    }
  }

  rank(key: string, member: string, buffer: BufferKeys, durableSuffix: string): void {
    let members = this.ranks.get(key);
    if (!members) this.ranks.set(key, (members = new Map()));
    const summed = members.get(member);
    if (summed) summed.op.by += 1;
    else members.set(member, { op: { op: 'zincrby', key, member, by: 1 }, durable: { buffer, name: durableName(durableSuffix, member) } });
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

  ops(extra: { liveKey: string; rollups: BufferKeys; nowMs: number }): { ops: AggregateOp[]; packed: PackedDeltas[] } {
    const ops: AggregateOp[] = [];
    const packed = new Map<string, PackedDeltas>();
    const push = ({ op, durable }: Summed<CountOp | RankOp>) => {
      ops.push(op);
      let p = packed.get(durable.buffer.pending);
      if (!p) packed.set(durable.buffer.pending, (p = { buffer: durable.buffer, names: [], deltas: [] }));
      p.names.push(durable.name);
      p.deltas.push(op.by);
    };
    for (const fields of this.counts.values()) for (const summed of fields.values()) push(summed);
    for (const members of this.ranks.values()) for (const summed of members.values()) push(summed);
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
    return { ops, packed: [...packed.values()] };
  }
}

/** What every event of one site's batch shares: key prefix, buffers, and each bucket's names. */
interface BatchScope {
  key(suffix: string): string;
  rollups: BufferKeys;
  uniques: BufferKeys;
  bucket(res: Res, at: number): BucketScope;
}

/** A key of one bucket and what PostgreSQL calls it. */
interface Named {
  key: string;
  suffix: string;
}

/** One time bucket of the batch: its names, built once per batch, not once per event. */
interface BucketScope {
  res: Res;
  bucket: number;
  /** A HyperLogLog is copied to PostgreSQL whole, so one that expired must not start again from
   * empty: visitors arriving after a bucket's retention are counted, not added to it. */
  held: boolean;
  totals: Named;
  /** The ranking of a dimension by a metric (its expiry registered when first named). */
  rank(dim: Dimension, metric: RankMetric): Named;
  /** The HyperLogLog of the bucket (no dimension) or of one dimension value. */
  unique(dim?: Dimension, value?: string): Named;
}

export function createAggregator(keys: Keys) {
  function scopeOf(siteId: string, nowMs: number, sums: OpSums): BatchScope {
    const prefix = keys.site(siteId) + ':';
    const byRes = new Map<Res, Map<number, BucketScope>>(RESOLUTIONS.map((res) => [res, new Map()]));
    const named = (suffix: string, ttl: number | undefined): Named => {
      const key = prefix + suffix;
      sums.expire(key, ttl);
      return { key, suffix };
    };
    function newBucket(res: Res, bucket: number): BucketScope {
      const ttl = ttlOf(res, bucket, nowMs);
      const ranks = new Map<string, Named>();
      const uniques = new Map<string, Map<string, Named>>();
      const total = named(figureSuffix({ kind: 'totals', res, bucket }), ttl);
      return {
        res,
        bucket,
        held: heldInRealtime(res, bucket, nowMs),
        totals: total,
        rank(dim, metric) {
          const id = dim + metric;
          let n = ranks.get(id);
          if (!n) ranks.set(id, (n = named(figureSuffix({ kind: 'ranking', res, bucket, dim, metric }), ttl)));
          return n;
        },
        unique(dim, value) {
          const id = dim ?? '';
          let values = uniques.get(id);
          if (!values) uniques.set(id, (values = new Map()));
          const v = value ?? '';
          let n = values.get(v);
          if (!n)
            values.set(
              v,
              (n = named(
                figureSuffix(dim === undefined ? { kind: 'unique', res, bucket } : { kind: 'unique', res, bucket, dim, value: v }),
                ttl,
              )),
            );
          return n;
        },
      };
    }
    return {
      key: (suffix) => prefix + suffix,
      rollups: keys.rollupBuffer(siteId),
      uniques: keys.uniquesBuffer(siteId),
      bucket(res, at) {
        const bucket = bucketOf(res, at);
        const buckets = byRes.get(res) as Map<number, BucketScope>;
        let scope = buckets.get(bucket);
        if (!scope) buckets.set(bucket, (scope = newBucket(res, bucket)));
        return scope;
      },
    };
  }

  /** Adds one human event's bucket figures at every resolution. */
  function countBuckets(sums: OpSums, scope: BatchScope, e: Enriched): void {
    const views: SessionView = { at: e.at, totals: [] };
    for (const res of RESOLUTIONS) {
      const b = scope.bucket(res, e.at);
      const total = (field: string, by: number) => sums.count(b.totals.key, field, by, scope.rollups, b.totals.suffix);
      const rank = (dim: Dimension, metric: RankMetric, value: string | undefined) => {
        if (value === undefined) return;
        const r = b.rank(dim, metric);
        sums.rank(r.key, value, scope.rollups, r.suffix);
      };
      const unique = (dim?: Dimension, value?: string) => {
        if (!b.held || (dim !== undefined && value === undefined)) return;
        const u = b.unique(dim, value);
        sums.unique(u.key, e.visitor, { buffer: scope.uniques, name: u.suffix });
      };
      /** A page view's dimension: ranked by page views, and its visitors counted. */
      const viewed = (dim: Dimension, value: string | undefined) => {
        rank(dim, 'pv', value);
        unique(dim, value);
      };
      if (e.bot) {
        // What the summary shows as filtered: a bot's page views and events (its engagement
        // pings and identifies would say nothing more).
        if (e.kind === 'pageview' || e.kind === 'event') total(TOTALS.bots, 1);
        continue;
      }
      switch (e.kind) {
        case 'pageview':
          total(TOTALS.pageviews, 1);
          views.totals.push({ key: b.totals.key, name: b.totals.suffix });
          unique();
          viewed('page', e.page);
          viewed('referrer', e.referrer);
          viewed('utm_source', e.utm.source);
          viewed('browser', e.browser);
          viewed('os', e.os);
          viewed('device', e.device);
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
    if (e.kind === 'pageview') sums.view(scope.key(figureSuffix({ kind: 'session', id: e.visitor })), views);
  }

  /** The tutorial's per-user and per-product counters, for callers that name their user. */
  function countUser(sums: OpSums, scope: BatchScope, buffer: BufferKeys, m: CollectedMessage, e: Enriched): void {
    if (e.user === undefined || e.bot) return;
    // The user's field in a product's hash is the escaped id, as in the user's own figure name.
    const visitor = part(e.user);
    const user = figureSuffix({ kind: 'user', id: e.user });
    const counter = (suffix: string, field: string, onFirst?: () => AggregateOp[]) =>
      sums.count(scope.key(suffix), field, 1, buffer, suffix, onFirst);
    const first = (suffix: string, field: string): AggregateOp => ({
      op: 'count',
      key: scope.key(suffix),
      field,
      by: 1,
      durable: { buffer, name: durableName(suffix, field) },
    });
    if (m.type === 'page' || m.type === 'screen') counter(user, 'pageviews');
    if (m.type === 'track' && m.event !== undefined) counter(figureSuffix({ kind: 'userEvents', id: e.user }), m.event);
    if (e.product !== undefined) {
      const product = figureSuffix({ kind: 'product', id: e.product });
      counter(user, 'clicks');
      counter(product, 'clicks');
      counter(figureSuffix({ kind: 'productUsers', id: e.product }), visitor, () => [first(user, 'products'), first(product, 'users')]);
    }
  }

  /** One site's counted messages as one pre-aggregated batch (dedupe keys in the same order). */
  return function buildBatch(siteId: string, items: readonly Counted[], nowMs: number): AggregateBatch {
    const sums = new OpSums();
    const scope = scopeOf(siteId, nowMs, sums);
    const users = keys.analyticsBuffer(siteId);
    for (const { message, enriched } of items) {
      countBuckets(sums, scope, enriched);
      countUser(sums, scope, users, message, enriched);
    }
    return {
      dedupeTtlSeconds: DEDUPE_TTL_SECONDS,
      dedupeKeys: items.map((i) => keys.dedupe(siteId, i.message.messageId)),
      ...sums.ops({ liveKey: scope.key(figureSuffix({ kind: 'live' })), rollups: scope.rollups, nowMs }),
    };
  };
}

export type BuildBatch = ReturnType<typeof createAggregator>;
