import { readFileSync } from 'node:fs';
import { Cluster, Redis } from 'ioredis';
import type { BufferKeys, InboxKeys } from '../keys.js';
import type { AggregateOp, Realtime, StreamEntry, StreamReader, TakenBatch } from '../realtime.js';

// The production real-time layer. Each atomic operation is one Lua file in lua/, loaded once
// with defineCommand (EVALSHA, falling back to EVAL after a script flush) and called from here only.

export type RedisClient = Redis | Cluster;

const SCRIPTS = [
  'enqueue',
  'ack-entries',
  'add-deltas',
  'take-batch',
  'finish-batch',
  'read-buffered',
  'release-lock',
  'apply-aggregate',
  'rank-union',
  'inbox-begin',
  'inbox-finish',
  'inbox-state',
  'inbox-total',
  'inbox-drop-stale',
  'inbox-repair',
  'inbox-untouch',
] as const;
type ScriptName = (typeof SCRIPTS)[number];

const LUA_DIR = new URL('../../../lua/', import.meta.url);

type ScriptFn = (numKeys: number, ...args: (string | number)[]) => Promise<unknown>;

function commandName(script: ScriptName): string {
  return 'tally_' + script.replace(/-/g, '_');
}

export interface RedisConnectOptions {
  url?: string | undefined;
  clusterNodes?: readonly { host: string; port: number }[] | undefined;
}

// While Redis is unreachable a command waits through two reconnection attempts, then fails:
// the collector answers 503 unavailable within seconds instead of holding requests open.
const FAIL_FAST = { maxRetriesPerRequest: 2, connectTimeout: 2000 };

export function connectRedis(options: RedisConnectOptions): RedisClient {
  if (options.clusterNodes) {
    return new Cluster([...options.clusterNodes], {
      enableAutoPipelining: true,
      // ioredis groups an auto-pipeline by its commands' first argument, which for a script
      // with a variable key count is the count, not a key: two scripts bound for different
      // nodes could share a pipeline and fail. Scripts are sent on their own.
      autoPipeliningIgnoredCommands: SCRIPTS.map(commandName),
      scaleReads: 'master',
      redisOptions: FAIL_FAST,
    });
  }
  return new Redis(options.url ?? 'redis://127.0.0.1:6379', { enableAutoPipelining: true, ...FAIL_FAST });
}

/** Fields read per HSCAN page when a batch is taken for flushing. */
const TAKE_PAGE = 2000;
/** Packed items read per LRANGE page (each holds up to a whole aggregate step's deltas). */
const TAKE_PACKED_PAGE = 8;

/** Compact encoding of ops for apply-aggregate.lua: keys become 1-based indexes into KEYS. */
class KeyTable {
  readonly keys: string[] = [];
  private readonly index = new Map<string, number>();

  of(key: string): number {
    let i = this.index.get(key);
    if (i === undefined) {
      this.keys.push(key);
      i = this.keys.length;
      this.index.set(key, i);
    }
    return i;
  }

  /** apply-aggregate.lua's encoding (see its header). */
  encodeAggregate(ops: readonly AggregateOp[]): unknown[] {
    return ops.map((op) => {
      switch (op.op) {
        case 'count': {
          const onFirst = op.onFirst ? this.encodeAggregate(op.onFirst) : 0;
          return [1, this.of(op.key), op.field, op.by, op.durable ? this.of(op.durable.buffer.pending) : 0, op.durable?.name ?? '', onFirst];
        }
        case 'pfadd':
          return [2, this.of(op.key), op.members, op.dirty ? this.of(op.dirty.buffer.pending) : 0, op.dirty?.name ?? ''];
        case 'zincrby':
          return [3, this.of(op.key), op.member, op.by];
        case 'zmax':
          return [4, this.of(op.key), op.member, op.score];
        case 'zremrangebyscore':
          return [5, this.of(op.key), op.max];
        case 'expire':
          return [6, this.of(op.key), op.seconds];
        case 'session': {
          const views = op.views.map((v) => {
            const row: unknown[] = [v.at];
            for (const t of v.totals) row.push(this.of(t.key), t.name);
            return row;
          });
          return [7, this.of(op.key), this.of(op.buffer.pending), op.gapMs, op.ttlSeconds, views];
        }
      }
    });
  }
}

function duplicate(client: RedisClient): RedisClient {
  return client instanceof Cluster ? client.duplicate() : client.duplicate();
}

function toNumber(value: string | null | undefined): number {
  return value == null ? 0 : Number(value);
}

function entriesOf(reply: unknown): StreamEntry[] {
  // XREADGROUP / XAUTOCLAIM entry list: [[id, [field, value, ...]], ...]; deleted entries have null fields.
  const out: StreamEntry[] = [];
  for (const item of (reply ?? []) as [string, string[] | null][]) {
    const fields = item[1];
    if (!fields) continue;
    const at = fields.indexOf('p');
    if (at >= 0) out.push({ id: item[0], payload: fields[at + 1] ?? '' });
  }
  return out;
}

export function createRedisRealtime(client: RedisClient): Realtime {
  for (const script of SCRIPTS) {
    const lua = readFileSync(new URL(`${script}.lua`, LUA_DIR), 'utf8');
    client.defineCommand(commandName(script), { lua });
  }
  const call = (script: ScriptName, keys: readonly string[], args: readonly (string | number)[] = []) =>
    // biome-ignore lint/style/noNonNullAssertion: defineCommand above added every script's command
    (client as unknown as Record<string, ScriptFn>)[commandName(script)]!(keys.length, ...keys, ...args);
  const bufferKeys = (b: BufferKeys) => [b.pending, b.inflight, b.meta];
  const takeKeys = (b: BufferKeys) => [...bufferKeys(b), b.pendingPacked, b.inflightPacked];
  const inboxKeys = (k: InboxKeys) => [...bufferKeys(k.buffer), k.intents, k.versions, k.touched, k.totals];
  // A user's first version: now in microseconds, so versions keep growing after a Redis data loss.
  const firstVersion = (nowMs: number) => `${Math.floor(nowMs)}000`;
  // One subscriber connection serves every live stream of this process.
  let subscriber: RedisClient | undefined;
  const handlers = new Map<string, Set<(message: string) => void>>();

  return {
    kind: 'redis',

    async ensureGroup(stream, group) {
      try {
        await client.xgroup('CREATE', stream, group, '0', 'MKSTREAM');
      } catch (err) {
        if (!String((err as Error).message).includes('BUSYGROUP')) throw err;
      }
    },

    async enqueue(stream, payload, maxBacklog) {
      const id = await call('enqueue', [stream], [maxBacklog, payload]);
      return typeof id === 'string' ? id : null;
    },

    openReader(stream, group): StreamReader {
      // Blocking reads hold a connection: give each reader its own.
      const conn = duplicate(client);
      return {
        async read(consumer, count, blockMs) {
          // BLOCK 0 would wait forever: a zero wait is a plain, non-blocking read.
          const reply = (
            blockMs > 0
              ? await conn.xreadgroup('GROUP', group, consumer, 'COUNT', count, 'BLOCK', blockMs, 'STREAMS', stream, '>')
              : await conn.xreadgroup('GROUP', group, consumer, 'COUNT', count, 'STREAMS', stream, '>')
          ) as [string, unknown][] | null;
          return reply?.[0] ? entriesOf(reply[0][1]) : [];
        },
        async readOwnPending(consumer, count) {
          // ID 0 instead of '>': this consumer's delivered, unacknowledged entries.
          const reply = (await conn.xreadgroup('GROUP', group, consumer, 'COUNT', count, 'STREAMS', stream, '0')) as
            | [string, unknown][]
            | null;
          return reply?.[0] ? entriesOf(reply[0][1]) : [];
        },
        async close() {
          conn.disconnect();
        },
      };
    },

    async claimStale(stream, group, consumer, minIdleMs, count) {
      const reply = (await client.xautoclaim(stream, group, consumer, minIdleMs, '0-0', 'COUNT', count)) as unknown[];
      return entriesOf(reply[1]);
    },

    async ackEntries(stream, group, ids) {
      if (ids.length > 0) await call('ack-entries', [stream], [group, ...ids]);
    },

    streamLength: (stream) => client.xlen(stream),

    async applyAggregate(batch) {
      if (batch.dedupeKeys.length === 0 && batch.ops.length === 0 && batch.packed.length === 0) return [];
      const table = new KeyTable();
      const d = batch.dedupeKeys.map((k) => table.of(k));
      const o = table.encodeAggregate(batch.ops);
      // Each packed item travels as an argument of its own: the script pushes it without decoding.
      const packed = batch.packed.filter((p) => p.names.length > 0);
      const p = packed.map((item, i) => [table.of(item.buffer.pendingPacked), i + 3]);
      const args = [batch.dedupeTtlSeconds, JSON.stringify({ d, o, p }), ...packed.map((item) => JSON.stringify([item.names, item.deltas]))];
      return ((await call('apply-aggregate', table.keys, args)) as number[]).map(Number);
    },

    async addDeltas(buffer, fields, deltas) {
      if (fields.length === 0) return;
      const args: (string | number)[] = [];
      fields.forEach((f, i) => args.push(f, deltas[i] ?? 0));
      await call('add-deltas', [buffer.pending], args);
    },

    async takeBatch(buffer, minSeq, maxPackedBytes): Promise<TakenBatch | null> {
      const reply = (await call('take-batch', takeKeys(buffer), [minSeq, maxPackedBytes ?? 0])) as [number, number] | null;
      if (!reply) return null;
      const [seq, more] = reply;
      // The in-flight hash and list are frozen: read them in pages, so Redis serves other
      // clients between them. SCAN may repeat a field (never with another value): the Map keeps
      // it once; packed items are distinct, so theirs are summed.
      const taken = new Map<string, number>();
      let cursor = '0';
      do {
        const [next, flat] = await client.hscan(buffer.inflight, cursor, 'COUNT', TAKE_PAGE);
        cursor = next;
        for (let i = 0; i < flat.length; i += 2) taken.set(flat[i] as string, Number(flat[i + 1]));
      } while (cursor !== '0');
      for (let start = 0; ; start += TAKE_PACKED_PAGE) {
        const items = await client.lrange(buffer.inflightPacked, start, start + TAKE_PACKED_PAGE - 1);
        for (const item of items) {
          const [names, deltas] = JSON.parse(item) as [string[], number[]];
          names.forEach((name, i) => taken.set(name, (taken.get(name) ?? 0) + (deltas[i] ?? 0)));
        }
        if (items.length < TAKE_PACKED_PAGE) break;
      }
      return { seq: Number(seq), fields: [...taken.keys()], deltas: [...taken.values()], more: Number(more) === 1 };
    },

    async finishBatch(buffer, seq) {
      await call('finish-batch', takeKeys(buffer), [seq]);
    },

    async readBuffered(buffer, field) {
      const [pending, inflight, inflightSeq, doneSeq] = (await call('read-buffered', bufferKeys(buffer), [field])) as number[];
      return { pending: pending ?? 0, inflight: inflight ?? 0, inflightSeq: inflightSeq ?? 0, doneSeq: doneSeq ?? 0 };
    },

    async beginInboxChange(keys, mutationId, userIds, nowMs) {
      if (userIds.length > 0) await call('inbox-begin', [keys.intents, keys.touched], [mutationId, nowMs, ...userIds]);
    },

    async finishInboxChange(keys, mutationId, changes, nowMs) {
      if (changes.length === 0) return [];
      const args: (string | number)[] = [mutationId, nowMs, firstVersion(nowMs)];
      for (const change of changes) {
        args.push(change.userId, change.delta, change.channel ?? '');
        if (change.durable) args.push(change.durable.lastSeq, change.durable.durable);
        else args.push('', '');
      }
      const reply = (await call('inbox-finish', inboxKeys(keys), args)) as number[];
      return changes.map((_, i) => {
        const [applied, version, pending, inflight, inflightSeq, doneSeq, hasTotal, total] = reply.slice(i * 8, i * 8 + 8) as number[];
        return {
          applied: applied === 1,
          version: version ?? 0,
          pending: pending ?? 0,
          inflight: inflight ?? 0,
          inflightSeq: inflightSeq ?? 0,
          doneSeq: doneSeq ?? 0,
          total: hasTotal === 1 ? (total ?? 0) : null,
        };
      });
    },

    async readInboxState(keys, userId) {
      const reply = (await call('inbox-state', [...inboxKeys(keys).slice(0, 5), keys.totals], [userId])) as number[];
      const [version, pending, inflight, inflightSeq, doneSeq, intents, oldestIntentMs, hasTotal, total] = reply;
      return {
        version: version ?? 0,
        pending: pending ?? 0,
        inflight: inflight ?? 0,
        inflightSeq: inflightSeq ?? 0,
        doneSeq: doneSeq ?? 0,
        intents: intents ?? 0,
        oldestIntentMs: oldestIntentMs ?? 0,
        total: hasTotal === 1 ? (total ?? 0) : null,
      };
    },

    async readInboxTotal(keys, userId, durable) {
      const args = durable ? [userId, durable.lastSeq, durable.durable] : [userId];
      const [version, hasTotal, total] = (await call('inbox-total', [...bufferKeys(keys.buffer), keys.versions, keys.totals], args)) as number[];
      return { version: version ?? 0, total: hasTotal === 1 ? (total ?? 0) : null };
    },

    dropStaleIntents: async (keys, userId, beforeMs) => Number(await call('inbox-drop-stale', [keys.intents], [userId, beforeMs])),

    async repairInboxCount(keys, userId, delta, expectVersion, nowMs) {
      const reply = await call('inbox-repair', [keys.buffer.pending, keys.versions, keys.totals], [userId, delta, expectVersion, firstVersion(nowMs)]);
      return Number(reply) === 1;
    },

    listTouched: (keys, maxMs, limit) => client.zrangebyscore(keys.touched, '-inf', maxMs, 'LIMIT', 0, limit),

    async untouch(keys, userIds, maxMs) {
      if (userIds.length > 0) await call('inbox-untouch', [keys.touched], [maxMs, ...userIds]);
    },

    hget: async (key, field) => toNumber(await client.hget(key, field)),

    async hgetall(key) {
      const raw = await client.hgetall(key);
      const out: Record<string, number> = {};
      for (const [field, value] of Object.entries(raw)) out[field] = Number(value);
      return out;
    },

    async zrevrangeWithScores(key, start, stop) {
      const flat = await client.zrevrange(key, start, stop, 'WITHSCORES');
      const out: { member: string; score: number }[] = [];
      for (let i = 0; i < flat.length; i += 2) out.push({ member: flat[i] as string, score: Number(flat[i + 1]) });
      return out;
    },

    zcount: (key, min, max) => client.zcount(key, min, max),

    pfcount: async (keys) => (keys.length === 0 ? 0 : client.pfcount(...keys)),


    async rankUnion(keys, limit, scratch) {
      if (keys.length === 0) return [];
      const flat = (await call('rank-union', [scratch, ...keys], [limit])) as string[];
      const out: { member: string; score: number }[] = [];
      for (let i = 0; i < flat.length; i += 2) out.push({ member: flat[i] as string, score: Number(flat[i + 1]) });
      return out;
    },

    async hset(key, values) {
      if (Object.keys(values).length > 0) await client.hset(key, values);
    },

    async restore(items) {
      if (items.length === 0) return;
      const pipeline = client.pipeline();
      for (const item of items) {
        pipeline.del(item.key);
        if (item.kind === 'unique') pipeline.set(item.key, item.dump);
        else if (item.kind === 'hash') {
          if (Object.keys(item.values).length > 0) pipeline.hset(item.key, item.values);
        }
        else if (Object.keys(item.values).length > 0) {
          pipeline.zadd(item.key, ...Object.entries(item.values).flatMap(([member, score]) => [score, member]));
        }
        if (item.ttlSeconds !== undefined) pipeline.expire(item.key, item.ttlSeconds);
      }
      const results = (await pipeline.exec()) ?? [];
      const failed = results.find(([err]) => err);
      if (failed) throw failed[0];
    },

    dumpUniques: (keys) => Promise.all(keys.map((key) => client.getBuffer(key))),

    async getOrSet(key, value, ttlSeconds) {
      const previous = (await client.call('SET', key, value, 'NX', 'GET', 'EX', ttlSeconds)) as string | null;
      return previous ?? value;
    },

    tryLock: async (key, token, ttlMs) => (await client.set(key, token, 'PX', ttlMs, 'NX')) === 'OK',

    async unlock(key, token) {
      await call('release-lock', [key], [token]);
    },

    async publish(channel, message) {
      await client.publish(channel, message);
    },

    async subscribe(channel, onMessage) {
      if (!subscriber) {
        const created = duplicate(client);
        subscriber = created;
        created.on('message', (ch: string, message: string) => {
          for (const handler of handlers.get(ch) ?? []) handler(message);
        });
      }
      const sub: RedisClient = subscriber;
      let set = handlers.get(channel);
      if (!set) {
        set = new Set();
        handlers.set(channel, set);
        await sub.subscribe(channel);
      }
      set.add(onMessage);
      return async () => {
        const current = handlers.get(channel);
        if (!current?.delete(onMessage) || current.size > 0) return;
        handlers.delete(channel);
        await sub.unsubscribe(channel).catch(() => undefined);
      };
    },

    async ping() {
      await client.ping();
    },

    async close() {
      subscriber?.disconnect();
      handlers.clear();
      await client.quit().catch(() => client.disconnect());
    },
  };
}
