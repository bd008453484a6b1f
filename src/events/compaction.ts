import { join } from 'node:path';
import type { DuckDBConnection } from '@duckdb/node-api';
import { bindAll, type EventEngine, sqlPath } from './engine.js';
import { STORED_COLUMNS } from './event-row.js';
import { publish, removeIfPresent } from './fs-atomic.js';
import { compactedName, dayOf, manifestName, segmentInfo, tempName, visitsName } from './layout.js';
import { commitManifest, needsDedupe, type Partition, visitsOf } from './partition.js';
import { visitsSql } from './visits-file.js';

// Compaction of one partition. Compacted files never share a message_id, and segments share one
// only where one of them is dirty or inside a dirty window (docs/events.md). So:
// - 'merge' folds the clean segments into one new compacted file, as they are;
// - 'dedupe' folds every visible segment into one new compacted file, one row per message_id,
//   without the ids the compacted files already hold (looked up in the segments' time span only):
//   the day's big files are read, not rewritten;
// - 'rewrite' makes one file of every visible file (a finished day, or too many files), and the
//   day's visits file from it (visits-file.ts).
// Every compacted file is sorted as ORDER says.
// The new file becomes visible, and its inputs invisible, in one step: the next manifest
// generation, committed once.

export type CompactionMode = 'merge' | 'dedupe' | 'rewrite';

/** Past this many compacted files, a day is rewritten into one. */
const MAX_FILES = 8;

const COLUMNS = STORED_COLUMNS.join(', ');

/**
 * Row order of compacted files: by kind and event name (as Plausible's events table is by name),
 * then source, session and time. A goal or funnel step on an event name reads only the row groups
 * of that name; within a kind and name, a filter on the source (the dashboard's most common one)
 * reads only that source's row groups, and a session's events sit together, which keeps the
 * session-level columns in long runs that compress well (ordering page views by page too would
 * scatter a session's events, and the files grow by far more than that saves). Small row groups
 * make the skipping fine-grained; a day's time range is its partition, so ordering by ts inside
 * it skips little.
 */
const ORDER = 'ORDER BY kind, name, source, session_h, ts';
const ROW_GROUP_SIZE = 16_384;

/** What a partition needs now, if anything. */
export function compactionNeeded(p: Partition, nowMs: number): CompactionMode | undefined {
  if (needsDedupe(p, nowMs)) return 'dedupe';
  // A finished day ends as one compacted file with its visits file.
  const finished = p.day < dayOf(nowMs) && (p.visible.length > 1 || (p.visible.length === 1 && visitsOf(p) === undefined));
  if (finished || (p.visible.length > 1 && p.manifest.files.length >= MAX_FILES)) return 'rewrite';
  if (p.segments.filter((s) => !segmentInfo(s).dirty).length > 1) return 'merge';
  return undefined;
}

/** The statement that writes the compacted file's rows (in ORDER) from the inputs. */
async function selectRows(
  connection: DuckDBConnection,
  p: Partition,
  mode: CompactionMode,
  inputs: readonly string[],
): Promise<{ sql: string; params: unknown[] }> {
  const paths = (names: readonly string[]) => names.map((f) => join(p.dir, f));
  const from = 'read_parquet($1, union_by_name = true, hive_partitioning = false)';
  if (mode !== 'dedupe') return { sql: `SELECT ${COLUMNS} FROM ${from} ${ORDER}`, params: [paths(inputs)] };
  const unique = 'QUALIFY row_number() OVER (PARTITION BY message_id ORDER BY ts) = 1';
  if (p.manifest.files.length === 0) return { sql: `SELECT ${COLUMNS} FROM ${from} ${unique} ${ORDER}`, params: [paths(inputs)] };
  // A repeated message has the same ts everywhere: only the compacted files' ids of the segments'
  // time span are looked up.
  const { values, types } = bindAll([paths(inputs)]);
  const span = (
    await connection.runAndReadAll(`SELECT epoch_ms(min(ts)) AS lo, epoch_ms(max(ts)) AS hi FROM ${from}`, values, types)
  ).getRowObjectsJS()[0];
  return {
    sql: `SELECT ${COLUMNS} FROM ${from}
          WHERE message_id NOT IN (
            SELECT message_id FROM read_parquet($2, union_by_name = true, hive_partitioning = false)
            WHERE ts BETWEEN epoch_ms($3::BIGINT) AND epoch_ms($4::BIGINT))
          ${unique} ${ORDER}`,
    params: [paths(inputs), paths(p.manifest.files), Number(span?.['lo']), Number(span?.['hi'])],
  };
}

/**
 * Compacts the partition as read; false when another compaction committed first (read the
 * partition again). `dirtyWindowMs`: how long after a dirty segment was written another segment
 * may still repeat its message_ids (docs/events.md).
 */
export async function compactPartition(
  engine: EventEngine,
  p: Partition,
  mode: CompactionMode,
  nowMs: number,
  dirtyWindowMs: number,
): Promise<boolean> {
  const inputs = mode === 'rewrite' ? p.visible : mode === 'dedupe' ? p.segments : p.segments.filter((s) => !segmentInfo(s).dirty);
  if (inputs.length === 0) return true;
  const name = compactedName(p.manifest.gen + 1);
  const temp = join(p.dir, tempName('.parquet'));
  const visits = mode === 'rewrite' ? visitsName(p.manifest.gen + 1) : undefined;
  const visitsTemp = join(p.dir, tempName('.parquet'));
  const options = `(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE ${ROW_GROUP_SIZE})`;
  await engine.withConnection(async (connection) => {
    const { sql, params } = await selectRows(connection, p, mode, inputs);
    const { values, types } = bindAll(params);
    await connection.run(`COPY (${sql}) TO ${sqlPath(temp)} ${options}`, values, types);
    if (visits !== undefined)
      await connection.run(`COPY (${visitsSql(`read_parquet(${sqlPath(temp)})`)}) TO ${sqlPath(visitsTemp)} ${options}`);
  });
  if (visits !== undefined) await publish(visitsTemp, join(p.dir, visits), p.dir);
  await publish(temp, join(p.dir, name), p.dir);

  const present = new Set(p.names);
  const replaced: Record<string, number> = {};
  for (const [file, at] of Object.entries(p.manifest.replaced)) if (present.has(file)) replaced[file] = at;
  // The manifest this one supersedes goes like any replaced file (a reader may have just listed it),
  // and so does its visits file: the files it summarised change.
  if (p.manifest.gen > 0) replaced[manifestName(p.manifest.gen)] = nowMs;
  if (p.manifest.visits !== undefined) replaced[p.manifest.visits] = nowMs;
  let dirtyUntil = p.manifest.dirtyUntil;
  for (const input of inputs) {
    replaced[input] = nowMs;
    if (input.startsWith('s-')) {
      const info = segmentInfo(input);
      if (info.dirty) dirtyUntil = Math.max(dirtyUntil, info.atMs + dirtyWindowMs);
    }
  }
  const files = mode === 'rewrite' ? [name] : [...p.manifest.files, name];
  const committed = await commitManifest(p, { files, replaced, dirtyUntil, ...(visits === undefined ? {} : { visits }) });
  if (!committed) {
    await removeIfPresent(join(p.dir, name));
    if (visits !== undefined) await removeIfPresent(join(p.dir, visits));
  }
  return committed;
}
