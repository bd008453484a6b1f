import type { IngestQueue, QueueConsumer, QueueEntry } from '../ingest-queue.js';
import type { IngestJournal } from './ingest-journal.js';

// The embedded default's ingestion queue: a list per stream in this process, each entry kept in
// the journal (PGlite) from its append until it is acknowledged, so an acknowledged request
// survives a crash: the next start queues what the journal holds again. An entry given to a
// consumer stays that consumer's until acknowledged; once no consumer of that name is open (it
// was closed), any other may claim it at once: one process knows when its consumers are gone,
// so nothing waits for an idle time.

interface Stream {
  /** id -> payload, oldest first. */
  entries: Map<string, string>;
  /** id -> name of the consumer it was given to. */
  given: Map<string, string>;
  /** Consumers open now, by name. */
  open: Map<string, number>;
  /** Blocked reads to wake when an entry arrives. */
  waiting: Set<() => void>;
}

export async function openEmbeddedIngestQueue(journal: IngestJournal): Promise<IngestQueue & { close(): void }> {
  const streams = new Map<string, Stream>();
  const streamOf = (name: string) => {
    let s = streams.get(name);
    if (!s) streams.set(name, (s = { entries: new Map(), given: new Map(), open: new Map(), waiting: new Set() }));
    return s;
  };
  const wakeReaders = (s: Stream) => {
    for (const wake of [...s.waiting]) wake();
  };

  for (const entry of await journal.load()) streamOf(entry.stream).entries.set(entry.id, entry.payload);

  return {
    async enqueue(stream, payload, maxBacklog) {
      const s = streamOf(stream);
      if (s.entries.size >= maxBacklog) return null;
      const id = await journal.append(stream, payload);
      s.entries.set(id, payload);
      wakeReaders(s);
      return id;
    },

    async openConsumer(stream, _group, consumer): Promise<QueueConsumer> {
      const s = streamOf(stream);
      s.open.set(consumer, (s.open.get(consumer) ?? 0) + 1);
      let closed = false;
      let wakeOwn: (() => void) | undefined;
      const give = (count: number, eligible: (id: string) => boolean): QueueEntry[] => {
        const out: QueueEntry[] = [];
        for (const [id, payload] of s.entries) {
          if (out.length >= count) break;
          if (!eligible(id)) continue;
          s.given.set(id, consumer);
          out.push({ id, payload });
        }
        return out;
      };
      const fresh = (id: string) => !s.given.has(id);
      return {
        async read(count, blockMs) {
          const ready = give(count, fresh);
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
          return closed ? [] : give(count, fresh);
        },
        readOwnPending: async (count) => give(count, (id) => s.given.get(id) === consumer),
        async claimStale(_minIdleMs, count) {
          return give(count, (id) => {
            const holder = s.given.get(id);
            return holder !== undefined && holder !== consumer && !s.open.has(holder);
          });
        },
        async ack(ids) {
          await journal.remove(ids);
          for (const id of ids) {
            s.entries.delete(id);
            s.given.delete(id);
          }
        },
        async deadLetter(ids, deadStream) {
          const moving = ids.filter((id) => s.entries.has(id));
          await journal.move(moving, deadStream);
          const dead = streamOf(deadStream);
          for (const id of moving) {
            dead.entries.set(id, s.entries.get(id) as string);
            s.entries.delete(id);
            s.given.delete(id);
          }
          if (moving.length > 0) wakeReaders(dead);
          return moving.length;
        },
        async close() {
          if (closed) return;
          closed = true;
          const left = (s.open.get(consumer) ?? 1) - 1;
          if (left > 0) s.open.set(consumer, left);
          else s.open.delete(consumer);
          wakeOwn?.();
        },
      };
    },

    length: async (stream) => streamOf(stream).entries.size,

    close() {
      for (const s of streams.values()) wakeReaders(s);
    },
  };
}
