import { beforeEach, describe, expect, it } from 'vitest';
import { createKeys, type Keys } from '../src/storage/keys.js';
import type { Realtime } from '../src/storage/realtime.js';
import { bufferDeltas, uniqueName } from './helpers.js';
import { deltasOf, realtimeLayers } from './realtime-layers.js';

// The counter buffers' contract (src/storage/counter-buffers.ts), for every implementation.

describe.each(realtimeLayers())('counter buffers: %s', (name, open) => {
  let rt: Realtime;
  let keys: Keys;
  beforeEach(async () => {
    keys = createKeys(uniqueName('rt'));
    rt = await open(keys);
  });

  it('takes pending deltas atomically, replays a batch left in flight, and numbers batches past minSeq', async () => {
    const buffer = keys.analyticsBuffer('s4');
    expect(await rt.buffers.take(buffer, 0)).toBeNull();
    await bufferDeltas(rt, buffer, ['u1', 'u2'], [3, -1]);
    await bufferDeltas(rt, buffer, ['u1'], [2]);
    const first = await rt.buffers.take(buffer, 41);
    expect(first).toMatchObject({ seq: 42, more: false });
    expect(deltasOf(first)).toEqual({ u1: 5, u2: -1 });
    // Deltas arriving while a batch is in flight wait for the next batch.
    await bufferDeltas(rt, buffer, ['u1'], [7]);
    // Not finished (a crash): the same batch comes back.
    expect(await rt.buffers.take(buffer, 0)).toEqual(first);
    await rt.buffers.finish(buffer, 42);
    const second = await rt.buffers.take(buffer, 0);
    expect(second).toEqual({ seq: 43, fields: ['u1'], deltas: [7], more: false });
    await rt.buffers.finish(buffer, 42); // stale finish: ignored
    expect(await rt.buffers.take(buffer, 0)).toEqual(second);
    await rt.buffers.finish(buffer, 43);
    expect(await rt.buffers.take(buffer, 0)).toBeNull();
  });

  it('takes a large batch whole', async () => {
    const buffer = keys.rollupBuffer('s6');
    const fields = Array.from({ length: 5000 }, (_, i) => `f${i}`);
    await bufferDeltas(
      rt,
      buffer,
      fields,
      fields.map((_, i) => i + 1),
    );
    const taken = await rt.buffers.take(buffer, 0);
    expect(taken?.fields).toHaveLength(5000);
    const byField = deltasOf(taken);
    expect(byField['f0']).toBe(1);
    expect(byField['f4999']).toBe(5000);
    expect(taken?.deltas.reduce((a, b) => a + b, 0)).toBe((5000 * 5001) / 2);
  });

  it('takes a backlog past the size bound in several batches (Redis) or one (embedded), each delta once', async () => {
    const buffer = keys.rollupBuffer('a6');
    for (let i = 1; i <= 5; i++) await bufferDeltas(rt, buffer, [`r|${i}`, 't|pv'], [i, 1]);
    const size = JSON.stringify([
      ['r|1', 't|pv'],
      [1, 1],
    ]).length;
    const totals: Record<string, number> = {};
    const cuts: boolean[] = [];
    for (let batch = await rt.buffers.take(buffer, 0, 2 * size); batch; batch = await rt.buffers.take(buffer, 0, 2 * size)) {
      // Not finished: the same batch again, still telling whether it was cut.
      expect(await rt.buffers.take(buffer, 0, 2 * size)).toEqual(batch);
      for (const [n, d] of Object.entries(deltasOf(batch))) totals[n] = (totals[n] ?? 0) + d;
      cuts.push(batch.more);
      await rt.buffers.finish(buffer, batch.seq);
    }
    expect(totals).toEqual({ 'r|1': 1, 'r|2': 2, 'r|3': 3, 'r|4': 4, 'r|5': 5, 't|pv': 5 });
    expect(cuts).toEqual(name === 'embedded' ? [false] : [true, true, false]);
  });
});
