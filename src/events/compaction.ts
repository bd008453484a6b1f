import { join } from 'node:path';
import { bindAll, type EventEngine, sqlPath } from './engine.js';
import { EVENT_COLUMNS } from './event-row.js';
import { publish, removeIfPresent } from './fs-atomic.js';
import { compactedName, dayOf, manifestName, segmentInfo, tempName } from './layout.js';
import { commitManifest, needsDedupe, type Partition } from './partition.js';

// Compaction of one partition. 'merge' folds the clean segments into one new compacted file
// (cheap: the day's big file is not rewritten); 'dedupe' rewrites every visible file into one,
// keeping one row per message_id, sorted by ts (so Parquet's per-row-group min/max of ts lets a
// scan skip what a time range excludes). The new file becomes visible, and its inputs invisible,
// in one step: the next manifest generation, committed once.

export type CompactionMode = 'merge' | 'dedupe';

/** Past this many compacted files, a day is rewritten into one. */
const MAX_FILES = 8;

const COLUMNS = Object.keys(EVENT_COLUMNS).join(', ');

/** What a partition needs now, if anything. */
export function compactionNeeded(p: Partition, nowMs: number): CompactionMode | undefined {
  if (needsDedupe(p, nowMs)) return 'dedupe';
  // A finished day ends as one file; so does one whose merges piled up.
  if (p.visible.length > 1 && (p.day < dayOf(nowMs) || p.manifest.files.length >= MAX_FILES)) return 'dedupe';
  if (p.segments.filter((s) => !segmentInfo(s).dirty).length > 1) return 'merge';
  return undefined;
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
  const inputs = mode === 'dedupe' ? p.visible : p.segments.filter((s) => !segmentInfo(s).dirty);
  if (inputs.length === 0) return true;
  const name = compactedName(p.manifest.gen + 1);
  const temp = join(p.dir, tempName('.parquet'));
  const dedupe = mode === 'dedupe' ? 'QUALIFY row_number() OVER (PARTITION BY message_id ORDER BY ts) = 1' : '';
  const { values, types } = bindAll([inputs.map((f) => join(p.dir, f))]);
  await engine.withConnection(async (connection) => {
    await connection.run(
      `COPY (SELECT ${COLUMNS} FROM read_parquet($1, union_by_name = true) ${dedupe} ORDER BY ts)
       TO ${sqlPath(temp)} (FORMAT parquet, COMPRESSION zstd)`,
      values,
      types,
    );
  });
  await publish(temp, join(p.dir, name), p.dir);

  const present = new Set(p.names);
  const replaced: Record<string, number> = {};
  for (const [file, at] of Object.entries(p.manifest.replaced)) if (present.has(file)) replaced[file] = at;
  // The manifest this one supersedes goes like any replaced file (a reader may have just listed it).
  if (p.manifest.gen > 0) replaced[manifestName(p.manifest.gen)] = nowMs;
  let dirtyUntil = p.manifest.dirtyUntil;
  for (const input of inputs) {
    replaced[input] = nowMs;
    if (input.startsWith('s-')) {
      const info = segmentInfo(input);
      if (info.dirty) dirtyUntil = Math.max(dirtyUntil, info.atMs + dirtyWindowMs);
    }
  }
  const files = mode === 'dedupe' ? [name] : [...p.manifest.files, name];
  const committed = await commitManifest(p, { files, replaced, dirtyUntil });
  if (!committed) await removeIfPresent(join(p.dir, name));
  return committed;
}
