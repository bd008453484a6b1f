import type { Db, Queryable } from '../storage/db.js';
import type { BufferKeys } from '../storage/keys.js';
import type { Realtime, TakenBatch } from '../storage/realtime.js';

// Write-behind of buffered counter deltas, exactly once:
//   1. take: the pending hash is renamed into flight under a sequence number (atomic in Redis);
//   2. one PostgreSQL transaction advances flush_state.last_seq for the buffer and applies every
//      delta with one statement; if last_seq was already there, the batch was applied before
//      (a replay after a crash between commit and finish) and nothing is applied again;
//   3. finish: the in-flight hash is dropped.
// A crash before 3 leaves the batch in flight; the next take returns it and step 2 decides.

/** Applies a batch's deltas inside the flush transaction: one statement for the whole batch. */
export type DeltaSink = (tx: Queryable, fields: readonly string[], deltas: readonly number[]) => Promise<void>;

export interface FlushResult {
  seq: number;
  fields: number;
  /** False when PostgreSQL had the batch already (a replay). */
  applied: boolean;
}

export async function lastAppliedSeq(db: Queryable, buffer: BufferKeys): Promise<number> {
  const result = await db.query<{ last_seq: number }>('SELECT last_seq FROM flush_state WHERE buffer = $1', [buffer.name]);
  return result.rows[0]?.last_seq ?? 0;
}

async function applyOnce(db: Db, buffer: BufferKeys, batch: TakenBatch, sink: DeltaSink): Promise<boolean> {
  return db.transaction(async (tx) => {
    const advanced = await tx.query(
      `INSERT INTO flush_state (buffer, last_seq) VALUES ($1, $2)
       ON CONFLICT (buffer) DO UPDATE SET last_seq = excluded.last_seq, updated_at = now()
       WHERE flush_state.last_seq < excluded.last_seq`,
      [buffer.name, batch.seq],
    );
    if (advanced.rowCount === 0) return false;
    const fields: string[] = [];
    const deltas: number[] = [];
    batch.fields.forEach((field, i) => {
      const delta = batch.deltas[i] ?? 0;
      if (delta !== 0) {
        fields.push(field);
        deltas.push(delta);
      }
    });
    if (fields.length > 0) await sink(tx, fields, deltas);
    return true;
  });
}

export async function flushBuffer(
  deps: { db: Db; realtime: Realtime },
  buffer: BufferKeys,
  sink: DeltaSink,
): Promise<FlushResult | null> {
  const batch = await deps.realtime.takeBatch(buffer, await lastAppliedSeq(deps.db, buffer));
  if (!batch) return null;
  const applied = await applyOnce(deps.db, buffer, batch, sink);
  await deps.realtime.finishBatch(buffer, batch.seq);
  return { seq: batch.seq, fields: batch.fields.length, applied };
}
