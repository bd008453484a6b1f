import { EventEmitter } from 'node:events';
import type { BufferKeys } from '../keys.js';
import type { AggregateOp, Realtime, StreamEntry, StreamReader, TakenBatch } from '../realtime.js';

// The embedded default's real-time layer: the same operations as the Lua scripts, on Maps in
// this process. Each method runs synchronously between awaits, which makes it atomic just as a
// script is in Redis. Uniques are kept exactly (a Set stands in for a HyperLogLog).
// Nothing here survives the process: the embedded start reloads counters from PostgreSQL.

interface PendingEntry {
  consumer: string;
  deliveredAt: number;
}

interface Stream {
  entries: Map<string, string>; // id -> payload, in insertion order
  groups: Map<string, { delivered: Set<string>; pending: Map<string, PendingEntry> }>;
  lastMs: number;
  lastSeq: number;
}

// Intent fields are a 16-character mutation id followed by the user id (as in lua/inbox-begin.lua).
const MUTATION_ID_LENGTH = 16;

/** A user's first version: now in microseconds (as in lua/inbox-finish.lua). */
const firstVersion = (nowMs: number) => Math.floor(nowMs) * 1000;

export function createMemoryRealtime(now: () => number = Date.now): Realtime {
  const hashes = new Map<string, Map<string, number>>();
  const zsets = new Map<string, Map<string, number>>();
  const sets = new Map<string, Set<string>>();
  const strings = new Map<string, string>();
  /** Lists of packed deltas, each item JSON text [names, deltas], as in Redis. */
  const lists = new Map<string, string[]>();
  const expiries = new Map<string, number>();
  const streams = new Map<string, Stream>();
  const wakeups = new EventEmitter();
  wakeups.setMaxListeners(0);
  const channels = new EventEmitter();
  channels.setMaxListeners(0);

  const expired = (key: string) => {
    const at = expiries.get(key);
    if (at !== undefined && at <= now()) {
      del(key);
      return true;
    }
    return false;
  };
  const del = (key: string) => {
    hashes.delete(key);
    zsets.delete(key);
    sets.delete(key);
    strings.delete(key);
    expiries.delete(key);
  };
  const exists = (key: string) =>
    !expired(key) && (hashes.has(key) || zsets.has(key) || sets.has(key) || strings.has(key));
  const hash = (key: string) => {
    expired(key);
    let h = hashes.get(key);
    if (!h) hashes.set(key, (h = new Map()));
    return h;
  };
  const zset = (key: string) => {
    expired(key);
    let z = zsets.get(key);
    if (!z) zsets.set(key, (z = new Map()));
    return z;
  };
  const set = (key: string) => {
    expired(key);
    let s = sets.get(key);
    if (!s) sets.set(key, (s = new Set()));
    return s;
  };
  const hincrby = (key: string, field: string, by: number) => {
    const h = hash(key);
    const value = (h.get(field) ?? 0) + by;
    h.set(field, value);
    return value;
  };

  // Expired keys that nobody reads again are swept now and then.
  const sweeper = setInterval(() => {
    for (const key of [...expiries.keys()]) expired(key);
  }, 60_000);
  sweeper.unref();

  // apply-aggregate.lua's ops, the same semantics (sessions: see the Lua header).
  const runAggregate = (ops: readonly AggregateOp[]) => {
    for (const op of ops) {
      switch (op.op) {
        case 'count': {
          const value = hincrby(op.key, op.field, op.by);
          if (op.durable) hincrby(op.durable.buffer.pending, op.durable.name, op.by);
          if (op.onFirst && value === op.by) runAggregate(op.onFirst);
          break;
        }
        case 'pfadd': {
          const s = set(op.key);
          const before = s.size;
          for (const member of op.members) s.add(member);
          if (s.size !== before && op.dirty) hincrby(op.dirty.buffer.pending, op.dirty.name, 1);
          break;
        }
        case 'zincrby': {
          const z = zset(op.key);
          z.set(op.member, (z.get(op.member) ?? 0) + op.by);
          break;
        }
        case 'zmax': {
          const z = zset(op.key);
          if ((z.get(op.member) ?? -Infinity) < op.score) z.set(op.member, op.score);
          break;
        }
        case 'zremrangebyscore': {
          const z = zset(op.key);
          for (const [member, score] of z) if (score <= op.max) z.delete(member);
          break;
        }
        case 'expire':
          if (exists(op.key)) expiries.set(op.key, now() + op.seconds * 1000);
          break;
        case 'session': {
          const state = exists(op.key) ? strings.get(op.key) : undefined;
          let last = state === undefined ? -1 : Number(state.split(':')[0]);
          let views = state === undefined ? 0 : Number(state.split(':')[1]);
          const add = (totals: { key: string; name: string }[], field: string, by: number) => {
            for (const t of totals) {
              hincrby(t.key, field, by);
              hincrby(op.buffer.pending, `${t.name}|${field}`, by);
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
          strings.set(op.key, `${last}:${views}`);
          expiries.set(op.key, now() + op.ttlSeconds * 1000);
          break;
        }
      }
    }
  };

  const stream = (key: string) => {
    let s = streams.get(key);
    if (!s) streams.set(key, (s = { entries: new Map(), groups: new Map(), lastMs: 0, lastSeq: 0 }));
    return s;
  };
  const group = (key: string, name: string) => {
    const g = stream(key).groups.get(name);
    if (!g) throw new Error(`NOGROUP no consumer group ${name} for ${key}`);
    return g;
  };

  /** XADD: a new id after the stream's last, readers waiting on the stream woken. */
  const append = (key: string, payload: string) => {
    const s = stream(key);
    const ms = now();
    if (ms > s.lastMs) {
      s.lastMs = ms;
      s.lastSeq = 0;
    } else {
      s.lastSeq += 1;
    }
    const id = `${s.lastMs}-${s.lastSeq}`;
    s.entries.set(id, payload);
    wakeups.emit(key);
    return id;
  };

  const take = (key: string): Map<string, number> | undefined => {
    const h = hashes.get(key);
    hashes.delete(key);
    return h && h.size > 0 ? h : undefined;
  };

  return {
    kind: 'memory',

    async ensureGroup(key, name) {
      const s = stream(key);
      if (!s.groups.has(name)) s.groups.set(name, { delivered: new Set(), pending: new Map() });
    },

    async enqueue(key, payload, maxBacklog) {
      const s = stream(key);
      if (s.entries.size >= maxBacklog) return null;
      return append(key, payload);
    },

    openReader(key, name): StreamReader {
      let closed = false;
      const readNow = (consumer: string, count: number): StreamEntry[] => {
        const g = group(key, name);
        const out: StreamEntry[] = [];
        for (const [id, payload] of stream(key).entries) {
          if (out.length >= count) break;
          if (g.delivered.has(id)) continue;
          g.delivered.add(id);
          g.pending.set(id, { consumer, deliveredAt: now() });
          out.push({ id, payload });
        }
        return out;
      };
      return {
        async read(consumer, count, blockMs) {
          const ready = readNow(consumer, count);
          if (ready.length > 0 || blockMs <= 0 || closed) return ready;
          await new Promise<void>((resolve) => {
            const timer = setTimeout(done, blockMs);
            function done() {
              clearTimeout(timer);
              wakeups.off(key, done);
              resolve();
            }
            wakeups.on(key, done);
          });
          return closed ? [] : readNow(consumer, count);
        },
        async readOwnPending(consumer, count) {
          const g = group(key, name);
          const entries = stream(key).entries;
          const out: StreamEntry[] = [];
          for (const [id, p] of g.pending) {
            if (out.length >= count) break;
            const payload = entries.get(id);
            if (p.consumer === consumer && payload !== undefined) out.push({ id, payload });
          }
          return out;
        },
        async close() {
          closed = true;
          wakeups.emit(key);
        },
      };
    },

    async claimStale(key, name, consumer, minIdleMs, count) {
      const g = group(key, name);
      const entries = stream(key).entries;
      const out: StreamEntry[] = [];
      for (const [id, p] of g.pending) {
        if (out.length >= count) break;
        if (now() - p.deliveredAt < minIdleMs) continue;
        const payload = entries.get(id);
        if (payload === undefined) {
          g.pending.delete(id);
          continue;
        }
        g.pending.set(id, { consumer, deliveredAt: now() });
        out.push({ id, payload });
      }
      return out;
    },

    async ackEntries(key, name, ids) {
      const g = group(key, name);
      const s = stream(key);
      for (const id of ids) {
        g.pending.delete(id);
        g.delivered.delete(id);
        s.entries.delete(id);
      }
    },

    streamLength: async (key) => stream(key).entries.size,

    async deadLetter(key, deadKey, name, ids) {
      const g = group(key, name);
      const s = stream(key);
      let moved = 0;
      for (const id of ids) {
        const payload = s.entries.get(id);
        if (payload === undefined) continue;
        append(deadKey, payload);
        g.pending.delete(id);
        g.delivered.delete(id);
        s.entries.delete(id);
        moved += 1;
      }
      return moved;
    },

    async applyAggregate(batch) {
      const duplicates: number[] = [];
      const seen = new Set<string>();
      batch.dedupeKeys.forEach((key, i) => {
        if (seen.has(key) || exists(key)) duplicates.push(i);
        seen.add(key);
      });
      if (duplicates.length > 0) return duplicates;
      for (const key of batch.dedupeKeys) {
        strings.set(key, '1');
        expiries.set(key, now() + batch.dedupeTtlSeconds * 1000);
      }
      runAggregate(batch.ops);
      // Packed deltas stay apart from the pending hash until taken, as in Redis (readBuffered
      // does not see them), and as JSON text: a take bounds them by the same bytes.
      for (const p of batch.packed) {
        if (p.names.length === 0) continue;
        let list = lists.get(p.buffer.pendingPacked);
        if (!list) lists.set(p.buffer.pendingPacked, (list = []));
        list.push(JSON.stringify([p.names, p.deltas]));
      }
      return [];
    },

    async addDeltas(buffer, fields, deltas) {
      fields.forEach((field, i) => hincrby(buffer.pending, field, deltas[i] ?? 0));
    },

    async takeBatch(buffer: BufferKeys, minSeq, maxPackedBytes = 0): Promise<TakenBatch | null> {
      const meta = hash(buffer.meta);
      const toBatch = (seq: number, h: Map<string, number>, more: number) => ({
        seq,
        fields: [...h.keys()],
        deltas: [...h.values()],
        more: more === 1,
      });
      const inflight = meta.get('inflight') ?? 0;
      const leftover = hashes.get(buffer.inflight);
      if (inflight > 0 && leftover) return toBatch(inflight, leftover, meta.get('more') ?? 0);
      const items = lists.get(buffer.pendingPacked) ?? [];
      const pending = take(buffer.pending);
      if (!pending && items.length === 0) return null;
      // The oldest items that fit the bound, at least one (as lua/take-batch.lua).
      let fit = items.length;
      if (maxPackedBytes > 0) {
        let bytes = 0;
        fit = 0;
        for (const item of items) {
          bytes += Buffer.byteLength(item);
          if (bytes > maxPackedBytes && fit > 0) break;
          fit++;
        }
      }
      const batch = pending ?? new Map<string, number>();
      for (const item of items.splice(0, fit)) {
        const [names, deltas] = JSON.parse(item) as [string[], number[]];
        names.forEach((name, i) => batch.set(name, (batch.get(name) ?? 0) + (deltas[i] ?? 0)));
      }
      if (items.length === 0) lists.delete(buffer.pendingPacked);
      const more = items.length > 0 ? 1 : 0;
      const seq = Math.max(meta.get('seq') ?? 0, minSeq) + 1;
      hashes.set(buffer.inflight, batch);
      meta.set('seq', seq);
      meta.set('inflight', seq);
      meta.set('more', more);
      return toBatch(seq, batch, more);
    },

    async finishBatch(buffer, seq) {
      const meta = hash(buffer.meta);
      if ((meta.get('inflight') ?? 0) !== seq) return;
      hashes.delete(buffer.inflight);
      meta.set('inflight', 0);
      meta.set('done', seq);
    },

    async readBuffered(buffer, field) {
      const meta = hashes.get(buffer.meta);
      return {
        pending: hashes.get(buffer.pending)?.get(field) ?? 0,
        inflight: hashes.get(buffer.inflight)?.get(field) ?? 0,
        inflightSeq: meta?.get('inflight') ?? 0,
        doneSeq: meta?.get('done') ?? 0,
      };
    },

    async beginInboxChange(keys, mutationId, userIds, nowMs) {
      for (const userId of userIds) {
        hash(keys.intents).set(mutationId + userId, nowMs);
        zset(keys.touched).set(userId, nowMs);
      }
    },

    async finishInboxChange(keys, mutationId, changes, nowMs) {
      const meta = hashes.get(keys.buffer.meta);
      const inflightSeq = meta?.get('inflight') ?? 0;
      const doneSeq = meta?.get('done') ?? 0;
      return changes.map(({ userId, delta, channel, durable }) => {
        const applied = hash(keys.intents).delete(mutationId + userId);
        const versions = hash(keys.versions);
        if (applied && delta !== 0) {
          hincrby(keys.buffer.pending, userId, delta);
          if (hashes.get(keys.totals)?.has(userId)) hincrby(keys.totals, userId, delta);
          versions.set(userId, versions.has(userId) ? (versions.get(userId) ?? 0) + 1 : firstVersion(nowMs));
          if (channel) channels.emit(channel, String(versions.get(userId)));
        }
        if (!applied) zset(keys.touched).set(userId, nowMs);
        const pending = hashes.get(keys.buffer.pending)?.get(userId) ?? 0;
        const inflight = hashes.get(keys.buffer.inflight)?.get(userId) ?? 0;
        let total = hashes.get(keys.totals)?.get(userId) ?? null;
        if (total === null && durable && doneSeq <= durable.lastSeq) {
          total = durable.durable + pending + (inflightSeq > durable.lastSeq ? inflight : 0);
          hash(keys.totals).set(userId, total);
        }
        return { applied, version: versions.get(userId) ?? 0, pending, inflight, inflightSeq, doneSeq, total };
      });
    },

    async readInboxState(keys, userId) {
      const meta = hashes.get(keys.buffer.meta);
      let intents = 0;
      let oldestIntentMs = 0;
      for (const [field, at] of hashes.get(keys.intents) ?? []) {
        if (field.slice(MUTATION_ID_LENGTH) !== userId) continue;
        intents += 1;
        if (oldestIntentMs === 0 || at < oldestIntentMs) oldestIntentMs = at;
      }
      return {
        version: hashes.get(keys.versions)?.get(userId) ?? 0,
        pending: hashes.get(keys.buffer.pending)?.get(userId) ?? 0,
        inflight: hashes.get(keys.buffer.inflight)?.get(userId) ?? 0,
        inflightSeq: meta?.get('inflight') ?? 0,
        doneSeq: meta?.get('done') ?? 0,
        intents,
        oldestIntentMs,
        total: hashes.get(keys.totals)?.get(userId) ?? null,
      };
    },

    async readInboxTotal(keys, userId, durable) {
      const version = hashes.get(keys.versions)?.get(userId) ?? 0;
      const kept = hashes.get(keys.totals)?.get(userId);
      if (kept !== undefined) return { version, total: kept };
      const meta = hashes.get(keys.buffer.meta);
      if (!durable || (meta?.get('done') ?? 0) > durable.lastSeq) return { version, total: null };
      const total =
        durable.durable +
        (hashes.get(keys.buffer.pending)?.get(userId) ?? 0) +
        ((meta?.get('inflight') ?? 0) > durable.lastSeq ? (hashes.get(keys.buffer.inflight)?.get(userId) ?? 0) : 0);
      hash(keys.totals).set(userId, total);
      return { version, total };
    },

    async dropStaleIntents(keys, userId, beforeMs) {
      const intents = hashes.get(keys.intents);
      let dropped = 0;
      for (const [field, at] of intents ?? []) {
        if (field.slice(MUTATION_ID_LENGTH) === userId && at <= beforeMs) {
          intents?.delete(field);
          dropped += 1;
        }
      }
      return dropped;
    },

    async repairInboxCount(keys, userId, delta, expectVersion, nowMs) {
      const versions = hash(keys.versions);
      const version = versions.get(userId) ?? 0;
      if (version !== expectVersion) return false;
      hincrby(keys.buffer.pending, userId, delta);
      hashes.get(keys.totals)?.delete(userId);
      versions.set(userId, version === 0 ? firstVersion(nowMs) : version + 1);
      return true;
    },

    async listTouched(keys, maxMs, limit) {
      return [...(zsets.get(keys.touched) ?? [])]
        .filter(([, at]) => at <= maxMs)
        .sort((a, b) => a[1] - b[1])
        .slice(0, limit)
        .map(([userId]) => userId);
    },

    async untouch(keys, userIds, maxMs) {
      const touched = zsets.get(keys.touched);
      for (const userId of userIds) {
        const at = touched?.get(userId);
        if (at !== undefined && at <= maxMs) touched?.delete(userId);
      }
    },

    hget: async (key, field) => (expired(key) ? 0 : (hashes.get(key)?.get(field) ?? 0)),

    hgetall: async (key) => (expired(key) ? {} : Object.fromEntries(hashes.get(key) ?? [])),

    async zrevrangeWithScores(key, start, stop) {
      if (expired(key)) return [];
      const sorted = [...(zsets.get(key) ?? [])]
        .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? 1 : a[0] > b[0] ? -1 : 0))
        .map(([member, score]) => ({ member, score }));
      return sorted.slice(start, stop < 0 ? sorted.length + stop + 1 : stop + 1);
    },

    async zcount(key, min, max) {
      if (expired(key)) return 0;
      let n = 0;
      for (const score of zsets.get(key)?.values() ?? []) if (score >= min && score <= max) n += 1;
      return n;
    },

    async pfcount(keys) {
      const union = new Set<string>();
      for (const key of keys) if (!expired(key)) for (const m of sets.get(key) ?? []) union.add(m);
      return union.size;
    },

    async rankUnion(keys, limit, _scratch) {
      const sums = new Map<string, number>();
      for (const key of keys) {
        if (expired(key)) continue;
        for (const [member, score] of zsets.get(key) ?? []) sums.set(member, (sums.get(member) ?? 0) + score);
      }
      const sorted = [...sums]
        .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? 1 : a[0] > b[0] ? -1 : 0))
        .map(([member, score]) => ({ member, score }));
      return limit > 0 ? sorted.slice(0, limit) : sorted;
    },


    async hset(key, values) {
      const h = hash(key);
      for (const [field, value] of Object.entries(values)) h.set(field, value);
    },

    async restore(items) {
      for (const item of items) {
        del(item.key);
        if (item.kind === 'unique') sets.set(item.key, new Set(JSON.parse(item.dump.toString('utf8')) as string[]));
        else if (item.kind === 'hash') hashes.set(item.key, new Map(Object.entries(item.values)));
        else zsets.set(item.key, new Map(Object.entries(item.values)));
        if (item.ttlSeconds !== undefined) expiries.set(item.key, now() + item.ttlSeconds * 1000);
      }
    },

    async dumpUniques(keys) {
      return keys.map((key) => {
        const members = expired(key) ? undefined : sets.get(key);
        return members ? Buffer.from(JSON.stringify([...members])) : null;
      });
    },

    async getOrSet(key, value, ttlSeconds) {
      const held = exists(key) ? strings.get(key) : undefined;
      if (held !== undefined) return held;
      strings.set(key, value);
      expiries.set(key, now() + ttlSeconds * 1000);
      return value;
    },

    async tryLock(key, token, ttlMs) {
      if (exists(key)) return false;
      strings.set(key, token);
      expiries.set(key, now() + ttlMs);
      return true;
    },

    async unlock(key, token) {
      if (!expired(key) && strings.get(key) === token) del(key);
    },

    async publish(channel, message) {
      channels.emit(channel, message);
    },

    async subscribe(channel, onMessage) {
      channels.on(channel, onMessage);
      return async () => void channels.off(channel, onMessage);
    },

    async ping() {},

    async close() {
      clearInterval(sweeper);
      wakeups.emit('close');
      channels.removeAllListeners();
    },
  };
}
