import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { type StepResult, startLoop } from '../src/lifecycle/background-loop.js';
import { eventually } from './helpers.js';

// The one helper every background loop runs on: interval, backlog, back-off, and a stop that
// ends waits instead of sleeping them out.

/** A logger whose lines land in an array. */
function capture() {
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  return { log, lines };
}

describe('background loop', () => {
  it('runs the next step at once while the step reports a backlog, then waits the interval; a stop ends the wait', async () => {
    const { log } = capture();
    let steps = 0;
    const loop = startLoop({
      name: 'test',
      log,
      intervalMs: 60_000,
      step: async (): Promise<StepResult> => (++steps < 3 ? 'again' : undefined),
    });
    await eventually(async () => expect(steps).toBe(3));
    const started = performance.now();
    await loop.stop();
    expect(performance.now() - started).toBeLessThan(200);
    expect(steps).toBe(3);
  });

  it('backs off exponentially up to the cap after failures, one log line each with the name, and recovers', async () => {
    const { log, lines } = capture();
    let steps = 0;
    const loop = startLoop({
      name: 'flaky',
      log,
      intervalMs: 1,
      backoff: { firstMs: 5, maxMs: 20 },
      step: async () => {
        steps += 1;
        if (steps <= 5) throw new Error(`failure ${steps}`);
        return undefined;
      },
    });
    await eventually(async () => expect(steps).toBeGreaterThan(6));
    await loop.stop();
    const failures = lines.filter((l) => l['msg'] === 'flaky failed; retrying');
    expect(failures.map((l) => l['retryInMs'])).toEqual([5, 10, 20, 20, 20]);
    expect(failures.map((l) => l['loop'])).toEqual(Array(5).fill('flaky'));
    // The stack once, with the first failure; the message alone after.
    expect(failures[0]?.['err']).toMatchObject({ message: 'failure 1', stack: expect.stringContaining('Error: failure 1') });
    expect(failures.slice(1).map((l) => l['err'])).toEqual(['failure 2', 'failure 3', 'failure 4', 'failure 5']);
    expect(lines.filter((l) => l['msg'] === 'flaky works again')).toHaveLength(1);
  });

  it('aborts the signal the step waits on, waits for a step that is writing, and runs no step after', async () => {
    const { log } = capture();
    let release!: () => void;
    const writing = new Promise<void>((resolve) => (release = resolve));
    let signal: AbortSignal | undefined;
    let steps = 0;
    let wrote = false;
    const loop = startLoop({
      name: 'writer',
      log,
      intervalMs: 0,
      step: async (s) => {
        signal = s;
        steps += 1;
        await writing;
        wrote = true;
        return 'again';
      },
    });
    await eventually(async () => expect(steps).toBe(1));
    let stopped = false;
    const stopping = loop.stop().then(() => (stopped = true));
    expect(signal?.aborted).toBe(true);
    // A few turns of the event loop: the stop waits for the write, however long it takes.
    for (let turn = 0; turn < 5; turn++) await new Promise((resolve) => setImmediate(resolve));
    expect(stopped).toBe(false);
    release();
    await stopping;
    expect(wrote).toBe(true);
    expect(steps).toBe(1);
  });

  it('waits one interval before the first step when asked', async () => {
    const { log } = capture();
    let steps = 0;
    const loop = startLoop({ name: 'later', log, intervalMs: 60_000, delayFirst: true, step: async () => void steps++ });
    await loop.stop();
    expect(steps).toBe(0);
  });
});
