import type { StreamPayload } from '../collect/ingest.js';
import type { Keys } from '../storage/keys.js';
import type { Realtime, StreamEntry } from '../storage/realtime.js';

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
  realtime: Realtime;
  keys: Keys;
}

/** Every dead letter of the shard, oldest first. */
async function readShard(deps: Deps, shard: number): Promise<StreamEntry[]> {
  const dead = deps.keys.deadLetters(shard);
  await deps.realtime.ensureGroup(dead, GROUP);
  const reader = deps.realtime.openReader(dead, GROUP);
  try {
    // Entries new to the group become the operator's; then all of the operator's are read.
    const total = await deps.realtime.streamLength(dead);
    if (total === 0) return [];
    await reader.read(CONSUMER, total, 0);
    return await reader.readOwnPending(CONSUMER, total);
  } finally {
    await reader.close();
  }
}

export async function listDeadLetters(deps: Deps, shards: number): Promise<DeadLetter[]> {
  const letters: DeadLetter[] = [];
  for (let shard = 0; shard < shards; shard++) {
    for (const entry of await readShard(deps, shard)) {
      const payload = JSON.parse(entry.payload) as StreamPayload;
      letters.push({ shard, id: entry.id, siteId: payload.s, messageIds: payload.m.map((m) => m.messageId) });
    }
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
    for (const entry of await readShard(deps, shard)) {
      const payload: StreamPayload = { ...(JSON.parse(entry.payload) as StreamPayload), r: true };
      const id = await deps.realtime.enqueue(deps.keys.stream(shard), JSON.stringify(payload), maxBacklog);
      if (id === null) throw new Error(`stream shard ${shard} is full; ${replayed} dead letters were replayed, replay the rest once it has room.`);
      await deps.realtime.ackEntries(deps.keys.deadLetters(shard), GROUP, [entry.id]);
      replayed += 1;
    }
  }
  return replayed;
}
