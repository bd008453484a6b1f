import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { setImmediate as setImmediatePromise } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { StreamPayload } from '../collect/ingest.js';
import type { CollectedMessage } from '../collect/message.js';
import type { Keys } from '../storage/keys.js';
import type { QueueConsumer, QueueEntry } from '../storage/ingest-queue.js';
import type { Realtime } from '../storage/realtime.js';
import { type Counted, createAggregator } from './aggregate.js';
import { createEnricher, createSaltSource } from './enrich.js';

// The data processor: one loop per stream shard reads entries through the consumer group,
// enriches each site's messages and counts them in one atomic step (deduplicated by
// messageId), hands them to the sinks (raw events to PostgreSQL, …), then acknowledges. A crash
// before the ack means redelivery, which the dedupe keys make harmless. Entries a dead consumer
// left unacknowledged are claimed after `claimIdleMs`.

/**
 * Receives every processed batch, grouped by site, before it is acknowledged: the messages the
 * step counted (new ones), or every message of entries delivered again (a crash may have come
 * between the count and the sink, so the sink must dedupe those itself).
 */
export type BatchSink = (bySite: ReadonlyMap<string, Counted[]>) => Promise<void>;

/** Ops in one atomic step at most (a few MB of script argument). */
const MAX_STEP_OPS = 20_000;
/**
 * Events per atomic step. A catching-up read brings thousands of events; one step for all of
 * them would block Redis for long and, past MAX_STEP_OPS, be built again in halves. Steps of
 * this size still sum most repeated counters (pages, products, buckets) of the batch.
 */
const STEP_EVENTS = 1000;

export interface ProcessorOptions {
  shards: number;
  batchSize?: number;
  blockMs?: number;
  claimIdleMs?: number;
  sinks?: BatchSink[];
  onProcessed?: (messages: number, applied: number) => void;
}

export interface Processor {
  /** Stops reading; with drain, first processes everything queued (the embedded queue dies with the process). */
  stop(options?: { drain?: boolean }): Promise<void>;
}

export function startProcessor(
  deps: { realtime: Pick<Realtime, 'queue' | 'analytics' | 'coordination'>; keys: Keys; log: Logger },
  options: ProcessorOptions,
): Processor {
  const { realtime, keys, log } = deps;
  const consumer = `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  const group = keys.streamGroup;
  const batchSize = options.batchSize ?? 200;
  const blockMs = options.blockMs ?? 1000;
  const claimIdleMs = options.claimIdleMs ?? 30_000;
  const buildBatch = createAggregator(keys);
  const enrich = createEnricher(createSaltSource((k, v, ttl) => realtime.coordination.getOrSet(k, v, ttl), keys.salt));
  let stopping = false;
  let draining = false;

  /** Counts a site's messages; returns those that were new (duplicates dropped, then retried). */
  async function count(siteId: string, messages: readonly CollectedMessage[]): Promise<{ all: Counted[]; fresh: Counted[] }> {
    const unique = new Map<string, CollectedMessage>();
    for (const m of messages) if (!unique.has(m.messageId)) unique.set(m.messageId, m);
    const list = [...unique.values()];
    const enriched = await enrich(siteId, list);
    const all = list.map((message, i) => ({ message, enriched: enriched[i] as Counted['enriched'] }));
    const fresh: Counted[] = [];
    for (let i = 0; i < all.length; i += STEP_EVENTS) {
      // Let the collector's sockets have a turn between steps: building a step is CPU work, and
      // in one process (`serve`) a run of steps without a wait would hold every request back.
      await setImmediatePromise();
      fresh.push(...(await apply(siteId, all.slice(i, i + STEP_EVENTS))));
    }
    return { all, fresh };
  }

  /**
   * One atomic step for the items, retried without the duplicates it reports. Events spread
   * over many time buckets (a late backlog) aggregate poorly: a step past MAX_STEP_OPS is split
   * in halves, so no script call grows without bound.
   */
  async function apply(siteId: string, items: Counted[]): Promise<Counted[]> {
    let fresh = items;
    while (fresh.length > 0) {
      const batch = buildBatch(siteId, fresh, Date.now());
      if (batch.ops.length > MAX_STEP_OPS && fresh.length > 1) {
        const half = Math.ceil(fresh.length / 2);
        return [...(await apply(siteId, fresh.slice(0, half))), ...(await apply(siteId, fresh.slice(half)))];
      }
      const duplicates = await realtime.analytics.apply(batch);
      if (duplicates.length === 0) break;
      const dropped = new Set(duplicates);
      fresh = fresh.filter((_, i) => !dropped.has(i));
    }
    return fresh;
  }

  async function handle(reader: QueueConsumer, entries: QueueEntry[], redelivered: boolean): Promise<void> {
    const bySite = new Map<string, CollectedMessage[]>();
    for (const entry of entries) {
      let payload: StreamPayload;
      try {
        payload = JSON.parse(entry.payload) as StreamPayload;
      } catch {
        log.error({ id: entry.id }, 'unreadable stream entry dropped');
        continue;
      }
      const list = bySite.get(payload.s);
      if (list) list.push(...payload.m);
      else bySite.set(payload.s, [...payload.m]);
    }
    let messages = 0;
    let applied = 0;
    const counted = new Map<string, Counted[]>();
    for (const [siteId, list] of bySite) {
      const { all, fresh } = await count(siteId, list);
      counted.set(siteId, redelivered ? all : fresh);
      messages += list.length;
      applied += fresh.length;
    }
    for (const sink of options.sinks ?? []) await sink(counted);
    await reader.ack(entries.map((e) => e.id));
    options.onProcessed?.(messages, applied);
  }

  async function runShard(shard: number, reader: QueueConsumer): Promise<void> {
    let lastClaim = Date.now();
    let retryOwn = false;
    while (!stopping || draining) {
      try {
        let entries: QueueEntry[] = [];
        let redelivered = false;
        if (retryOwn) {
          // The last batch failed (Redis or PostgreSQL hiccup): it is still ours, retry it now.
          entries = await reader.readOwnPending(batchSize);
          redelivered = entries.length > 0;
          retryOwn = entries.length === batchSize; // more of ours may wait behind these
        }
        if (entries.length === 0 && Date.now() - lastClaim > claimIdleMs / 2) {
          lastClaim = Date.now();
          entries = await reader.claimStale(claimIdleMs, batchSize);
          redelivered = entries.length > 0;
        }
        if (entries.length === 0) entries = await reader.read(batchSize, stopping ? 0 : blockMs);
        if (entries.length > 0) await handle(reader, entries, redelivered);
        else if (stopping) return;
      } catch (err) {
        if (stopping && !draining) return;
        log.error({ err, shard }, 'processing failed; the entries stay pending and are retried');
        retryOwn = true;
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
    }
  }

  const readers: QueueConsumer[] = [];
  const loops: Promise<void>[] = [];
  const started = (async () => {
    for (let shard = 0; shard < options.shards; shard++) {
      const reader = await realtime.queue.openConsumer(keys.stream(shard), group, consumer);
      readers.push(reader);
      loops.push(runShard(shard, reader));
    }
  })().catch((err) => log.error({ err }, 'processor failed to start'));

  return {
    async stop({ drain = false } = {}) {
      await started;
      draining = drain;
      stopping = true;
      if (!drain) await Promise.all(readers.map((r) => r.close()));
      await Promise.all(loops);
      if (drain) await Promise.all(readers.map((r) => r.close()));
    },
  };
}
