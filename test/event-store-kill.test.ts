import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EventEngine, openEventEngine } from '../src/events/engine.js';
import { createEventStore } from '../src/events/event-store.js';

// kill -9 of a process while it writes segments: the batch it was writing is delivered again to
// the next process, which writes only what the store lacks. Afterwards every event is stored
// exactly once, and nothing half-written is ever visible.

const ROOT = new URL('..', import.meta.url).pathname;
const BATCHES = 60;
const SIZE = 400;

/** Runs the writer from `from`; resolves with the last batch it acknowledged, after killing it killAfterMs after its first ack (or at its end). */
function runWriter(root: string, from: number, again: boolean, killAfterMs: number | undefined): Promise<number> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'test/fixtures/event-writer-child.ts', root, String(from), String(BATCHES), String(SIZE), String(again)],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let acked = from - 1;
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => {
    out += chunk.toString();
    for (const m of out.matchAll(/ack (\d+)\n/g)) acked = Math.max(acked, Number(m[1]));
    // The first ack starts the clock: a kill during start-up would test nothing.
    if (!timer && killAfterMs !== undefined) timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
  });
  let timer: NodeJS.Timeout | undefined;
  return new Promise((resolve) =>
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(acked);
    }),
  );
}

describe('kill -9 while writing segments', () => {
  let dir: string;
  let engine: EventEngine;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tally-kill-test-'));
    engine = await openEventEngine({ threads: 1 });
  });
  afterAll(async () => {
    engine.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('stores every event exactly once across kills', { timeout: 180_000 }, async () => {
    let next = 0;
    let kills = 0;
    // Kill points spread over writes (a segment takes a few milliseconds); the last run finishes.
    const delays = [37, 91, 13, 153, 61];
    for (let run = 0; next < BATCHES; run++) {
      const acked = await runWriter(dir, next, next > 0, delays[run]);
      if (acked + 1 < BATCHES) kills += 1;
      next = acked + 1;
    }
    expect(kills).toBe(delays.length);
    const store = createEventStore({ root: dir, engine, graceMs: 60_000, dirtyWindowMs: 1000 });
    const snapshot = await store.snapshot('crash-site', -8.64e15, 8.64e15);
    try {
      const [got] = await store.sql.all('SELECT count(*) AS n, count(DISTINCT message_id) AS ids FROM read_parquet($1)', [snapshot.files]);
      expect({ n: Number(got!['n']), ids: Number(got!['ids']) }).toEqual({ n: BATCHES * SIZE, ids: BATCHES * SIZE });
    } finally {
      snapshot.release();
    }
  });
});
