// Concurrent requests' statements of one kind, run as ONE statement. Under load every request
// would cost its own PostgreSQL round trip: a socket write and a wake-up of a backend, which
// outweigh the work of a small statement. Batched, the requests
// that arrived while the previous batch ran cost one round trip together. A request never waits
// for a batch to fill: alone, it runs at once as its own single statement.

/** True for an error PostgreSQL (or PGlite) reported for the statement: it was rolled back, nothing of it committed. */
export function statementFailed(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const { code, severity } = err as { code?: unknown; severity?: unknown };
  return typeof severity === 'string' && typeof code === 'string' && code.length === 5;
}

/** SQLSTATEs of a statement PostgreSQL rolled back for a conflict with another: running it again may succeed. */
const RETRYABLE = new Set(['40P01', '40001']);
const RETRIES = 5;

/** Runs a statement again (up to RETRIES times) after PostgreSQL rolled it back for a deadlock. */
export async function retryDeadlocks<T>(statement: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await statement();
    } catch (err) {
      if (attempt > RETRIES || !statementFailed(err) || !RETRYABLE.has((err as { code: string }).code)) throw err;
    }
  }
}

export interface BatchOptions<I, O> {
  /** Runs several inputs as one statement; answers in input order. */
  many(inputs: readonly I[]): Promise<O[]>;
  /** Runs one input alone: a batch of one, and each input again after a batch's statement failed. */
  one(input: I): Promise<O>;
  /** Batches in flight at once (each holds a pool connection). */
  parallel: number;
  max: number;
}

interface Waiting<I, O> {
  input: I;
  resolve(value: O): void;
  reject(err: unknown): void;
}

export function createBatcher<I, O>(options: BatchOptions<I, O>): (input: I) => Promise<O> {
  const queue: Waiting<I, O>[] = [];
  let running = 0;
  let scheduled = false;

  async function execute(batch: Waiting<I, O>[]): Promise<void> {
    if (batch.length === 1) {
      const [only] = batch as [Waiting<I, O>];
      await options.one(only.input).then(only.resolve, only.reject);
      return;
    }
    let outputs: O[];
    try {
      outputs = await options.many(batch.map((w) => w.input));
    } catch (err) {
      // A statement PostgreSQL refused (a deadlock with another batch, one bad input) committed
      // nothing: each input runs alone. Any other failure (a lost connection) may have committed:
      // every request fails, as its single statement would have.
      if (!statementFailed(err)) {
        for (const w of batch) w.reject(err);
        return;
      }
      await Promise.all(batch.map((w) => options.one(w.input).then(w.resolve, w.reject)));
      return;
    }
    batch.forEach((w, i) => w.resolve(outputs[i] as O));
  }

  function drain(): void {
    scheduled = false;
    while (running < options.parallel && queue.length > 0) {
      const batch = queue.splice(0, options.max);
      running++;
      void execute(batch).finally(() => {
        running--;
        schedule();
      });
    }
  }

  // A microtask, not a timer (tests fake timers): the requests that arrive while a batch runs
  // form the next one.
  function schedule(): void {
    if (scheduled || running >= options.parallel || queue.length === 0) return;
    scheduled = true;
    queueMicrotask(drain);
  }

  return (input: I) =>
    new Promise<O>((resolve, reject) => {
      queue.push({ input, resolve, reject });
      schedule();
    });
}
