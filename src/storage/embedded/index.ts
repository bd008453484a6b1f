import type { Keys } from '../keys.js';
import type { Realtime } from '../realtime.js';
import { createEmbeddedAnalytics } from './analytics-realtime.js';
import { createEmbeddedCoordination } from './coordination.js';
import { EmbeddedBuffers } from './counter-buffers.js';
import { createEmbeddedInboxCounts } from './inbox-counts.js';
import { createEmbeddedIngestQueue } from './ingest-queue.js';
import { createEmbeddedLiveChannel } from './live-channel.js';

/**
 * The embedded default's real-time layer: plain single-process implementations. It starts
 * empty; PGlite's durable counters are reloaded into it at start (src/context.ts).
 */
export function createEmbeddedRealtime(keys: Keys, now: () => number = Date.now): Realtime {
  const buffers = new EmbeddedBuffers();
  const live = createEmbeddedLiveChannel();
  const queue = createEmbeddedIngestQueue();
  const analytics = createEmbeddedAnalytics({ keys, buffers, now });
  return {
    kind: 'embedded',
    queue,
    buffers,
    analytics,
    inbox: createEmbeddedInboxCounts({ buffers, live }),
    live,
    coordination: createEmbeddedCoordination(now),
    async ping() {},
    async close() {
      queue.close();
      analytics.close();
      live.close();
    },
  };
}
