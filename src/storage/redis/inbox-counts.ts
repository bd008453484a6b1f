import { parseBufferField, userPrefix } from '../inbox-count-names.js';
import type { CountVector, InboxCounts, KeptCounts } from '../inbox-counts.js';
import type { CallScript, RedisClient } from './client.js';

// The inbox count protocol in Redis, one script per step (lua/inbox-*.lua). An intent is a
// field of the shard's intents hash: the change id (CHANGE_ID_LENGTH characters) followed by
// the user id, valued with the change's start (ms); the scripts split it the same way. A user's
// kept counts are a hash of its own (keys.counts(userId)) with a marker field, so that counts
// which are all zero are still kept.

/** Length of a change id: the scripts read the user id from character CHANGE_ID_LENGTH + 1 on. */
export const CHANGE_ID_LENGTH = 16;

const KEPT_MARKER = '*';
// A user's first version: now in microseconds, so versions keep growing after a Redis data loss.
const firstVersion = (nowMs: number) => `${Math.floor(nowMs)}000`;

/** Name, value pairs as a map (the kept marker and zeros left out: a missing name is 0). */
function pairs(flat: readonly unknown[], from = 0): Map<string, number> {
  const out = new Map<string, number>();
  for (let i = from; i + 1 < flat.length; i += 2) {
    const name = String(flat[i]);
    const value = Number(flat[i + 1]);
    if (name !== KEPT_MARKER && value !== 0) out.set(name, value);
  }
  return out;
}

/** A script's {..., kept (0/1), name, value, ...} tail from index `at`. */
const keptFrom = (reply: readonly unknown[], at: number) => (Number(reply[at]) === 1 ? pairs(reply, at + 1) : null);

const flatten = (vector: CountVector): (string | number)[] => [...vector].flat();

export function createRedisInboxCounts(client: RedisClient, call: CallScript): InboxCounts {
  return {
    async begin(keys, changeId, userIds, nowMs) {
      if (changeId.length !== CHANGE_ID_LENGTH) throw new Error(`a change id has ${CHANGE_ID_LENGTH} characters`);
      if (userIds.length > 0) await call('inbox-begin', [keys.intents, keys.touched, keys.running], [changeId, nowMs, ...userIds]);
    },

    async finish(keys, changeId, changes, nowMs) {
      if (changes.length === 0) return [];
      const args: (string | number)[] = [changeId, nowMs, firstVersion(nowMs)];
      for (const change of changes) {
        const deltas = [...change.deltas].filter(([, delta]) => delta !== 0);
        args.push(change.userId, userPrefix(change.userId), change.channel ?? '', deltas.length, ...deltas.flat());
      }
      const reply = (await call(
        'inbox-finish',
        [keys.buffer.pending, keys.intents, keys.versions, keys.touched, keys.running, ...changes.map((c) => keys.counts(c.userId))],
        args,
      )) as unknown[][];
      return reply.map((entry) => ({
        applied: Number(entry[0]) === 1,
        version: Number(entry[1]),
        running: Number(entry[2]),
        counts: keptFrom(entry, 3),
      }));
    },

    async readCounts(keys, userId): Promise<KeptCounts> {
      const reply = (await call('inbox-counts', [keys.versions, keys.running, keys.counts(userId)], [userId])) as unknown[];
      return { version: Number(reply[0]), running: Number(reply[1]), counts: keptFrom(reply, 2) };
    },

    async keepCounts(keys, userId, counts, expectVersion) {
      const reply = await call(
        'inbox-keep',
        [keys.versions, keys.running, keys.counts(userId)],
        [userId, expectVersion, ...flatten(counts)],
      );
      return Number(reply) === 1;
    },

    async readState(keys, userId) {
      const reply = (await call(
        'inbox-state',
        [keys.buffer.pending, keys.buffer.inflight, keys.buffer.meta, keys.intents, keys.versions, keys.running, keys.counts(userId)],
        [userId, userPrefix(userId)],
      )) as unknown[];
      return {
        version: Number(reply[0]),
        running: Number(reply[1]),
        inflightSeq: Number(reply[2]),
        doneSeq: Number(reply[3]),
        intents: Number(reply[4]),
        oldestIntentMs: Number(reply[5]),
        pending: pairs(reply[6] as unknown[]),
        inflight: pairs(reply[7] as unknown[]),
        counts: keptFrom(reply, 8),
      };
    },

    async staleUsers(keys, beforeMs) {
      // The intents hash holds only changes running now and crash leftovers: it stays short.
      const users = new Set<string>();
      for (const [field, at] of Object.entries(await client.hgetall(keys.intents))) {
        if (Number(at) <= beforeMs) users.add(field.slice(CHANGE_ID_LENGTH));
      }
      return [...users];
    },

    dropStaleIntents: async (keys, userId, beforeMs) =>
      Number(await call('inbox-drop-stale', [keys.intents, keys.running], [userId, beforeMs])),

    async repair(keys, userId, deltas, expectVersion, nowMs) {
      const reply = await call(
        'inbox-repair',
        [keys.buffer.pending, keys.versions, keys.counts(userId)],
        [userId, expectVersion, firstVersion(nowMs), userPrefix(userId), ...flatten(deltas)],
      );
      return Number(reply) === 1;
    },

    listTouched: (keys, maxMs, limit) => client.zrangebyscore(keys.touched, '-inf', maxMs, 'LIMIT', 0, limit),

    async untouch(keys, userIds, maxMs) {
      if (userIds.length > 0) await call('inbox-untouch', [keys.touched], [maxMs, ...userIds]);
    },

    async bufferedUsers(keys) {
      const [pending, inflight] = await Promise.all([client.hkeys(keys.buffer.pending), client.hkeys(keys.buffer.inflight)]);
      const users = new Set<string>();
      for (const field of [...pending, ...inflight]) {
        const parsed = parseBufferField(field);
        if (parsed) users.add(parsed.userId);
      }
      return [...users];
    },
  };
}
