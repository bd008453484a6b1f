import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { publishIfAbsent } from './fs-atomic.js';
import { type DaySummaries, EXPIRED_MARK, kindOf, manifestName, SUMMARY_KINDS, segmentInfo, tempName } from './layout.js';
import type { PropKeys } from './props-file.js';

// One (site, day) partition as a reader sees it at one instant: the newest manifest names the
// compacted files; every segment it has not folded in is visible beside them. A manifest
// generation is committed once (publishIfAbsent), so a partition moves from one consistent set
// of files to the next, whatever the number of writers and compactors.

export interface Manifest {
  gen: number;
  /** Compacted files, visible. */
  files: string[];
  /** Each compacted file's level (compaction.ts: how many folds its events went through); absent means 0. */
  levels?: Record<string, number>;
  /** Files folded into others (segments, superseded compacted files): name → when, deleted a grace period later. */
  replaced: Record<string, number>;
  /** Until then a segment may still arrive that repeats message_ids of visible files (docs/events.md). */
  dirtyUntil: number;
  /** The day's summaries (compaction.ts) when a rewrite made it one compacted file. */
  summaries?: DaySummaries;
  /** With them: the custom property keys the props summary has rows of (props-file.ts). */
  propKeys?: PropKeys;
}

export interface Partition {
  dir: string;
  day: string;
  manifest: Manifest;
  /** Every visible file's name: the manifest's compacted files, then the segments not folded in. */
  visible: string[];
  /** The visible segments. */
  segments: string[];
  /** Every name in the folder when it was read. */
  names: string[];
}

const EMPTY: Manifest = Object.freeze({ gen: 0, files: [], replaced: {}, dirtyUntil: 0 });

/** Reads a partition; undefined when it is gone or expired (retention). */
export async function readPartition(dir: string, day: string): Promise<Partition | undefined> {
  // A manifest may be deleted between the listing and its read (a newer one replaced it long
  // enough ago): list again.
  for (let attempt = 0; ; attempt++) {
    let names: string[];
    try {
      names = await readdir(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    if (names.includes(EXPIRED_MARK)) return undefined;
    const newest = names
      .filter((n) => kindOf(n) === 'manifest')
      .sort()
      .at(-1);
    let manifest = EMPTY;
    if (newest !== undefined) {
      try {
        manifest = JSON.parse(await readFile(join(dir, newest), 'utf8')) as Manifest;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT' && attempt < 5) continue;
        throw err;
      }
    }
    const segments = names.filter((n) => kindOf(n) === 'segment' && !(n in manifest.replaced)).sort();
    return { dir, day, manifest, visible: [...manifest.files, ...segments], segments, names };
  }
}

/**
 * Whether a read must not take the visible files as they are: a segment that may repeat
 * message_ids is visible, or one may still arrive (the dirty window) and segments are visible
 * beside other files. Compacted files never repeat each other's ids; deduping the segments into
 * one more of them makes the partition's files hold each message_id once.
 */
export function needsDedupe(p: Partition, nowMs: number): boolean {
  if (p.segments.some((s) => segmentInfo(s).dirty)) return true;
  return nowMs < p.manifest.dirtyUntil && p.segments.length > 0 && p.visible.length > 1;
}

/**
 * The day's summaries, when they summarise every visible event (no segment, one compacted file)
 * and there is one of each kind (a manifest written before a kind existed lacks it).
 */
export function summariesOf(p: Partition): DaySummaries | undefined {
  const { summaries } = p.manifest;
  if (p.segments.length > 0 || p.manifest.files.length !== 1 || summaries === undefined || p.manifest.propKeys === undefined)
    return undefined;
  return SUMMARY_KINDS.every((kind) => typeof summaries[kind] === 'string') ? summaries : undefined;
}

/** Commits the next manifest generation; false when another compaction committed it first. */
export async function commitManifest(p: Partition, next: Omit<Manifest, 'gen'>): Promise<boolean> {
  const gen = p.manifest.gen + 1;
  const temp = join(p.dir, tempName('.json'));
  await writeFile(temp, JSON.stringify({ gen, ...next } satisfies Manifest));
  return publishIfAbsent(temp, join(p.dir, manifestName(gen)), p.dir);
}
