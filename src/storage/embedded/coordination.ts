import type { Coordination } from '../coordination.js';

// Locks and shared values in this process (one process: no other holder to wait for, but a
// lock still keeps two async passes of one process apart).

export function createEmbeddedCoordination(now: () => number): Coordination {
  const held = new Map<string, { value: string; until: number }>();
  const current = (key: string) => {
    const entry = held.get(key);
    if (entry && entry.until <= now()) held.delete(key);
    return held.get(key);
  };
  return {
    async tryLock(key, token, ttlMs) {
      if (current(key)) return false;
      held.set(key, { value: token, until: now() + ttlMs });
      return true;
    },
    async unlock(key, token) {
      if (current(key)?.value === token) held.delete(key);
    },
    async getOrSet(key, value, ttlSeconds) {
      const entry = current(key);
      if (entry) return entry.value;
      held.set(key, { value, until: now() + ttlSeconds * 1000 });
      return value;
    },
  };
}
