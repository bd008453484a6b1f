import { describe, expect, it } from 'vitest';
import { createBatcher } from '../src/inbox/statement-batch.js';

// The batcher behind the inbox's batched statements (real PostgreSQL runs it in the inbox tests).

const sqlError = Object.assign(new Error('deadlock detected'), { code: '40P01', severity: 'ERROR' });

function recording(fail?: Error) {
  const calls: string[] = [];
  const run = createBatcher<number, number>({
    parallel: 1,
    max: 3,
    one: async (n) => {
      calls.push(`one ${n}`);
      return n * 10;
    },
    many: async (inputs) => {
      calls.push(`many ${inputs.join(',')}`);
      // A statement that takes a while: what is tested is what queues behind it meanwhile.
      await new Promise((resolve) => setTimeout(resolve, 5));
      if (fail) throw fail;
      return inputs.map((n) => n * 100);
    },
  });
  return { calls, run };
}

describe('statement batcher', () => {
  it('runs a lone input alone, inputs that arrive together as one batch, at most max at once', async () => {
    const { calls, run } = recording();
    expect(await run(1)).toBe(10);
    expect(await Promise.all([2, 3, 4, 5, 6, 7].map((n) => run(n)))).toEqual([200, 300, 400, 500, 600, 700]);
    expect(calls).toEqual(['one 1', 'many 2,3,4', 'many 5,6,7']);
  });

  it('runs each input alone after PostgreSQL refused the batch statement (nothing of it committed)', async () => {
    const { calls, run } = recording(sqlError);
    const all = [run(1), run(2), run(3)];
    expect(await Promise.all(all)).toEqual([10, 20, 30]);
    expect(calls).toEqual(['many 1,2,3', 'one 1', 'one 2', 'one 3']);
  });

  it('fails every input of a batch that may have committed (a lost connection), running none again', async () => {
    const { calls, run } = recording(new Error('Connection terminated unexpectedly'));
    const all = [run(1), run(2), run(3)].map((p) => p.then(String, (err: Error) => err.message));
    expect(await Promise.all(all)).toEqual(Array(3).fill('Connection terminated unexpectedly'));
    expect(calls).toEqual(['many 1,2,3']);
  });
});
