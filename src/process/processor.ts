import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { setImmediate as setImmediatePromise } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { StreamPayload } from '../collect/ingest.js';
import type { CollectedMessage } from '../collect/message.js';
import { type StepResult, startLoop } from '../lifecycle/background-loop.js';
import type { QueueConsumer, QueueEntry } from '../storage/ingest-queue.js';
import type { Keys } from '../storage/keys.js';
import type { Realtime } from '../storage/realtime.js';
import { type Counted, createAggregator } from './aggregate.js';
import { createEnricher, createSaltSource } from './enrich.js';
import type { GeoLookup } from './geo.js';

// The data processor: one loop per stream shard reads entries through the consumer group,
// enriches each site's messages and counts them in one atomic step (deduplicated by
// messageId), hands them to the sinks (the columnar event store), then acknowledges. A crash
// before the ack means redelivery, which the dedupe keys make harmless. Entries a dead consumer
// left unacknowledged are claimed after `claimIdleMs`. A batch that fails every attempt moves to
// the shard's dead letters (see src/process/dead-letters.ts) instead of blocking the shard.

/**
 * Receives every processed batch, grouped by site, before it is acknowledged: the messages the
 * step counted (new ones), or every message of entries delivered again (a crash may have come
 * between the count and the sink, so the sink must dedupe those itself).
 */
export type BatchSink = (bySite: ReadonlyMap<string, Counted[]>, batch: SinkBatch) => Promise<void>;

export interface SinkBatch {
  /** Sites whose lists hold every message of entries delivered again (not only the new ones). */
  redelivered: ReadonlySet<string>;
  /**
   * performance.now() from which another processor may claim the batch's entries (they were
   * read at least half the claim idle time earlier): a write that completes later may race it.
   */
  claimableAt: number;
}

/** Ops in one atomic step at most (a few MB of script argument). */
const MAX_STEP_OPS = 20_000;
/**
 * Events per atomic step. A catching-up read brings thousands of events; one step for all of
 * them would block Redis for long and, past MAX_STEP_OPS, be built again in halves. Steps of
 * this size still sum most repeated counters (pages, products, buckets) of the batch.
 */
const STEP_EVENTS = 1000;

/** A stream entry for the log: the clients' IPs (context.ip) are never logged. */
function withoutAddresses(payload: string): unknown {
  try {
    const entry = JSON.parse(payload) as StreamPayload;
    return { ...entry, m: entry.m.map((m) => ({ ...m, context: { ...m.context, ip: undefined } })) };
  } catch {
    return 'an unreadable entry';
  }
}

export interface ProcessorOptions {
  shards: number;
  batchSize?: number;
  blockMs?: number;
  claimIdleMs?: number;
  sinks?: BatchSink[];
  /** Failed attempts after which a batch's entries move to the shard's dead letters. */
  deadLetterAttempts?: number;
  onProcessed?: (messages: number, applied: number) => void;
  onDeadLettered?: (entries: number) => void;
}

export interface Processor {
  /**
   * Stops reading (a blocking read ends at once, a batch being handled finishes); with drain,
   * then processes everything queued (the embedded queue dies with the process).
   */
  stop(options?: { drain?: boolean }): Promise<void>;
}

export function startProcessor(
  deps: { realtime: Pick<Realtime, 'kind' | 'queue' | 'analytics' | 'coordination'>; keys: Keys; log: Logger; geo: GeoLookup },
  options: ProcessorOptions,
): Processor {
  const { realtime, keys, log } = deps;
  const consumer = `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  const group = keys.streamGroup;
  const batchSize = options.batchSize ?? 200;
  const blockMs = options.blockMs ?? 1000;
  const claimIdleMs = options.claimIdleMs ?? 30_000;
  const buildBatch = createAggregator(keys);
  const enrich = createEnricher(
    createSaltSource((k, v, ttl) => realtime.coordination.getOrSet(k, v, ttl), keys.salt),
    deps.geo,
  );
  const deadLetterAttempts = options.deadLetterAttempts ?? 5;
  /** Failed attempts of entries this consumer is retrying (cleared when they succeed or move). */
  const attempts = new Map<string, number>();

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

  async function handle(reader: QueueConsumer, entries: QueueEntry[], redelivered: boolean, readAt: number): Promise<void> {
    const bySite = new Map<string, CollectedMessage[]>();
    const replayed = new Set<string>();
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
      if (payload.r) replayed.add(payload.s);
    }
    let messages = 0;
    let applied = 0;
    const counted = new Map<string, Counted[]>();
    const whole = new Set<string>();
    for (const [siteId, list] of bySite) {
      const { all, fresh } = await count(siteId, list);
      const again = redelivered || replayed.has(siteId);
      counted.set(siteId, again ? all : fresh);
      if (again) whole.add(siteId);
      messages += list.length;
      applied += fresh.length;
    }
    const batch: SinkBatch = { redelivered: whole, claimableAt: readAt + claimIdleMs / 2 };
    for (const sink of options.sinks ?? []) await sink(counted, batch);
    await reader.ack(entries.map((e) => e.id));
    options.onProcessed?.(messages, applied);
  }

  /**
   * Handles a batch; when it failed `deadLetterAttempts` times (the same entries delivered to
   * this consumer again), moves its entries to the shard's dead letters so the shard goes on.
   */
  async function handleOrDeadLetter(
    shard: number,
    reader: QueueConsumer,
    entries: QueueEntry[],
    redelivered: boolean,
    readAt: number,
  ): Promise<void> {
    try {
      await handle(reader, entries, redelivered, readAt);
    } catch (err) {
      let worst = 0;
      for (const entry of entries) {
        const n = (attempts.get(entry.id) ?? 0) + 1;
        attempts.set(entry.id, n);
        worst = Math.max(worst, n);
      }
      if (worst < deadLetterAttempts) throw err;
      const ids = entries.map((e) => e.id);
      const deadStream = keys.deadLetters(shard);
      await reader.deadLetter(ids, deadStream);
      for (const id of ids) attempts.delete(id);
      options.onDeadLettered?.(ids.length);
      // The CLI cannot reach an embedded server's dead letters while it runs: its log shows them.
      const payloads = realtime.kind === 'embedded' ? entries.map((e) => withoutAddresses(e.payload)) : undefined;
      log.error(
        { err, stream: keys.stream(shard), deadStream, ids, payloads, attempts: worst },
        'a stream batch failed every attempt; its entries moved to the dead letters (tally dead-letters)',
      );
      return;
    }
    for (const entry of entries) attempts.delete(entry.id);
  }

  /** One shard's loop: a batch per step, read with a blocking wait that a stop interrupts. */
  function shardLoop(shard: number) {
    const stream = keys.stream(shard);
    let reader: QueueConsumer | undefined;
    let lastClaim = Date.now();
    let retryOwn = false;

    /** Handles one batch, waiting up to blockMs for one; 'again' when there was one (more may wait). */
    async function next(blockMs: number, stopping?: AbortSignal): Promise<StepResult> {
      reader ??= await realtime.queue.openConsumer(stream, group, consumer);
      // Before any read: entries this step gets were delivered after it (their idle time starts later).
      const readAt = performance.now();
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
      if (entries.length === 0) {
        try {
          entries = await reader.read(batchSize, stopping?.aborted ? 0 : blockMs);
        } catch (err) {
          // stop() closed the reader under a blocking read (Redis drops its connection).
          if (stopping?.aborted) return undefined;
          throw err;
        }
      }
      if (entries.length === 0) return undefined;
      try {
        await handleOrDeadLetter(shard, reader, entries, redelivered, readAt);
      } catch (err) {
        retryOwn = true;
        throw err;
      }
      return 'again';
    }

    const loop = startLoop({
      name: `processor shard ${shard}`,
      log,
      intervalMs: 0,
      step: (signal) => next(blockMs, signal),
    });
    return {
      async stop() {
        const stopped = loop.stop();
        // Closing ends a blocking read at once; a reader the step opened meanwhile is closed after.
        await reader?.close();
        await stopped;
        await reader?.close();
        reader = undefined;
      },
      /**
       * Processes what is queued, and its own failed batch, without blocking, on a reader of its
       * own. A failing batch is retried at once and moves to the dead letters after its
       * attempts, so this ends.
       */
      async drain() {
        reader = await realtime.queue.openConsumer(stream, group, consumer);
        retryOwn = true;
        let failures = 0;
        try {
          for (;;) {
            try {
              if ((await next(0)) !== 'again') return;
              failures = 0;
            } catch (err) {
              if (++failures > deadLetterAttempts) throw err;
              log.warn({ err, shard }, 'processing failed while draining; retrying');
            }
          }
        } finally {
          await reader?.close();
          reader = undefined;
        }
      },
    };
  }

  const shards = Array.from({ length: options.shards }, (_, shard) => shardLoop(shard));

  return {
    async stop({ drain = false } = {}) {
      await Promise.all(shards.map((s) => s.stop()));
      if (drain) await Promise.all(shards.map((s) => s.drain()));
    },
  };
}
