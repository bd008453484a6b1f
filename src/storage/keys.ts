// Every Redis key Tally uses is built here. A key's {hash tag} names the unit that one atomic
// script touches, so every multi-key script stays in one Redis Cluster slot:
//   {s:<site>}     everything a site's analytics batch updates (one script per site per batch)
//   {q:<shard>}    one ingestion stream shard
//   {i:<site>:<n>} one shard of a site's notification counter buffer
// Caller-supplied ids are escaped with `part()`, so no id can forge another key or field.

export interface BufferKeys {
  /** Stable name of the buffer, recorded in PostgreSQL's flush_state with its last applied batch. */
  readonly name: string;
  /** Hash of pending deltas: field -> delta. */
  readonly pending: string;
  /** Hash of the batch being flushed (the renamed pending hash). */
  readonly inflight: string;
  /** Hash {seq, inflight, done}: batch sequence numbers. */
  readonly meta: string;
  /** List of packed deltas (JSON [names, deltas]), each a whole batch's worth: cheaper for Redis
   * than one HINCRBY per name. Taken and flushed together with the pending hash. */
  readonly pendingPacked: string;
  /** The packed deltas of the batch being flushed (the renamed pending list). */
  readonly inflightPacked: string;
}

/** One shard of a site's inbox counters (see src/inbox/unread-counter.ts). */
export interface InboxKeys {
  readonly buffer: BufferKeys;
  /** Hash changeId+userId -> start time (ms): changes between their SQL statement and their delta (src/storage/redis/inbox-counts.ts). */
  readonly intents: string;
  /** Hash userId -> version of the user's count (only grows). */
  readonly versions: string;
  /** Sorted set userId -> time of the last change: who the reconciler checks next. */
  readonly touched: string;
  /** Hash of a user's kept counts (count name -> durable + pending + in flight), moved by every delta. */
  counts(userId: string): string;
  /** Hash userId -> how many of the user's changes are begun and not finished (their intents). */
  readonly running: string;
}

/** Escapes the separators of key names and counter names out of a caller-supplied id. */
export function part(id: string): string {
  return id.replace(/[%:|{}]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0'));
}

export function unpart(encoded: string): string {
  return encoded.replace(/%([0-9A-F]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}

export type Keys = ReturnType<typeof createKeys>;

export function createKeys(prefix: string) {
  const site = (siteId: string) => `${prefix}:{s:${part(siteId)}}`;
  const buffer = (tag: string, name: string): BufferKeys => ({
    name,
    pending: `${tag}:pending`,
    inflight: `${tag}:inflight`,
    meta: `${tag}:flush`,
    pendingPacked: `${tag}:pending:packed`,
    inflightPacked: `${tag}:inflight:packed`,
  });
  return {
    prefix,
    streamGroup: 'processors',
    stream: (shard: number) => `${prefix}:{q:${shard}}:events`,
    /** Entries of a shard whose batch failed every attempt (same slot as the shard: moved by one script). */
    deadLetters: (shard: number) => `${prefix}:{q:${shard}}:dead`,
    /** Prefix shared by every key of a site's analytics (the hash tag included). */
    site,
    /** A site key from its suffix (suffixes are what durable counter names carry). */
    siteKey: (siteId: string, suffix: string) => `${site(siteId)}:${suffix}`,
    dedupe: (siteId: string, messageId: string) => `${site(siteId)}:seen:${part(messageId)}`,
    analyticsBuffer: (siteId: string) => buffer(site(siteId), `analytics:${siteId}`),
    /** A site's time-bucket rollup deltas (flushed to the rollups table). */
    rollupBuffer: (siteId: string) => buffer(`${site(siteId)}:roll`, `rollups:${siteId}`),
    /** A site's HyperLogLogs changed since their last copy to PostgreSQL (field: key suffix). */
    uniquesBuffer: (siteId: string) => buffer(`${site(siteId)}:uniq`, `uniques:${siteId}`),
    /** A visitor's sessions for the event store's rows (src/storage/sessions.ts). */
    sessionState: (siteId: string, visitor: string) => `${site(siteId)}:sess:${part(visitor)}`,
    /** The visitor-hash salt of one UTC day (shared by every processor). */
    salt: (day: string) => `${prefix}:salt:${day}`,
    inboxBuffer: (siteId: string, shard: number) => buffer(`${prefix}:{i:${part(siteId)}:${shard}}`, `inbox:${siteId}:${shard}`),
    /** Everything one inbox shard's scripts touch: the counter buffer and its bookkeeping. */
    inbox: (siteId: string, shard: number): InboxKeys => {
      const tag = `${prefix}:{i:${part(siteId)}:${shard}}`;
      return {
        buffer: buffer(tag, `inbox:${siteId}:${shard}`),
        intents: `${tag}:intents`,
        versions: `${tag}:versions`,
        touched: `${tag}:touched`,
        counts: (userId: string) => `${tag}:c:${part(userId)}`,
        running: `${tag}:running`,
      };
    },
    lock: (name: string) => `${prefix}:lock:${part(name)}`,
    channel: (name: string) => `${prefix}:ch:${name}`,
  };
}
