import { setImmediate as nextTurn } from 'node:timers/promises';
import type { Logger } from 'pino';

// Every background loop of Tally (the processor's shards, the flusher, the inbox reconciler,
// the event compactor) runs on this one helper, so they stop, back off and log alike. A stop
// ends the loop's waits (the interval, a back-off, through the signal a blocking read or sleep
// of the step) and waits only for a step that is writing to finish.

/** 'again': the step left work behind (a backlog), run the next one at once. */
export type StepResult = 'again' | undefined;

export interface LoopOptions {
  /** Names the loop in its log lines. */
  name: string;
  log: Logger;
  /** Wait after a step that left no backlog; 0 for a step that waits itself (a blocking read). */
  intervalMs: number;
  /** The first step runs after one interval instead of at once. */
  delayFirst?: boolean;
  /** After consecutive failures the wait is firstMs, doubled per failure, at most maxMs (never shorter than the interval). */
  backoff?: { firstMs: number; maxMs: number };
  /** Aborted by stop(): the step ends its waits on it and starts no new work. */
  step(signal: AbortSignal): Promise<StepResult>;
}

export interface BackgroundLoop {
  /** Aborts the step's signal and the loop's wait; resolves once a running step returned. */
  stop(): Promise<void>;
}

const DEFAULT_BACKOFF = { firstMs: 1000, maxMs: 15_000 };

export function startLoop(options: LoopOptions): BackgroundLoop {
  const { name, log, intervalMs } = options;
  const backoff = options.backoff ?? DEFAULT_BACKOFF;
  const stopping = new AbortController();
  const { signal } = stopping;

  /** Resolves after ms, or at once when stopped. */
  const wait = (ms: number) =>
    new Promise<void>((resolve) => {
      if (signal.aborted) return resolve();
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener('abort', done);
    });

  const finished = (async () => {
    if (options.delayFirst) await wait(intervalMs);
    let failures = 0;
    while (!signal.aborted) {
      let delay: number;
      try {
        const result = await options.step(signal);
        if (failures > 0) log.info({ loop: name, failures }, `${name} works again`);
        failures = 0;
        delay = result === 'again' ? 0 : intervalMs;
      } catch (err) {
        failures += 1;
        delay = Math.max(intervalMs, Math.min(backoff.firstMs * 2 ** (failures - 1), backoff.maxMs));
        // One line per failure; the stack only with the first of a run of them.
        const detail = failures === 1 ? err : err instanceof Error ? err.message : String(err);
        log.warn({ loop: name, failures, retryInMs: delay, err: detail }, `${name} failed; retrying`);
      }
      // A step without a wait still lets sockets and timers have their turn.
      if (delay > 0) await wait(delay);
      else await nextTurn();
    }
  })();

  return {
    async stop() {
      stopping.abort();
      await finished;
    },
  };
}
