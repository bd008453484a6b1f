import type { InboxCounts } from '../inbox-counts.js';
import type { InboxKeys } from '../keys.js';
import type { CallScript, RedisClient } from './client.js';

// The inbox count protocol in Redis, one script per step (lua/inbox-*.lua). An intent is a
// field of the shard's intents hash: the change id (CHANGE_ID_LENGTH characters) followed by
// the user id, valued with the change's start (ms); the scripts split it the same way.

/** Length of a change id: the scripts read the user id from character CHANGE_ID_LENGTH + 1 on. */
export const CHANGE_ID_LENGTH = 16;

const bufferKeys = (k: InboxKeys) => [k.buffer.pending, k.buffer.inflight, k.buffer.meta];
const allKeys = (k: InboxKeys) => [...bufferKeys(k), k.intents, k.versions, k.touched, k.totals, k.running];
// A user's first version: now in microseconds, so versions keep growing after a Redis data loss.
const firstVersion = (nowMs: number) => `${Math.floor(nowMs)}000`;

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
        args.push(change.userId, change.delta, change.channel ?? '');
        if (change.durable) args.push(change.durable.lastSeq, change.durable.durable);
        else args.push('', '');
      }
      const reply = (await call('inbox-finish', allKeys(keys), args)) as number[];
      return changes.map((_, i) => {
        const [applied, version, pending, inflight, inflightSeq, doneSeq, hasTotal, total, running] = reply.slice(
          i * 9,
          i * 9 + 9,
        ) as number[];
        return {
          applied: applied === 1,
          version: version ?? 0,
          pending: pending ?? 0,
          inflight: inflight ?? 0,
          inflightSeq: inflightSeq ?? 0,
          doneSeq: doneSeq ?? 0,
          total: hasTotal === 1 ? (total ?? 0) : null,
          running: running ?? 0,
        };
      });
    },

    async readState(keys, userId) {
      const reply = (await call('inbox-state', [...bufferKeys(keys), keys.intents, keys.versions, keys.totals], [userId])) as number[];
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

    async readTotal(keys, userId, durable) {
      const args = durable ? [userId, durable.lastSeq, durable.durable] : [userId];
      const reply = (await call('inbox-total', [...bufferKeys(keys), keys.versions, keys.totals, keys.running], args)) as number[];
      const [version, hasTotal, total, running] = reply;
      return { version: version ?? 0, total: hasTotal === 1 ? (total ?? 0) : null, running: running ?? 0 };
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

    async repair(keys, userId, delta, expectVersion, nowMs) {
      const reply = await call(
        'inbox-repair',
        [keys.buffer.pending, keys.versions, keys.totals],
        [userId, delta, expectVersion, firstVersion(nowMs)],
      );
      return Number(reply) === 1;
    },

    listTouched: (keys, maxMs, limit) => client.zrangebyscore(keys.touched, '-inf', maxMs, 'LIMIT', 0, limit),

    async untouch(keys, userIds, maxMs) {
      if (userIds.length > 0) await call('inbox-untouch', [keys.touched], [maxMs, ...userIds]);
    },

    async bufferedUsers(keys) {
      const [pending, inflight] = await Promise.all([client.hkeys(keys.buffer.pending), client.hkeys(keys.buffer.inflight)]);
      return [...new Set([...pending, ...inflight])];
    },
  };
}
