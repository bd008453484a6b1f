import type { Config } from '../config.js';
import { TallyError } from '../errors.js';
import type { Keys } from '../storage/keys.js';
import type { Realtime } from '../storage/realtime.js';
import type { CollectedMessage } from './message.js';

/** One stream entry: a site's accepted messages from one request. */
export interface StreamPayload {
  s: string;
  m: CollectedMessage[];
}

export type Ingest = (siteId: string, messages: CollectedMessage[]) => Promise<void>;

/**
 * Appends a request's messages, as one entry, to a stream shard (round robin). Resolves once
 * the stream holds them: that is when the collector may answer "accepted".
 */
export function createIngest(deps: { realtime: Realtime; keys: Keys; config: Config }, onAccepted?: (n: number) => void): Ingest {
  let next = 0;
  return async (siteId, messages) => {
    if (messages.length === 0) return;
    const shard = next;
    next = (next + 1) % deps.config.streamShards;
    const payload: StreamPayload = { s: siteId, m: messages };
    const id = await deps.realtime.enqueue(deps.keys.stream(shard), JSON.stringify(payload), deps.config.streamMaxBacklog);
    if (id === null) throw new TallyError('overloaded', 'The ingestion backlog is full; retry later.', undefined, 1);
    onAccepted?.(messages.length);
  };
}
