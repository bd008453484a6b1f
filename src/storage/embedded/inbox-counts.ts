import { bufferField, parseBufferField, userPrefix } from '../inbox-count-names.js';
import type { InboxCounts, InboxState } from '../inbox-counts.js';
import type { InboxKeys } from '../keys.js';
import type { LiveChannel } from '../live-channel.js';
import type { EmbeddedBuffers } from './counter-buffers.js';

// The embedded default's inbox counts: per user, the version, the kept counts, when it was last
// touched and the changes running now. A change is still begun and finished around its SQL
// statement, because the reconciler of this same process may run between the two awaits; what
// one process does not need is the shard-wide bookkeeping of Redis (intent fields, hashes).
// Deltas go to the shared buffers the flusher writes behind to PGlite, under the same field
// names as in Redis.

interface UserCount {
  version: number;
  counts: Map<string, number> | null;
  /** Last change (ms), until the reconciler checked it. */
  touchedAt: number | null;
  /** Changes begun and not finished: change id -> start (ms). */
  running: Map<string, number>;
}

/** A user's first version: now in microseconds (as the Redis scripts). */
const firstVersion = (nowMs: number) => Math.floor(nowMs) * 1000;

export function createEmbeddedInboxCounts(deps: { buffers: EmbeddedBuffers; live: LiveChannel }): InboxCounts {
  const { buffers } = deps;
  const shards = new Map<string, Map<string, UserCount>>();
  const usersOf = (keys: InboxKeys) => {
    let users = shards.get(keys.buffer.name);
    if (!users) shards.set(keys.buffer.name, (users = new Map()));
    return users;
  };
  const userOf = (keys: InboxKeys, userId: string) => {
    const users = usersOf(keys);
    let user = users.get(userId);
    if (!user) users.set(userId, (user = { version: 0, counts: null, touchedAt: null, running: new Map() }));
    return user;
  };
  const bump = (user: UserCount, nowMs: number) => (user.version = user.version === 0 ? firstVersion(nowMs) : user.version + 1);
  // Zeros left out, as Redis answers them: a missing name is 0.
  const copy = (counts: Map<string, number> | null) => (counts ? new Map([...counts].filter(([, value]) => value !== 0)) : null);

  /** The user's deltas in the buffer, pending and in flight, by count name. */
  function buffered(keys: InboxKeys, userId: string) {
    const prefix = userPrefix(userId);
    const pending = new Map<string, number>();
    const inflight = new Map<string, number>();
    for (const field of buffers.names(keys.buffer)) {
      if (!field.startsWith(prefix)) continue;
      const value = buffers.valueOf(keys.buffer, field);
      const name = field.slice(prefix.length);
      if (value.pending !== 0) pending.set(name, value.pending);
      if (value.inflight !== 0) inflight.set(name, value.inflight);
    }
    return { pending, inflight };
  }

  return {
    async begin(keys, changeId, userIds, nowMs) {
      for (const userId of userIds) {
        const user = userOf(keys, userId);
        user.running.set(changeId, nowMs);
        user.touchedAt = nowMs;
      }
    },

    async finish(keys, changeId, changes, nowMs) {
      return changes.map(({ userId, deltas, channel }) => {
        const user = userOf(keys, userId);
        const applied = user.running.delete(changeId);
        const moved = [...deltas].filter(([, delta]) => delta !== 0);
        if (applied && moved.length > 0) {
          for (const [name, delta] of moved) {
            buffers.add(keys.buffer, bufferField(userId, name), delta);
            if (user.counts) user.counts.set(name, (user.counts.get(name) ?? 0) + delta);
          }
          bump(user, nowMs);
          if (channel) void deps.live.publish(channel, String(user.version));
        }
        if (!applied) user.touchedAt = nowMs;
        return { applied, version: user.version, running: user.running.size, counts: copy(user.counts) };
      });
    },

    async readCounts(keys, userId) {
      const user = usersOf(keys).get(userId);
      return { version: user?.version ?? 0, running: user?.running.size ?? 0, counts: copy(user?.counts ?? null) };
    },

    async keepCounts(keys, userId, counts, expectVersion) {
      const user = userOf(keys, userId);
      if (user.counts || user.version !== expectVersion || user.running.size > 0) return false;
      user.counts = new Map(counts);
      return true;
    },

    async readState(keys, userId): Promise<InboxState> {
      const user = usersOf(keys).get(userId);
      const starts = [...(user?.running.values() ?? [])];
      const { inflightSeq, doneSeq } = buffers.valueOf(keys.buffer, '');
      return {
        version: user?.version ?? 0,
        running: starts.length,
        counts: copy(user?.counts ?? null),
        intents: starts.length,
        oldestIntentMs: starts.length > 0 ? Math.min(...starts) : 0,
        ...buffered(keys, userId),
        inflightSeq,
        doneSeq,
      };
    },

    async staleUsers(keys, beforeMs) {
      const out: string[] = [];
      for (const [userId, user] of usersOf(keys)) if ([...user.running.values()].some((at) => at <= beforeMs)) out.push(userId);
      return out;
    },

    async dropStaleIntents(keys, userId, beforeMs) {
      const running = usersOf(keys).get(userId)?.running;
      let dropped = 0;
      for (const [changeId, at] of running ?? []) {
        if (at <= beforeMs) {
          running?.delete(changeId);
          dropped += 1;
        }
      }
      return dropped;
    },

    async repair(keys, userId, deltas, expectVersion, nowMs) {
      const user = userOf(keys, userId);
      if (user.version !== expectVersion) return false;
      for (const [name, delta] of deltas) buffers.add(keys.buffer, bufferField(userId, name), delta);
      user.counts = null;
      bump(user, nowMs);
      return true;
    },

    async listTouched(keys, maxMs, limit) {
      return (
        [...usersOf(keys)]
          .filter(([, user]) => user.touchedAt !== null && user.touchedAt <= maxMs)
          // Ties in member byte order, as a sorted set has them.
          .sort((a, b) => (a[1].touchedAt as number) - (b[1].touchedAt as number) || Buffer.compare(Buffer.from(a[0]), Buffer.from(b[0])))
          .slice(0, limit)
          .map(([userId]) => userId)
      );
    },

    async untouch(keys, userIds, maxMs) {
      const users = usersOf(keys);
      for (const userId of userIds) {
        const user = users.get(userId);
        if (user && user.touchedAt !== null && user.touchedAt <= maxMs) user.touchedAt = null;
      }
    },

    async bufferedUsers(keys) {
      const users = new Set<string>();
      for (const field of buffers.names(keys.buffer)) {
        const parsed = parseBufferField(field);
        if (parsed) users.add(parsed.userId);
      }
      return [...users];
    },
  };
}
