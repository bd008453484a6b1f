import type { IngestQueue, QueueConsumer, QueueEntry } from '../ingest-queue.js';
import { type CallScript, duplicate, type RedisClient } from './client.js';

// The ingestion queue on Redis Streams: one stream per shard, read through a consumer group;
// appends refuse past the backlog bound (lua/enqueue.lua); acknowledged entries are deleted
// (lua/ack-entries.lua), so the stream's length is the backlog.

function entriesOf(reply: unknown): QueueEntry[] {
  // XREADGROUP / XAUTOCLAIM entry list: [[id, [field, value, ...]], ...]; deleted entries have null fields.
  const out: QueueEntry[] = [];
  for (const item of (reply ?? []) as [string, string[] | null][]) {
    const fields = item[1];
    if (!fields) continue;
    const at = fields.indexOf('p');
    if (at >= 0) out.push({ id: item[0], payload: fields[at + 1] ?? '' });
  }
  return out;
}

function firstStream(reply: unknown): QueueEntry[] {
  const streams = reply as [string, unknown][] | null;
  return streams?.[0] ? entriesOf(streams[0][1]) : [];
}

export function createRedisIngestQueue(client: RedisClient, call: CallScript): IngestQueue {
  return {
    async enqueue(stream, payload, maxBacklog) {
      const id = await call('enqueue', [stream], [maxBacklog, payload]);
      return typeof id === 'string' ? id : null;
    },

    async openConsumer(stream, group, consumer): Promise<QueueConsumer> {
      try {
        await client.xgroup('CREATE', stream, group, '0', 'MKSTREAM');
      } catch (err) {
        if (!String((err as Error).message).includes('BUSYGROUP')) throw err;
      }
      // Blocking reads hold a connection: each consumer has its own.
      const conn = duplicate(client);
      return {
        async read(count, blockMs) {
          // BLOCK 0 would wait forever: a zero wait is a plain, non-blocking read.
          const reply =
            blockMs > 0
              ? await conn.xreadgroup('GROUP', group, consumer, 'COUNT', count, 'BLOCK', blockMs, 'STREAMS', stream, '>')
              : await conn.xreadgroup('GROUP', group, consumer, 'COUNT', count, 'STREAMS', stream, '>');
          return firstStream(reply);
        },
        async readOwnPending(count) {
          // ID 0 instead of '>': this consumer's delivered, unacknowledged entries.
          return firstStream(await conn.xreadgroup('GROUP', group, consumer, 'COUNT', count, 'STREAMS', stream, '0'));
        },
        async claimStale(minIdleMs, count) {
          const reply = (await client.xautoclaim(stream, group, consumer, minIdleMs, '0-0', 'COUNT', count)) as unknown[];
          return entriesOf(reply[1]);
        },
        async ack(ids) {
          if (ids.length > 0) await call('ack-entries', [stream], [group, ...ids]);
        },
        async deadLetter(ids, deadStream) {
          if (ids.length === 0) return 0;
          return Number(await call('dead-letter', [stream, deadStream], [group, ...ids]));
        },
        async close() {
          conn.disconnect();
        },
      };
    },

    length: (stream) => client.xlen(stream),
  };
}
