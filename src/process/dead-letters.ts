import type { StreamPayload } from '../collect/ingest.js';
import type { QueueEntry } from '../storage/ingest-queue.js';
import type { Keys } from '../storage/keys.js';
import type { Realtime } from '../storage/realtime.js';

// Dead letters: stream entries whose batch failed every attempt, moved by the processor to a
// stream beside their shard (same hash slot). An operator lists them, fixes the cause (a sink's
// bug, a bad deploy) and replays them: each goes back into its live stream, then leaves the dead
// letters. The dead-letter stream's own consumer group marks what a listing has read; an entry
// stays there until a replay acknowledges and deletes it.

const GROUP = 'dead-letters';
const CONSUMER = 'operator';

export interface DeadLetter {
  shard: number;
  id: string;
  siteId: string;
  messageIds: string[];
}

interface Deps {
  realtime: Pick<Realtime, 'queue'>;
  keys: Keys;
}

/** Every dead letter of the shard, oldest first, with the operator's consumer to acknowledge them. */
async function withShard<T>(
  deps: Deps,
  shard: number,
  use: (letters: QueueEntry[], ack: (id: string) => Promise<void>) => Promise<T>,
): Promise<T> {
  const dead = deps.keys.deadLetters(shard);
  const reader = await deps.realtime.queue.openConsumer(dead, GROUP, CONSUMER);
  try {
    // Entries new to the group become the operator's; then all of the operator's are read.
    const total = await deps.realtime.queue.length(dead);
    if (total > 0) await reader.read(total, 0);
    const letters = total > 0 ? await reader.readOwnPending(total) : [];
    return await use(letters, (id) => reader.ack([id]));
  } finally {
    await reader.close();
  }
}

export async function listDeadLetters(deps: Deps, shards: number): Promise<DeadLetter[]> {
  const letters: DeadLetter[] = [];
  for (let shard = 0; shard < shards; shard++) {
    await withShard(deps, shard, async (entries) => {
      for (const entry of entries) {
        const payload = JSON.parse(entry.payload) as StreamPayload;
        letters.push({ shard, id: entry.id, siteId: payload.s, messageIds: payload.m.map((m) => m.messageId) });
      }
    });
  }
  return letters;
}

/**
 * Puts every dead letter back into its live stream, marked as replayed (see StreamPayload.r),
 * then deletes it; returns how many. A stop between the two leaves it in both: replayed again,
 * its messages are counted once all the same (deduplicated by messageId).
 */
export async function replayDeadLetters(deps: Deps, shards: number, maxBacklog: number): Promise<number> {
  let replayed = 0;
  for (let shard = 0; shard < shards; shard++) {
    await withShard(deps, shard, async (entries, ack) => {
      for (const entry of entries) {
        const payload: StreamPayload = { ...(JSON.parse(entry.payload) as StreamPayload), r: true };
        const id = await deps.realtime.queue.enqueue(deps.keys.stream(shard), JSON.stringify(payload), maxBacklog);
        if (id === null)
          throw new Error(`stream shard ${shard} is full; ${replayed} dead letters were replayed, replay the rest once it has room.`);
        await ack(entry.id);
        replayed += 1;
      }
    });
  }
  return replayed;
}
