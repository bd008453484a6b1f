import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Config } from '../config.js';
import { openEventEngine } from './engine.js';
import { createEventStore, type EventStore } from './event-store.js';

// Opens the process's event store: its folder (a temporary one for an in-memory DATA_DIR) and
// its one DuckDB, on two threads at most (the processor, the API, Redis and PostgreSQL share the
// cores).

/** Replaced files stay this long for queries of any process that may still read them. */
export const EVENT_FILE_GRACE_MS = 10 * 60_000;

export async function openEventStore(config: Pick<Config, 'eventsDir' | 'claimIdleMs'>): Promise<EventStore & { close(): Promise<void> }> {
  const temporary = config.eventsDir === undefined;
  const root = config.eventsDir ?? (await mkdtemp(join(tmpdir(), 'tally-events-')));
  await mkdir(root, { recursive: true });
  const engine = await openEventEngine({ threads: Math.min(2, availableParallelism()) });
  const store = createEventStore({ root, engine, graceMs: EVENT_FILE_GRACE_MS, dirtyWindowMs: config.claimIdleMs });
  return Object.assign(store, {
    async close() {
      engine.close();
      if (temporary) await rm(root, { recursive: true, force: true });
    },
  });
}
