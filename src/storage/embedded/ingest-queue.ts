import type { IngestQueue, QueueConsumer, QueueEntry } from '../ingest-queue.js';
import type { IngestJournal } from './ingest-journal.js';

// The embedded default's ingestion queue: a list per stream in this process, each entry kept in
// the journal (PGlite) from its append until it is acknowledged, so an acknowledged request
// survives a crash: the next start queues what the journal holds again. Entries given to a
// consumer stay until it acknowledges them; a consumer that closes gives its unacknowledged
// entries back to the list, so nothing waits for a timeout to be claimed (one process knows
// when its consumers are gone).

interface Stream {
  /** id -> payload, oldest first. */
  entries: Map<string, string>;
  /** id -> consumer it was given to. */
  given: Map<string, string>;
  /** Blocked reads to wake when an entry arrives. */
  waiting: Set<() => void>;
}

export async function openEmbeddedIngestQueue(journal: IngestJournal): Promise<IngestQueue & { close(): void }> {
  const streams = new Map<string, Stream>();
  const streamOf = (name: string) => {
    let s = streams.get(name);
    if (!s) streams.set(name, (s = { entries: new Map(), given: new Map(), waiting: new Set() }));
    return s;
  };

  for (const entry of await journal.load()) streamOf(entry.stream).entries.set(entry.id, entry.payload);

  return {
    async enqueue(stream, payload, maxBacklog) {
      const s = streamOf(stream);
      if (s.entries.size >= maxBacklog) return null;
      const id = await journal.append(stream, payload);
      s.entries.set(id, payload);
      for (const wake of [...s.waiting]) wake();
      return id;
    },

    async openConsumer(stream, _group, consumer): Promise<QueueConsumer> {
      const s = streamOf(stream);
      let closed = false;
      let wakeOwn: (() => void) | undefined;
      const take = (count: number): QueueEntry[] => {
        const out: QueueEntry[] = [];
        for (const [id, payload] of s.entries) {
          if (out.length >= count) break;
          if (s.given.has(id)) continue;
          s.given.set(id, consumer);
          out.push({ id, payload });
        }
        return out;
      };
      return {
        async read(count, blockMs) {
          const ready = take(count);
          if (ready.length > 0 || blockMs <= 0 || closed) return ready;
          await new Promise<void>((resolve) => {
            const done = () => {
              clearTimeout(timer);
              s.waiting.delete(done);
              wakeOwn = undefined;
              resolve();
            };
            const timer = setTimeout(done, blockMs);
            s.waiting.add(done);
            wakeOwn = done;
          });
          return closed ? [] : take(count);
        },
        async readOwnPending(count) {
          const out: QueueEntry[] = [];
          for (const [id, holder] of s.given) {
            if (out.length >= count) break;
            const payload = s.entries.get(id);
            if (holder === consumer && payload !== undefined) out.push({ id, payload });
          }
          return out;
        },
        // Consumers of this process give their entries back when they close: none is left stale.
        claimStale: async () => [],
        async ack(ids) {
          await journal.remove(ids);
          for (const id of ids) {
            s.entries.delete(id);
            s.given.delete(id);
          }
        },
        async close() {
          closed = true;
          for (const [id, holder] of [...s.given]) if (holder === consumer) s.given.delete(id);
          wakeOwn?.();
        },
      };
    },

    length: async (stream) => streamOf(stream).entries.size,

    close() {
      for (const s of streams.values()) for (const wake of [...s.waiting]) wake();
    },
  };
}
