import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EventEngine, openEventEngine } from '../src/events/engine.js';
import type { EventRow } from '../src/events/event-row.js';
import { createEventStore, type EventStore } from '../src/events/event-store.js';
import { DAY_MS } from '../src/events/layout.js';
import { propertyParams } from './helpers.js';
import { eventRow } from './stored-events.js';

// Two stores on one folder, as two processes share it, each with its own DuckDB: random batches
// written fresh, delivered again, or raced (a slow writer past its claim deadline and a second
// processor writing the same entries), while both compact and collect garbage and a reader takes
// snapshots from either. Every snapshot holds each message_id at most once and every id whose
// write had finished before it began; at the end, every id exactly once.

const SITE = 'shared';

type Step = { kind: 'fresh' | 'redeliver' | 'race'; size: number; yesterday: boolean; writer: 0 | 1 };

const stepArb: fc.Arbitrary<Step> = fc.record({
  kind: fc.constantFrom('fresh', 'fresh', 'redeliver', 'race'),
  size: fc.integer({ min: 1, max: 30 }),
  yesterday: fc.boolean(),
  writer: fc.constantFrom(0 as const, 1 as const),
});

describe('event store shared by two processes', () => {
  let engines: EventEngine[];
  let dir: string;
  let run = 0;
  beforeAll(async () => {
    engines = [await openEventEngine({ threads: 1 }), await openEventEngine({ threads: 1 })];
    dir = await mkdtemp(join(tmpdir(), 'tally-shared-test-'));
  });
  afterAll(async () => {
    for (const e of engines) e.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** What the sink does for entries delivered again: write only what the store lacks, as possibly repeating. */
  async function redeliver(store: EventStore, rows: EventRow[]): Promise<void> {
    const held = await store.heldIds(SITE, rows);
    const missing = rows.filter((r) => !held.has(r.message_id));
    if (missing.length > 0) await store.append(SITE, missing, { dirty: true });
  }

  async function idsIn(store: EventStore): Promise<string[]> {
    const snapshot = await store.snapshot(SITE, -8.64e15, 8.64e15);
    try {
      if (snapshot.files.length === 0) return [];
      const rows = await store.sql.all('SELECT message_id FROM read_parquet($1)', [snapshot.files]);
      return rows.map((r) => r['message_id'] as string);
    } finally {
      snapshot.release();
    }
  }

  it('shows every message_id exactly once in every snapshot', { timeout: 120_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(stepArb, { minLength: 5, maxLength: 25 }), async (steps) => {
        const root = join(dir, `run${run++}`);
        const stores = engines.map((engine) => createEventStore({ root, engine, graceMs: 2_000, dirtyWindowMs: 300 }));
        const done = new Set<string>();
        let next = 0;
        let writing = true;
        const now = Date.now();

        const writers = (async () => {
          for (const step of steps) {
            const ts = step.yesterday ? now - DAY_MS : now;
            const rows = Array.from({ length: step.size }, (_, i) => eventRow(SITE, `m${next++}`, ts + i));
            const [mine, other] = step.writer === 0 ? [stores[0]!, stores[1]!] : [stores[1]!, stores[0]!];
            if (step.kind === 'fresh') {
              await mine.append(SITE, rows, { dirty: false, claimableAt: performance.now() + 60_000 });
            } else if (step.kind === 'redeliver') {
              await mine.append(SITE, rows, { dirty: false, claimableAt: performance.now() + 60_000 });
              await redeliver(other, rows);
            } else {
              // The first writer is slow: past its claim deadline, the other processor took the entries over.
              await Promise.all([mine.append(SITE, rows, { dirty: false, claimableAt: performance.now() - 1 }), redeliver(other, rows)]);
            }
            for (const r of rows) done.add(r.message_id);
          }
          writing = false;
        })();

        const compactors = stores.map(async (store) => {
          while (writing) await store.maintainSite(SITE);
        });

        let snapshots = 0;
        const reader = (async () => {
          while (writing) {
            const before = new Set(done);
            const ids = await idsIn(stores[snapshots++ % 2]!);
            const seen = new Set(ids);
            expect(seen.size, 'a message_id twice in one snapshot').toBe(ids.length);
            for (const id of before) expect(seen.has(id), `${id} missing`).toBe(true);
          }
        })();

        await Promise.all([writers, ...compactors, reader]);
        for (const store of stores) {
          const ids = await idsIn(store);
          expect(ids.length).toBe(done.size);
          expect(new Set(ids).size).toBe(done.size);
        }
      }),
      propertyParams(6, 90_000),
    );
  });
});
