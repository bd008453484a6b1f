import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { startLoop } from '../lifecycle/background-loop.js';
import type { Db } from '../storage/db.js';
import type { BufferKeys, Keys } from '../storage/keys.js';
import type { Realtime } from '../storage/realtime.js';
import { type DeltaSink, flushBuffers } from './flush.js';

// Runs flushBuffers over every target, every interval. Several flusher processes may run: a
// short Redis lock per buffer keeps them from doing the same work, and flush_state keeps a
// batch from being applied twice even if the lock expires mid-flush.

/** A buffer to flush, or several of one sink flushed together (one transaction, one statement). */
export type FlushTarget = { buffer: BufferKeys; sink: DeltaSink } | { buffers: readonly BufferKeys[]; sink: DeltaSink };

const buffersOf = (target: FlushTarget): readonly BufferKeys[] => ('buffers' in target ? target.buffers : [target.buffer]);

/** Lists buffers to flush (analytics: one per site; inbox: a site's shards together). */
export type TargetProvider = () => Promise<FlushTarget[]>;

/** Where a provider gets the sites from: the site repository, or a fixed list in tests. */
export interface SiteSource {
  list(): Promise<{ id: string }[]>;
  /** Changes whenever this process creates a site (see SiteRepository.generation). */
  readonly generation?: number;
}

/**
 * How soon a site created by another process (an HTTP process, `tally site create`) is flushed;
 * this process's own are flushed from the next pass on, by the repository's generation.
 */
const SITE_LIST_REFRESH_MS = 10_000;

/** A provider of each site's targets, over the site list read again when it may have changed. */
export function perSiteTargets(sites: SiteSource, targetsOf: (siteId: string) => FlushTarget[]): TargetProvider {
  let known: { at: number; generation: number | undefined; targets: FlushTarget[] } | undefined;
  return async () => {
    if (known && known.generation === sites.generation && Date.now() - known.at <= SITE_LIST_REFRESH_MS) return known.targets;
    const generation = sites.generation;
    let list: { id: string }[];
    try {
      list = await sites.list();
    } catch (err) {
      // PostgreSQL down: the known sites are still flushed, and each flush fails with the
      // outage's error, its batch kept in flight; with no list yet, the pass fails here.
      if (!known) throw err;
      return known.targets;
    }
    known = { at: Date.now(), generation, targets: list.flatMap((site) => targetsOf(site.id)) };
    return known.targets;
  };
}

export interface Flusher {
  /**
   * Flushes every buffer until nothing is pending; returns the number of batches applied.
   * Rejects when a buffer could not be flushed (its batch stays in flight for the next pass).
   */
  flushAll(): Promise<number>;
  /** Seconds since every buffer was last flushed successfully. */
  lagSeconds(): number;
  /** Stops the loop (a pass under way finishes) and runs a final flush. */
  stop(): Promise<void>;
}

/** What a flush pass did: batches applied, and whether a buffer still holds a backlog. */
interface Pass {
  batches: number;
  behind: boolean;
}

const LOCK_TTL_MS = 30_000;
const MAX_ROUNDS = 4;

export function startFlusher(
  deps: { db: Db; realtime: Pick<Realtime, 'buffers' | 'coordination'>; keys: Keys; log: Logger },
  options: { intervalMs: number; providers: TargetProvider[]; autoStart?: boolean; maxPackedBytes?: number },
): Flusher {
  const token = randomBytes(8).toString('hex');
  let lastSuccess = Date.now();
  let running: Promise<Pass> | null = null;

  /** Flushes one target a few rounds; `behind`: its last batch was cut by the size bound. */
  async function flushTarget(target: FlushTarget): Promise<Pass> {
    let buffers = buffersOf(target);
    const lock = deps.keys.lock(`flush:${buffers.map((b) => b.name).join('+')}`);
    if (!(await deps.realtime.coordination.tryLock(lock, token, LOCK_TTL_MS))) return { batches: 0, behind: false };
    try {
      let batches = 0;
      const cut = new Set<string>();
      // A leftover in-flight batch, then what is pending: a few rounds empty the buffers.
      for (let round = 0; round < MAX_ROUNDS && buffers.length > 0; round++) {
        const results = await flushBuffers(deps, buffers, target.sink, options.maxPackedBytes);
        batches += results.filter((r) => r?.applied).length;
        results.forEach((r, i) => {
          const name = (buffers[i] as BufferKeys).name;
          if (r?.more) cut.add(name);
          else if (r) cut.delete(name);
        });
        buffers = buffers.filter((_, i) => results[i] !== null);
      }
      return { batches, behind: cut.size > 0 };
    } finally {
      await deps.realtime.coordination.unlock(lock, token);
    }
  }

  /** Every target once; a target that failed fails the pass, after the others were flushed. */
  async function flushAllOnce(): Promise<Pass> {
    const started = Date.now();
    let batches = 0;
    let behind = false;
    const failed: { buffers: string[]; err: unknown }[] = [];
    for (const provider of options.providers) {
      for (const target of await provider()) {
        try {
          const pass = await flushTarget(target);
          batches += pass.batches;
          behind ||= pass.behind;
        } catch (err) {
          failed.push({ buffers: buffersOf(target).map((b) => b.name), err });
        }
      }
    }
    const first = failed[0];
    if (first) {
      // Their batches stay in flight and are retried whole by the next pass.
      const reason = first.err instanceof Error ? first.err.message : String(first.err);
      throw new Error(`flushing ${failed.length} target(s) failed, first ${first.buffers.join('+')}: ${reason}`, { cause: first.err });
    }
    // Everything buffered before this pass started is in PostgreSQL now, unless a buffer still
    // holds a backlog this pass left (its batches were cut by the size bound).
    if (!behind) lastSuccess = started;
    return { batches, behind };
  }

  /** One pass at a time in this process; a caller arriving meanwhile waits for the next one. */
  function pass(): Promise<Pass> {
    const previous = running ?? Promise.resolve();
    const next = previous.catch(() => undefined).then(flushAllOnce);
    running = next;
    return next.finally(() => {
      if (running === next) running = null;
    });
  }

  async function flushAll(): Promise<number> {
    let batches = 0;
    for (;;) {
      const done = await pass();
      batches += done.batches;
      if (!done.behind) return batches;
    }
  }

  // A pass that left a backlog is followed at once by the next; otherwise one per interval.
  const loop =
    options.autoStart === false
      ? undefined
      : startLoop({
          name: 'flusher',
          log: deps.log,
          intervalMs: options.intervalMs,
          delayFirst: true,
          step: async () => ((await pass()).behind ? 'again' : undefined),
        });

  return {
    flushAll,
    lagSeconds: () => (Date.now() - lastSuccess) / 1000,
    async stop() {
      await loop?.stop();
      await flushAll();
    },
  };
}
