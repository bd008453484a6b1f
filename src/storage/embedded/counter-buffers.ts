import type { CounterBuffers, TakenBatch } from '../counter-buffers.js';
import type { BufferKeys } from '../keys.js';

// The embedded default's counter buffers: per buffer, a map of pending deltas and the batch in
// flight. The analytics step and the inbox counts add to them; the flusher takes and finishes
// batches as it does in Redis. All of a backlog fits one batch: it is in this process's memory
// already, so there is nothing to bound.

interface BufferState {
  pending: Map<string, number>;
  inflight: { seq: number; deltas: Map<string, number> } | null;
  seq: number;
  done: number;
}

export class EmbeddedBuffers implements CounterBuffers {
  private readonly buffers = new Map<string, BufferState>();

  private of(buffer: BufferKeys): BufferState {
    let b = this.buffers.get(buffer.name);
    if (!b) this.buffers.set(buffer.name, (b = { pending: new Map(), inflight: null, seq: 0, done: 0 }));
    return b;
  }

  add(buffer: BufferKeys, name: string, delta: number): void {
    const pending = this.of(buffer).pending;
    pending.set(name, (pending.get(name) ?? 0) + delta);
  }

  /** A name's pending and in-flight deltas, with the buffer's batch numbers. */
  valueOf(buffer: BufferKeys, name: string): { pending: number; inflight: number; inflightSeq: number; doneSeq: number } {
    const b = this.of(buffer);
    return {
      pending: b.pending.get(name) ?? 0,
      inflight: b.inflight?.deltas.get(name) ?? 0,
      inflightSeq: b.inflight?.seq ?? 0,
      doneSeq: b.done,
    };
  }

  /** Names with a delta pending or in flight. */
  names(buffer: BufferKeys): string[] {
    const b = this.of(buffer);
    return [...new Set([...b.pending.keys(), ...(b.inflight?.deltas.keys() ?? [])])];
  }

  async take(buffer: BufferKeys, minSeq: number): Promise<TakenBatch | null> {
    const b = this.of(buffer);
    if (!b.inflight) {
      if (b.pending.size === 0) return null;
      b.seq = Math.max(b.seq, minSeq) + 1;
      b.inflight = { seq: b.seq, deltas: b.pending };
      b.pending = new Map();
    }
    return { seq: b.inflight.seq, fields: [...b.inflight.deltas.keys()], deltas: [...b.inflight.deltas.values()], more: false };
  }

  async finish(buffer: BufferKeys, seq: number): Promise<void> {
    const b = this.of(buffer);
    if (b.inflight?.seq !== seq) return;
    b.inflight = null;
    b.done = seq;
  }
}
