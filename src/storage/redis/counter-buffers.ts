import type { CounterBuffers, TakenBatch } from '../counter-buffers.js';
import type { BufferKeys } from '../keys.js';
import type { CallScript, RedisClient } from './client.js';

// Counter buffers in Redis: a pending hash (field: durable name) and a pending list of packed
// deltas (JSON [names, deltas], a whole analytics step's worth each), renamed into flight by
// lua/take-batch.lua and dropped by lua/finish-batch.lua.

/** Fields read per HSCAN page when a batch is taken for flushing. */
const TAKE_PAGE = 2000;
/** Packed items read per LRANGE page (each holds up to a whole aggregate step's deltas). */
const TAKE_PACKED_PAGE = 8;

const takeKeys = (b: BufferKeys) => [b.pending, b.inflight, b.meta, b.pendingPacked, b.inflightPacked];

export function createRedisCounterBuffers(client: RedisClient, call: CallScript): CounterBuffers {
  return {
    async take(buffer, minSeq, maxPackedBytes): Promise<TakenBatch | null> {
      const reply = (await call('take-batch', takeKeys(buffer), [minSeq, maxPackedBytes ?? 0])) as [number, number] | null;
      if (!reply) return null;
      const [seq, more] = reply;
      // The in-flight hash and list are frozen: read them in pages, so Redis serves other
      // clients between them. SCAN may repeat a field (never with another value): the Map keeps
      // it once; packed items are distinct, so theirs are summed.
      const taken = new Map<string, number>();
      let cursor = '0';
      do {
        const [next, flat] = await client.hscan(buffer.inflight, cursor, 'COUNT', TAKE_PAGE);
        cursor = next;
        for (let i = 0; i < flat.length; i += 2) taken.set(flat[i] as string, Number(flat[i + 1]));
      } while (cursor !== '0');
      for (let start = 0; ; start += TAKE_PACKED_PAGE) {
        const items = await client.lrange(buffer.inflightPacked, start, start + TAKE_PACKED_PAGE - 1);
        for (const item of items) {
          const [names, deltas] = JSON.parse(item) as [string[], number[]];
          names.forEach((name, i) => taken.set(name, (taken.get(name) ?? 0) + (deltas[i] ?? 0)));
        }
        if (items.length < TAKE_PACKED_PAGE) break;
      }
      return { seq: Number(seq), fields: [...taken.keys()], deltas: [...taken.values()], more: Number(more) === 1 };
    },

    async finish(buffer, seq) {
      await call('finish-batch', takeKeys(buffer), [seq]);
    },
  };
}
