import { type AggregateOp, type AnalyticsRealtime, checkStep, type RankedMember } from '../analytics-realtime.js';
import { count as countUnion, HyperLogLog } from '../hyperloglog.js';
import type { BufferKeys, Keys } from '../keys.js';
import type { EmbeddedBuffers } from './counter-buffers.js';

// The embedded default's hot analytics figures, in this process: counters, rankings, visitor
// HyperLogLogs (Redis's own format, so PostgreSQL holds the same bytes in both modes), the live
// set, session states and dedupe marks, each with its expiry. A step runs between two awaits,
// so nothing interleaves with it. test/realtime-differential.test.ts holds it to the Redis
// implementation (lua/apply-aggregate.lua).

interface Session {
  last: number;
  views: number;
}

/** A session figure of one step, summed over the step's page views (written once, at the end). */
interface SessionSum {
  key: string;
  field: string;
  name: string;
  by: number;
  buffer: BufferKeys;
}

/** Equal scores rank as Redis ranks them: by the members' bytes, highest first. */
function byScoreThenBytes(a: RankedMember, b: RankedMember): number {
  return b.score - a.score || Buffer.compare(Buffer.from(b.member), Buffer.from(a.member));
}

export function createEmbeddedAnalytics(deps: {
  keys: Keys;
  buffers: EmbeddedBuffers;
  now: () => number;
}): AnalyticsRealtime & { close(): void } {
  const { buffers, now } = deps;
  const key = deps.keys.siteKey;
  const counters = new Map<string, Map<string, number>>();
  const rankings = new Map<string, Map<string, number>>();
  /** Sorted by time: the live set (member -> last seen ms). */
  const times = new Map<string, Map<string, number>>();
  const uniques = new Map<string, HyperLogLog>();
  const sessions = new Map<string, Session>();
  const seen = new Map<string, number>();
  const expiries = new Map<string, number>();
  const stores = [counters, rankings, times, uniques, sessions] as const;

  const drop = (k: string) => {
    for (const store of stores) store.delete(k);
    expiries.delete(k);
  };
  /** Drops the key if it expired; true when it still holds something. */
  const live = (k: string) => {
    const at = expiries.get(k);
    if (at !== undefined && at <= now()) drop(k);
    return stores.some((store) => store.has(k));
  };
  const mapOf = <V>(store: Map<string, Map<string, V>>, k: string) => {
    live(k);
    let m = store.get(k);
    if (!m) store.set(k, (m = new Map()));
    return m;
  };
  const increment = (store: Map<string, Map<string, number>>, k: string, field: string, by: number) => {
    const m = mapOf(store, k);
    const value = (m.get(field) ?? 0) + by;
    m.set(field, value);
    return value;
  };

  // Expired figures nobody reads again are swept now and then.
  const sweeper = setInterval(() => {
    for (const k of [...expiries.keys()]) live(k);
    for (const [k, at] of seen) if (at <= now()) seen.delete(k);
  }, 60_000);
  sweeper.unref();

  function run(ops: readonly AggregateOp[], sessionSums: Map<string, SessionSum>) {
    for (const op of ops) {
      switch (op.op) {
        case 'count': {
          const value = increment(counters, op.key, op.field, op.by);
          if (op.durable) buffers.add(op.durable.buffer, op.durable.name, op.by);
          if (op.onFirst && value === op.by) run(op.onFirst, sessionSums);
          break;
        }
        case 'pfadd': {
          const existed = live(op.key) && uniques.has(op.key);
          let hll = uniques.get(op.key);
          if (!hll) uniques.set(op.key, (hll = new HyperLogLog()));
          let changed = !existed;
          for (const member of op.members) changed = hll.add(member) || changed;
          if (changed && op.dirty) buffers.add(op.dirty.buffer, op.dirty.name, 1);
          break;
        }
        case 'zincrby':
          increment(rankings, op.key, op.member, op.by);
          break;
        case 'zmax': {
          const m = mapOf(times, op.key);
          if ((m.get(op.member) ?? -Infinity) < op.score) m.set(op.member, op.score);
          break;
        }
        case 'zremrangebyscore': {
          if (!live(op.key)) break;
          const m = times.get(op.key);
          if (!m) break;
          for (const [member, score] of m) if (score <= op.max) m.delete(member);
          if (m.size === 0) drop(op.key);
          break;
        }
        case 'expire':
          if (live(op.key)) expiries.set(op.key, now() + op.seconds * 1000);
          break;
        case 'session': {
          const state = live(op.key) ? sessions.get(op.key) : undefined;
          let last = state?.last ?? -1;
          let views = state?.views ?? 0;
          const add = (totals: { key: string; name: string }[], field: string, by: number) => {
            for (const t of totals) {
              const id = `${t.key}\n${field}`;
              const sum = sessionSums.get(id);
              if (sum) sum.by += by;
              else sessionSums.set(id, { key: t.key, field, name: `${t.name}|${field}`, by, buffer: op.buffer });
            }
          };
          for (const view of op.views) {
            if (last < 0 || Math.abs(view.at - last) > op.gapMs) {
              views = 1;
              add(view.totals, 'se', 1);
              add(view.totals, 'bo', 1);
            } else if (views === 1) {
              views = 2;
              add(view.totals, 'bo', -1);
            }
            if (view.at > last) last = view.at;
          }
          sessions.set(op.key, { last, views });
          expiries.set(op.key, now() + op.ttlSeconds * 1000);
          break;
        }
      }
    }
  }

  return {
    async apply(batch) {
      checkStep(batch);
      const duplicates: number[] = [];
      const claimed = new Set<string>();
      batch.dedupeKeys.forEach((k, i) => {
        const at = seen.get(k);
        if (claimed.has(k) || (at !== undefined && at > now())) duplicates.push(i);
        claimed.add(k);
      });
      if (duplicates.length > 0) return duplicates;
      for (const k of batch.dedupeKeys) seen.set(k, now() + batch.dedupeTtlSeconds * 1000);
      const sessionSums = new Map<string, SessionSum>();
      run(batch.ops, sessionSums);
      // A session figure that summed to nothing over the step is not written (as in the script).
      for (const s of sessionSums.values()) {
        if (s.by === 0) continue;
        increment(counters, s.key, s.field, s.by);
        buffers.add(s.buffer, s.name, s.by);
      }
      for (const p of batch.packed) p.names.forEach((name, i) => buffers.add(p.buffer, name, p.deltas[i] ?? 0));
      return [];
    },

    async counters(siteId, suffix) {
      const k = key(siteId, suffix);
      return live(k) ? Object.fromEntries(counters.get(k) ?? []) : {};
    },

    async countUniques(siteId, suffixes, sketches = []) {
      // A missing HyperLogLog stays in the list: PFCOUNT of one key caches its count in the key,
      // of several (missing ones included) it does not, and the bytes show the difference.
      const hlls = suffixes.map((suffix) => {
        const k = key(siteId, suffix);
        return live(k) ? uniques.get(k) : undefined;
      });
      return countUnion(...hlls, ...sketches.map((bytes) => HyperLogLog.fromBytes(bytes)));
    },

    async rank(siteId, suffixes, limit) {
      const sums = new Map<string, number>();
      for (const suffix of suffixes) {
        const k = key(siteId, suffix);
        if (!live(k)) continue;
        for (const [member, score] of rankings.get(k) ?? []) sums.set(member, (sums.get(member) ?? 0) + score);
      }
      const sorted = [...sums].map(([member, score]) => ({ member, score })).sort(byScoreThenBytes);
      return limit > 0 ? sorted.slice(0, limit) : sorted;
    },

    async liveSince(siteId, sinceMs) {
      const k = key(siteId, 'live');
      if (!live(k)) return 0;
      let n = 0;
      for (const at of times.get(k)?.values() ?? []) if (at >= sinceMs) n += 1;
      return n;
    },

    async copyUniques(siteId, suffixes) {
      return suffixes.map((suffix) => {
        const k = key(siteId, suffix);
        const hll = live(k) ? uniques.get(k) : undefined;
        // The bytes before the count, as Redis's copy reads them (a count caches itself in them).
        return hll ? { hll: hll.toBytes(), visitors: hll.count() } : null;
      });
    },

    async restore(siteId, items) {
      for (const item of items) {
        const k = key(siteId, item.suffix);
        drop(k);
        if (item.kind === 'unique') uniques.set(k, HyperLogLog.fromBytes(item.hll));
        else if (Object.keys(item.values).length > 0)
          (item.kind === 'counters' ? counters : rankings).set(k, new Map(Object.entries(item.values)));
        if (item.ttlSeconds !== undefined && live(k)) expiries.set(k, now() + item.ttlSeconds * 1000);
      }
    },

    close() {
      clearInterval(sweeper);
    },
  };
}
