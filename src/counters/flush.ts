import type { TakenBatch } from '../storage/counter-buffers.js';
import type { Db, Queryable } from '../storage/db.js';
import type { BufferKeys } from '../storage/keys.js';
import type { Realtime } from '../storage/realtime.js';

// Write-behind of buffered counter deltas, exactly once:
//   1. take: the pending hash (and list of packed deltas) is renamed into flight under a sequence
//      number (atomic in Redis);
//   2. one PostgreSQL transaction advances flush_state.last_seq for the buffer and applies every
//      delta with one statement; if last_seq was already there, the batch was applied before
//      (a replay after a crash between commit and finish) and nothing is applied again; buffers
//      of one sink may be flushed together: one transaction, one statement for all of them;
//   3. finish: the in-flight hash and list are dropped.
// A crash before 3 leaves the batch in flight; the next take returns it and step 2 decides.

/**
 * Most bytes of packed deltas one batch takes. A flush that fell behind takes its backlog in
 * batches of this size instead of one batch that holds it all in this process's memory: the
 * backlog waits in Redis. Smaller batches cost PostgreSQL more work for the same backlog
 * (per-visitor rows coalesce less): the bound trades this process's memory against that work.
 */
export const MAX_PACKED_BYTES_PER_BATCH = 16 * 1024 * 1024;

/** Applies a batch's deltas inside the flush transaction: one statement for the whole batch. */
export type DeltaSink = (tx: Queryable, fields: readonly string[], deltas: readonly number[]) => Promise<void>;

export interface FlushResult {
  seq: number;
  fields: number;
  /** False when PostgreSQL had the batch already (a replay). */
  applied: boolean;
  /** Deltas were left pending: the batch reached its size bound. */
  more: boolean;
}

export async function lastAppliedSeq(db: Queryable, buffer: BufferKeys): Promise<number> {
  const result = await db.query<{ last_seq: number }>('SELECT last_seq FROM flush_state WHERE buffer = $1', [buffer.name]);
  return result.rows[0]?.last_seq ?? 0;
}

interface Taken {
  buffer: BufferKeys;
  batch: TakenBatch;
}

/** Applies the batches in one transaction; returns the names of the buffers whose batch was new. */
async function applyOnce(db: Db, taken: readonly Taken[], sink: DeltaSink): Promise<Set<string>> {
  return db.transaction(async (tx) => {
    // In the buffers' order: concurrent flushers of the same buffers lock their rows alike.
    const advanced = await tx.query<{ buffer: string }>(
      `INSERT INTO flush_state (buffer, last_seq) SELECT * FROM unnest($1::text[], $2::int8[])
       ON CONFLICT (buffer) DO UPDATE SET last_seq = excluded.last_seq, updated_at = now()
       WHERE flush_state.last_seq < excluded.last_seq
       RETURNING buffer`,
      [taken.map((t) => t.buffer.name), taken.map((t) => t.batch.seq)],
    );
    const applied = new Set(advanced.rows.map((row) => row.buffer));
    const sums = new Map<string, number>();
    for (const { buffer, batch } of taken) {
      if (!applied.has(buffer.name)) continue;
      batch.fields.forEach((field, i) => sums.set(field, (sums.get(field) ?? 0) + (batch.deltas[i] ?? 0)));
    }
    const fields: string[] = [];
    const deltas: number[] = [];
    for (const [field, delta] of sums) {
      if (delta !== 0) {
        fields.push(field);
        deltas.push(delta);
      }
    }
    if (fields.length > 0) await sink(tx, fields, deltas);
    return applied;
  });
}

/**
 * Flushes buffers of one sink together: each buffer's batch is taken (its packed deltas up to
 * maxPackedBytes), ONE transaction records them all and applies all their deltas with one sink
 * statement, then each is finished. Per buffer: its result, null when it had nothing to flush.
 */
export async function flushBuffers(
  deps: { db: Db; realtime: Pick<Realtime, 'buffers'> },
  buffers: readonly BufferKeys[],
  sink: DeltaSink,
  maxPackedBytes = MAX_PACKED_BYTES_PER_BATCH,
): Promise<(FlushResult | null)[]> {
  const last = await deps.db.query<{ buffer: string; last_seq: number }>(
    'SELECT buffer, last_seq FROM flush_state WHERE buffer = ANY($1::text[])',
    [buffers.map((b) => b.name)],
  );
  const lastSeq = new Map(last.rows.map((row) => [row.buffer, Number(row.last_seq)]));
  const batches = await Promise.all(
    buffers.map((buffer) => deps.realtime.buffers.take(buffer, lastSeq.get(buffer.name) ?? 0, maxPackedBytes)),
  );
  const taken: Taken[] = [];
  batches.forEach((batch, i) => {
    if (batch) taken.push({ buffer: buffers[i] as BufferKeys, batch });
  });
  if (taken.length === 0) return buffers.map(() => null);
  const applied = await applyOnce(deps.db, taken, sink);
  await Promise.all(taken.map(({ buffer, batch }) => deps.realtime.buffers.finish(buffer, batch.seq)));
  return batches.map((batch, i) =>
    batch ? { seq: batch.seq, fields: batch.fields.length, applied: applied.has((buffers[i] as BufferKeys).name), more: batch.more } : null,
  );
}

export async function flushBuffer(
  deps: { db: Db; realtime: Pick<Realtime, 'buffers'> },
  buffer: BufferKeys,
  sink: DeltaSink,
): Promise<FlushResult | null> {
  return (await flushBuffers(deps, [buffer], sink))[0] ?? null;
}
