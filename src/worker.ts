import type { Context } from './context.js';
import { analyticsTargets } from './counters/analytics-counters.js';
import { type Flusher, startFlusher } from './counters/flusher.js';
import { startCompactor } from './events/compactor.js';
import { EVENT_FILE_GRACE_MS } from './events/open-event-store.js';
import { startExpiry } from './inbox/expiry.js';
import { createInbox } from './inbox/inbox.js';
import { startReconciler } from './inbox/reconcile.js';
import { createUnreadCounter } from './inbox/unread-counter.js';
import { inboxTargets } from './inbox/unread-flush.js';
import type { Metrics } from './ops/metrics.js';
import { createEventRows } from './process/event-rows.js';
import { createEventSink } from './process/event-sink.js';
import { type Processor, startProcessor } from './process/processor.js';
import { rollupTargets } from './process/rollup-targets.js';

// The background half of Tally: the stream processor (its sink: the columnar event store), the
// write-behind flusher, the inbox reconciler and the event compactor. `tally serve`
// runs it beside the HTTP API; `tally worker` runs it alone (scale collectors and workers apart).

const INBOX_RECONCILE_INTERVAL_MS = 5_000;
const EVENT_COMPACT_INTERVAL_MS = 10_000;
const INBOX_EXPIRY_INTERVAL_MS = 1_000;

export interface Worker {
  processor: Processor;
  flusher: Flusher;
  stop(): Promise<void>;
}

export function startWorker(ctx: Context, metrics?: Metrics): Worker {
  const processor = startProcessor(ctx, {
    shards: ctx.config.streamShards,
    sinks: [createEventSink(ctx.events, createEventRows({ sessions: ctx.realtime.sessions }))],
    claimIdleMs: ctx.config.claimIdleMs,
    deadLetterAttempts: ctx.config.deadLetterAttempts,
    onProcessed: (messages, applied) => {
      metrics?.processed.inc(messages);
      metrics?.duplicates.inc(messages - applied);
    },
    onDeadLettered: (entries) => metrics?.deadLettered.inc(entries),
  });
  const flusher = startFlusher(ctx, {
    intervalMs: ctx.config.flushIntervalMs,
    providers: [analyticsTargets(ctx), rollupTargets(ctx, ctx.unknownNames), inboxTargets(ctx)],
  });
  // Recently changed users' unread counts against their rows; in embedded mode the buffers died
  // with the last process, so the first run checks every user.
  const counter = createUnreadCounter(ctx);
  const reconciler = startReconciler(
    { ...ctx, counter },
    { intervalMs: INBOX_RECONCILE_INTERVAL_MS, allFirst: ctx.config.mode === 'embedded' },
  );
  // Every worker runs it; the one holding the lock compacts (src/events/compactor.ts).
  const compactor = startCompactor(
    { store: ctx.events, coordination: ctx.realtime.coordination, log: ctx.log },
    {
      intervalMs: EVENT_COMPACT_INTERVAL_MS,
      graceMs: EVENT_FILE_GRACE_MS,
      lockKey: ctx.keys.lock('event-compactor'),
      retentionDays: async (siteId) => (await ctx.sites.settings(siteId))?.retentionDays ?? null,
    },
  );
  const expiry = startExpiry({ inbox: createInbox({ db: ctx.db, counter }), log: ctx.log }, { intervalMs: INBOX_EXPIRY_INTERVAL_MS });
  return {
    processor,
    flusher,
    async stop() {
      // The other loops stop meanwhile: each only ends its wait or finishes its step.
      const others = Promise.allSettled([reconciler.stop(), compactor.stop(), expiry.stop()]);
      try {
        // The embedded queue lives in this process: process all of it before the final flush.
        await processor.stop({ drain: ctx.config.mode === 'embedded' });
      } finally {
        // Whatever the processor counted reaches PostgreSQL, even when its drain failed.
        await flusher.stop();
      }
      for (const stopped of await others) if (stopped.status === 'rejected') throw stopped.reason;
    },
  };
}
