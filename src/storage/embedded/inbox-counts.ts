import type { InboxCounts, InboxState } from '../inbox-counts.js';
import type { InboxKeys } from '../keys.js';
import type { LiveChannel } from '../live-channel.js';
import type { EmbeddedBuffers } from './counter-buffers.js';

// The embedded default's inbox counts: per user, the version, the kept total, when it was last
// touched and the changes running now. A change is still begun and finished around its SQL
// statement, because the reconciler of this same process may run between the two awaits; what
// one process does not need is the shard-wide bookkeeping of Redis (intent fields, hashes).
// Deltas go to the shared buffers the flusher writes behind to PGlite.

interface UserCount {
  version: number;
  total: number | null;
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
    if (!user) users.set(userId, (user = { version: 0, total: null, touchedAt: null, running: new Map() }));
    return user;
  };
  const bump = (user: UserCount, nowMs: number) => (user.version = user.version === 0 ? firstVersion(nowMs) : user.version + 1);

  return {
    async begin(keys, changeId, userIds, nowMs) {
      for (const userId of userIds) {
        const user = userOf(keys, userId);
        user.running.set(changeId, nowMs);
        user.touchedAt = nowMs;
      }
    },

    async finish(keys, changeId, changes, nowMs) {
      return changes.map(({ userId, delta, channel, durable }) => {
        const user = userOf(keys, userId);
        const applied = user.running.delete(changeId);
        if (applied && delta !== 0) {
          buffers.add(keys.buffer, userId, delta);
          if (user.total !== null) user.total += delta;
          bump(user, nowMs);
          if (channel) void deps.live.publish(channel, String(user.version));
        }
        if (!applied) user.touchedAt = nowMs;
        const value = buffers.valueOf(keys.buffer, userId);
        if (user.total === null && durable && value.doneSeq <= durable.lastSeq) {
          user.total = durable.durable + value.pending + (value.inflightSeq > durable.lastSeq ? value.inflight : 0);
        }
        return { applied, version: user.version, ...value, total: user.total, running: user.running.size };
      });
    },

    async readState(keys, userId): Promise<InboxState> {
      const user = usersOf(keys).get(userId);
      const starts = [...(user?.running.values() ?? [])];
      return {
        version: user?.version ?? 0,
        ...buffers.valueOf(keys.buffer, userId),
        intents: starts.length,
        oldestIntentMs: starts.length > 0 ? Math.min(...starts) : 0,
        total: user?.total ?? null,
      };
    },

    async readTotal(keys, userId, durable) {
      const user = usersOf(keys).get(userId);
      const version = user?.version ?? 0;
      const running = user?.running.size ?? 0;
      if (user && user.total !== null) return { version, total: user.total, running };
      const value = buffers.valueOf(keys.buffer, userId);
      if (!durable || value.doneSeq > durable.lastSeq) return { version, total: null, running };
      const total = durable.durable + value.pending + (value.inflightSeq > durable.lastSeq ? value.inflight : 0);
      userOf(keys, userId).total = total;
      return { version, total, running };
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

    async repair(keys, userId, delta, expectVersion, nowMs) {
      const user = userOf(keys, userId);
      if (user.version !== expectVersion) return false;
      buffers.add(keys.buffer, userId, delta);
      user.total = null;
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

    bufferedUsers: async (keys) => buffers.names(keys.buffer),
  };
}
