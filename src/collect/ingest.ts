import type { Config } from '../config.js';
import { TallyError } from '../errors.js';
import type { Keys } from '../storage/keys.js';
import type { Realtime } from '../storage/realtime.js';
import type { CollectedMessage } from './message.js';

/** One stream entry: accepted messages of one site, from one or more requests. */
export interface StreamPayload {
  s: string;
  m: CollectedMessage[];
  /**
   * Replayed from the dead letters: earlier attempts may have counted its messages without
   * their reaching the sinks, so the processor hands the sinks all of them, as on a redelivery.
   */
  r?: true;
}

export type Ingest = (siteId: string, messages: CollectedMessage[]) => Promise<void>;

/**
 * An entry grows by whole requests up to this many characters of JSON, so one append (and one
 * processor step) stays short. A bigger request (a 500 KB batch) gets an entry of its own.
 */
export const MAX_ENTRY_BYTES = 64 * 1024;
/**
 * And up to this many messages: the processor reads entries a few hundred at a time, so this
 * bounds the messages one of its reads (one atomic Redis step) can carry when it catches up.
 */
export const MAX_ENTRY_MESSAGES = 50;

interface Waiter {
  resolve: () => void;
  reject: (err: unknown) => void;
  count: number;
}

/** Requests of one site waiting for the same append. */
interface OpenEntry {
  siteId: string;
  /** Each request's messages as JSON array items, without the brackets. */
  parts: string[];
  bytes: number;
  messages: number;
  waiters: Waiter[];
}

/**
 * Appends requests' messages to a stream shard (round robin). Requests of a site that arrive in
 * the same turn of the event loop share one entry: one append instead of one per request, and
 * fewer entries for the processor to read and acknowledge. A request is never split across
 * entries, so it is accepted or refused whole. Each resolves once the stream holds its entry:
 * that is when the collector may answer "accepted".
 */
export function createIngest(
  deps: { realtime: Pick<Realtime, 'queue'>; keys: Keys; config: Config },
  onAccepted?: (n: number) => void,
): Ingest {
  let next = 0;
  let open = new Map<string, OpenEntry>();
  let scheduled = false;

  async function append(entry: OpenEntry): Promise<void> {
    const shard = next;
    next = (next + 1) % deps.config.streamShards;
    const payload = `{"s":${JSON.stringify(entry.siteId)},"m":[${entry.parts.join(',')}]}`;
    try {
      const id = await deps.realtime.queue.enqueue(deps.keys.stream(shard), payload, deps.config.streamMaxBacklog);
      if (id === null) throw new TallyError('overloaded', 'The ingestion backlog is full; retry later.', undefined, 1);
    } catch (err) {
      for (const w of entry.waiters) w.reject(err);
      return;
    }
    for (const w of entry.waiters) {
      onAccepted?.(w.count);
      w.resolve();
    }
  }

  function flush(): void {
    scheduled = false;
    const entries = open;
    open = new Map();
    for (const entry of entries.values()) void append(entry);
  }

  return (siteId, messages) => {
    if (messages.length === 0) return Promise.resolve();
    const json = JSON.stringify(messages);
    const part = json.slice(1, -1);
    return new Promise<void>((resolve, reject) => {
      let entry = open.get(siteId);
      if (entry && (entry.bytes + part.length > MAX_ENTRY_BYTES || entry.messages + messages.length > MAX_ENTRY_MESSAGES)) {
        void append(entry);
        entry = undefined;
      }
      if (!entry) {
        entry = { siteId, parts: [], bytes: 0, messages: 0, waiters: [] };
        open.set(siteId, entry);
      }
      entry.parts.push(part);
      entry.bytes += part.length + 1;
      entry.messages += messages.length;
      entry.waiters.push({ resolve, reject, count: messages.length });
      if (!scheduled) {
        scheduled = true;
        // After this poll phase: every request read from the sockets in it joins the entry.
        setImmediate(flush);
      }
    });
  };
}
