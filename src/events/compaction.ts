import { join } from 'node:path';
import type { DuckDBConnection } from '@duckdb/node-api';
import { bindAll, type EventEngine, sqlPath } from './engine.js';
import { STORED_COLUMNS } from './event-row.js';
import { publish, removeIfPresent } from './fs-atomic.js';
import {
  compactedName,
  type DaySummaries,
  dayOf,
  manifestName,
  SUMMARY_KINDS,
  type SummaryKind,
  segmentInfo,
  summaryName,
  tempName,
} from './layout.js';
import { pagesSql } from './pages-file.js';
import { commitManifest, needsDedupe, type Partition, summariesOf } from './partition.js';
import { type PropKeys, propKeysSql, propsSql } from './props-file.js';
import { visitsSql } from './visits-file.js';

// Compaction of one partition. Compacted files never share a message_id, and segments share one
// only where one of them is dirty or inside a dirty window (docs/events.md). So:
// - 'merge' folds the clean segments into one new compacted file, as they are;
// - 'dedupe' folds every visible segment into one new compacted file, one row per message_id,
//   without the ids the compacted files already hold (looked up in the segments' time span only):
//   the day's big files are read, not rewritten;
// - 'fold' makes one compacted file of FAN_IN files of one level (below), one level up;
// - 'rewrite' makes one file of every visible file (a finished day), and the day's summaries from
//   it: its visits (visits-file.ts), its page views by page (pages-file.ts) and its event figures by
//   property (props-file.ts), which queries read instead of the day's events where they can.
// Every compacted file is sorted as ORDER says.
// The new file becomes visible, and its inputs invisible, in one step: the next manifest
// generation, committed once.

export type CompactionMode = 'merge' | 'dedupe' | 'fold' | 'rewrite';

/**
 * Files of one level folded into one of the next. A merge or dedupe writes a level-0 file, and a
 * fold of FAN_IN level-L files a level-(L+1) one, so a busy day rewrites each event once per
 * level, log_FAN_IN(its merges) times, and keeps fewer than FAN_IN files per level visible.
 * (Rewriting the whole day whenever files piled up rewrote every earlier event again and again:
 * the work per pass grew with the day.)
 */
const FAN_IN = 4;

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

/** The SELECT of each summary's rows from the compacted file (a FROM source). */
const SUMMARY_SQL: Record<SummaryKind, (events: string) => string> = { visits: visitsSql, pages: pagesSql, props: propsSql };

/** What a partition needs now, if anything. */
export function compactionNeeded(p: Partition, nowMs: number): CompactionMode | undefined {
  if (needsDedupe(p, nowMs)) return 'dedupe';
  // A finished day ends as one compacted file with its summaries.
  const finished = p.day < dayOf(nowMs) && (p.visible.length > 1 || (p.visible.length === 1 && summariesOf(p) === undefined));
  if (finished) return 'rewrite';
  if (foldable(p).length > 0) return 'fold';
  if (p.segments.filter((s) => !segmentInfo(s).dirty).length > 1) return 'merge';
  return undefined;
}

/** The level of a compacted file (a manifest written before levels existed has none: 0). */
const levelOf = (p: Partition, file: string) => p.manifest.levels?.[file] ?? 0;

/** The compacted files of the lowest level that holds FAN_IN or more (none when no level does). */
function foldable(p: Partition): string[] {
  const byLevel = new Map<number, string[]>();
  for (const file of p.manifest.files) {
    const level = levelOf(p, file);
    byLevel.set(level, [...(byLevel.get(level) ?? []), file]);
  }
  const full = [...byLevel].filter(([, files]) => files.length >= FAN_IN).sort(([a], [b]) => a - b);
  return full[0]?.[1] ?? [];
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
  const inputs =
    mode === 'rewrite'
      ? p.visible
      : mode === 'fold'
        ? foldable(p)
        : mode === 'dedupe'
          ? p.segments
          : p.segments.filter((s) => !segmentInfo(s).dirty);
  if (inputs.length === 0) return true;
  const name = compactedName(p.manifest.gen + 1);
  const temp = join(p.dir, tempName('.parquet'));
  // Summaries only of a rewrite: the compacted file is then the day's only visible one.
  const summaries =
    mode === 'rewrite'
      ? SUMMARY_KINDS.map((kind) => ({ kind, name: summaryName(kind, p.manifest.gen + 1), temp: join(p.dir, tempName('.parquet')) }))
      : [];
  const options = `(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE ${ROW_GROUP_SIZE})`;
  const propKeys = await engine.withConnection(async (connection): Promise<PropKeys | undefined> => {
    const { sql, params } = await selectRows(connection, p, mode, inputs);
    const { values, types } = bindAll(params);
    await connection.run(`COPY (${sql}) TO ${sqlPath(temp)} ${options}`, values, types);
    for (const s of summaries)
      await connection.run(`COPY (${SUMMARY_SQL[s.kind](`read_parquet(${sqlPath(temp)})`)}) TO ${sqlPath(s.temp)} ${options}`);
    const props = summaries.find((s) => s.kind === 'props');
    if (props === undefined) return undefined;
    // The manifest names the keys, so a query knows before it reads a day whether its props file
    // answers for the key, or the day lacks the key, or its events must be read.
    const [row] = (await connection.runAndReadAll(propKeysSql(sqlPath(props.temp), `read_parquet(${sqlPath(temp)})`))).getRowObjectsJS();
    return { keys: (row?.['keys'] as string[] | undefined) ?? [], complete: row?.['complete'] === true };
  });
  for (const s of summaries) await publish(s.temp, join(p.dir, s.name), p.dir);
  await publish(temp, join(p.dir, name), p.dir);

  const present = new Set(p.names);
  const replaced: Record<string, number> = {};
  for (const [file, at] of Object.entries(p.manifest.replaced)) if (present.has(file)) replaced[file] = at;
  // The manifest this one supersedes goes like any replaced file (a reader may have just listed it),
  // and so do its summaries: the files they summarised change.
  if (p.manifest.gen > 0) replaced[manifestName(p.manifest.gen)] = nowMs;
  for (const summary of Object.values(p.manifest.summaries ?? {})) replaced[summary] = nowMs;
  let dirtyUntil = p.manifest.dirtyUntil;
  for (const input of inputs) {
    replaced[input] = nowMs;
    if (input.startsWith('s-')) {
      const info = segmentInfo(input);
      if (info.dirty) dirtyUntil = Math.max(dirtyUntil, info.atMs + dirtyWindowMs);
    }
  }
  const files = [...p.manifest.files.filter((f) => !inputs.includes(f)), name];
  const levels: Record<string, number> = {};
  for (const file of files) levels[file] = file === name ? (mode === 'fold' ? levelOf(p, inputs[0] as string) + 1 : 0) : levelOf(p, file);
  const named =
    summaries.length === 0 ? {} : { summaries: Object.fromEntries(summaries.map((s) => [s.kind, s.name])) as DaySummaries, propKeys };
  const committed = await commitManifest(p, { files, levels, replaced, dirtyUntil, ...named });
  if (!committed) for (const file of [name, ...summaries.map((s) => s.name)]) await removeIfPresent(join(p.dir, file));
  return committed;
}
