import type { AnalyticsRealtime } from './analytics-realtime.js';
import type { Coordination } from './coordination.js';
import type { CounterBuffers } from './counter-buffers.js';
import type { InboxCounts } from './inbox-counts.js';
import type { IngestQueue } from './ingest-queue.js';
import type { LiveChannel } from './live-channel.js';
import type { Sessions } from './sessions.js';

// The real-time layer, as the narrow interfaces Tally's parts use, each named by what it does
// and each with its own contract suite (test/realtime-*.test.ts). Two implementations of each:
// Redis (src/storage/redis/) in production, plain single-process ones (src/storage/embedded/)
// for the embedded default. A randomized differential test holds every pair together.

export interface Realtime {
  readonly kind: 'redis' | 'embedded';
  readonly queue: IngestQueue;
  readonly buffers: CounterBuffers;
  readonly analytics: AnalyticsRealtime;
  readonly inbox: InboxCounts;
  readonly live: LiveChannel;
  readonly coordination: Coordination;
  readonly sessions: Sessions;
  ping(): Promise<void>;
  close(): Promise<void>;
}
