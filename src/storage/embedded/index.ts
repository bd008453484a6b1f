import type { Queryable } from '../db.js';
import type { Keys } from '../keys.js';
import type { Realtime } from '../realtime.js';
import { createEmbeddedAnalytics } from './analytics-realtime.js';
import { createEmbeddedCoordination } from './coordination.js';
import { EmbeddedBuffers } from './counter-buffers.js';
import { createEmbeddedInboxCounts } from './inbox-counts.js';
import { pgliteJournal } from './ingest-journal.js';
import { openEmbeddedIngestQueue } from './ingest-queue.js';
import { createEmbeddedLiveChannel } from './live-channel.js';
import { createEmbeddedSessions, type EmbeddedSessions } from './sessions.js';

/**
 * The embedded default's real-time layer: plain single-process implementations over a migrated
 * PGlite, which keeps the ingestion queue's entries. Counters and sessions start empty: PGlite's
 * durable counters and the event store's recent sessions are reloaded into them at start
 * (src/context.ts), which passes its own `sessions` in to reach them.
 */
export async function openEmbeddedRealtime(
  keys: Keys,
  db: Queryable,
  now: () => number = Date.now,
  sessions: EmbeddedSessions = createEmbeddedSessions(keys, now),
): Promise<Realtime> {
  const buffers = new EmbeddedBuffers();
  const live = createEmbeddedLiveChannel();
  const queue = await openEmbeddedIngestQueue(pgliteJournal(db));
  const analytics = createEmbeddedAnalytics({ keys, buffers, now });
  return {
    kind: 'embedded',
    queue,
    buffers,
    analytics,
    inbox: createEmbeddedInboxCounts({ buffers, live }),
    live,
    coordination: createEmbeddedCoordination(now),
    sessions,
    async ping() {},
    async close() {
      queue.close();
      analytics.close();
      live.close();
    },
  };
}
