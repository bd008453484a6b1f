// What processes agree on through the real-time layer: short locks (one flusher per buffer at a
// time) and shared values (the visitor-hash salt of a day).

export interface Coordination {
  /** Takes the lock unless someone holds it; it expires after ttlMs. */
  tryLock(key: string, token: string, ttlMs: number): Promise<boolean>;
  /** Releases the lock if `token` still holds it. */
  unlock(key: string, token: string): Promise<void>;
  /** Sets key to value with a TTL unless it is set; returns the value it holds. */
  getOrSet(key: string, value: string, ttlSeconds: number): Promise<string>;
}
