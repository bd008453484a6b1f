import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
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

const SITE_LIST_TTL_MS = 10_000;

/** A provider of each site's targets; the site list is re-read every few seconds. */
export function perSiteTargets(
  sites: { list(): Promise<{ id: string }[]> },
  targetsOf: (siteId: string) => FlushTarget[],
): TargetProvider {
  let cached: { at: number; targets: FlushTarget[] } | undefined;
  return async () => {
    if (!cached || Date.now() - cached.at > SITE_LIST_TTL_MS) {
      const list = await sites.list();
      cached = { at: Date.now(), targets: list.flatMap((site) => targetsOf(site.id)) };
    }
    return cached.targets;
  };
}

export interface Flusher {
  /** Flushes every buffer until nothing is pending; returns the number of batches applied. */
  flushAll(): Promise<number>;
  /** Seconds since every buffer was last flushed successfully. */
  lagSeconds(): number;
  /** Stops the timer and runs a final flush. */
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
  let timer: NodeJS.Timeout | undefined;

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

  async function flushAllOnce(): Promise<Pass> {
    const started = Date.now();
    let batches = 0;
    let failed = false;
    let behind = false;
    for (const provider of options.providers) {
      for (const target of await provider()) {
        try {
          const pass = await flushTarget(target);
          batches += pass.batches;
          behind ||= pass.behind;
        } catch (err) {
          failed = true;
          deps.log.warn({ err, buffers: buffersOf(target).map((b) => b.name) }, 'flush failed; the batch stays in flight and is retried');
        }
      }
    }
    // Everything buffered before this pass started is in PostgreSQL now, unless a batch failed
    // or a buffer still holds a backlog this pass left (its batches were cut by the size bound).
    if (!failed && !behind) lastSuccess = started;
    return { batches, behind: behind && !failed };
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
  const tick = () => {
    let behind = false;
    pass()
      .then((done) => void (behind = done.behind))
      .catch((err) => deps.log.warn({ err }, 'flush round failed'))
      .finally(() => {
        if (timer) timer = setTimeout(tick, behind ? 0 : options.intervalMs);
      });
  };
  if (options.autoStart !== false) timer = setTimeout(tick, options.intervalMs);

  return {
    flushAll,
    lagSeconds: () => (Date.now() - lastSuccess) / 1000,
    async stop() {
      clearTimeout(timer);
      timer = undefined;
      await flushAll();
    },
  };
}
