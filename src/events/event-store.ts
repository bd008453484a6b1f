import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { compactionNeeded, compactPartition } from './compaction.js';
import { bindAll, type EventEngine } from './engine.js';
import type { EventRow, EventScan, EventSnapshot, EventSql, SnapshotDay } from './event-row.js';
import { collectGarbage } from './garbage.js';
import { DAY_MS, type DaySummaries, dayOf, dayOfFolder, dayStart, partitionPath, SUMMARY_KINDS, siteOfFolder, sitePath } from './layout.js';
import { needsDedupe, type Partition, readPartition, summariesOf } from './partition.js';
import { writeSegment } from './segment-writer.js';

// The columnar event store: Parquet files under one folder, shared by every process that opens
// it (docs/events.md). Writers add segments; readers take snapshots; compaction and garbage
// collection run in the elected compactor (src/events/compactor.ts) and, for a partition a read
// finds possibly repeating message_ids, in the reader first.

export interface EventStoreOptions {
  root: string;
  engine: EventEngine;
  /** How long a replaced file stays for readers that still hold it (longer than any query). */
  graceMs: number;
  /**
   * How long after a possibly repeating segment another may still arrive: the processors'
   * claim idle time (a slower writer marks its own segments).
   */
  dirtyWindowMs: number;
  now?: () => number;
}

export interface EventStore extends EventScan {
  readonly root: string;
  /** Read-only SQL over snapshot files. */
  readonly sql: EventSql;
  /** Writes a site's rows as one segment per UTC day; `dirty` and `claimableAt` as in SegmentOptions. */
  append(siteId: string, rows: readonly EventRow[], options: { dirty: boolean; claimableAt?: number }): Promise<void>;
  /** The message_ids among the rows the store already holds (looked up in the rows' days and time span). */
  heldIds(siteId: string, rows: readonly EventRow[]): Promise<Set<string>>;
  /** Compacts and cleans every partition of the site that needs it; returns partitions compacted. */
  maintainSite(siteId: string): Promise<number>;
  sites(): Promise<string[]>;
}

async function listFolders(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

export function createEventStore(options: EventStoreOptions): EventStore {
  const { root, engine, graceMs, dirtyWindowMs } = options;
  const now = options.now ?? Date.now;
  /** Files this process's open snapshots read (its own garbage collection keeps them). */
  const held = new Map<string, number>();

  async function days(siteId: string): Promise<string[]> {
    const out: string[] = [];
    for (const folder of await listFolders(sitePath(root, siteId))) {
      const day = dayOfFolder(folder);
      if (day !== undefined) out.push(day);
    }
    return out.sort();
  }

  /** Reads a partition, deduping it first when it may repeat message_ids. */
  async function readDeduped(siteId: string, day: string): Promise<Partition | undefined> {
    const dir = partitionPath(root, siteId, day);
    for (;;) {
      const p = await readPartition(dir, day);
      if (p === undefined || !needsDedupe(p, now())) return p;
      await compactPartition(engine, p, 'dedupe', now(), dirtyWindowMs);
    }
  }

  async function snapshot(siteId: string, fromMs: number, toMs: number): Promise<EventSnapshot> {
    const found: SnapshotDay[] = [];
    for (const day of await days(siteId)) {
      const start = dayStart(day);
      if (start + DAY_MS <= fromMs || start >= toMs) continue;
      const p = await readDeduped(siteId, day);
      if (p === undefined || p.visible.length === 0) continue;
      const summaries = summariesOf(p);
      const files = p.visible.map((name) => join(p.dir, name));
      found.push(
        summaries === undefined
          ? { startMs: start, files }
          : {
              startMs: start,
              files,
              summaries: Object.fromEntries(SUMMARY_KINDS.map((k) => [k, join(p.dir, summaries[k])])) as DaySummaries,
              propKeys: p.manifest.propKeys ?? { keys: [], complete: false },
            },
      );
    }
    const files = found.flatMap((d) => d.files);
    const holding = [...files, ...found.flatMap((d) => Object.values(d.summaries ?? {}))];
    for (const f of holding) held.set(f, (held.get(f) ?? 0) + 1);
    let released = false;
    return {
      files,
      days: found,
      release() {
        if (released) return;
        released = true;
        for (const f of holding) {
          const n = (held.get(f) ?? 1) - 1;
          if (n === 0) held.delete(f);
          else held.set(f, n);
        }
      },
    };
  }

  const byDay = (rows: readonly EventRow[]) => {
    const out = new Map<string, EventRow[]>();
    for (const row of rows) {
      const day = dayOf(row.ts);
      const list = out.get(day);
      if (list) list.push(row);
      else out.set(day, [row]);
    }
    return out;
  };

  return {
    root,
    sql: engine.sql,
    snapshot,

    async append(siteId, rows, opts) {
      // A site's folder holds only its rows: queries read it without a site filter.
      if (rows.some((r) => r.site_id !== siteId)) throw new Error(`rows of another site than ${siteId}`);
      for (const [day, list] of byDay(rows)) await writeSegment(engine, root, siteId, day, list, opts);
    },

    async heldIds(siteId, rows) {
      const found = new Set<string>();
      for (const [day, list] of byDay(rows)) {
        const p = await readPartition(partitionPath(root, siteId, day), day);
        if (p === undefined || p.visible.length === 0) continue;
        let min = Number.POSITIVE_INFINITY;
        let max = Number.NEGATIVE_INFINITY;
        for (const r of list) {
          min = Math.min(min, r.ts);
          max = Math.max(max, r.ts);
        }
        const { values, types } = bindAll([p.visible.map((f) => join(p.dir, f)), list.map((r) => r.message_id), min, max]);
        // A redelivered message has the time it had: the ts range lets row groups be skipped.
        const result = await engine.withConnection((c) =>
          c.runAndReadAll(
            `SELECT DISTINCT message_id FROM read_parquet($1, union_by_name = true)
             WHERE ts BETWEEN epoch_ms($3::BIGINT) AND epoch_ms($4::BIGINT) AND message_id IN (SELECT unnest($2))`,
            values,
            types,
          ),
        );
        for (const row of result.getRowObjectsJS()) found.add(row['message_id'] as string);
      }
      return found;
    },

    async maintainSite(siteId) {
      let compacted = 0;
      for (const day of await days(siteId)) {
        const dir = partitionPath(root, siteId, day);
        let p = await readPartition(dir, day);
        for (;;) {
          const mode = p && compactionNeeded(p, now());
          if (!p || !mode) break;
          if (await compactPartition(engine, p, mode, now(), dirtyWindowMs)) compacted += 1;
          p = await readPartition(dir, day);
        }
        if (p) await collectGarbage(p, now(), graceMs, (path) => held.has(path));
      }
      return compacted;
    },

    async sites() {
      const out: string[] = [];
      for (const folder of await listFolders(root)) {
        const site = siteOfFolder(folder);
        if (site !== undefined) out.push(site);
      }
      return out;
    },
  };
}
