import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { removeIfPresent } from './fs-atomic.js';
import { genOf, kindOf } from './layout.js';
import type { Partition } from './partition.js';

// Deletes what no reader can need any more: files a manifest replaced, once a grace period has
// passed since (longer than any query runs, in any process: a snapshot taken before the
// replacement keeps reading them meanwhile; superseded manifests are among them), and what
// crashed writers and compactions left (temp files, compacted files and summaries no manifest
// names) once as old.

async function ageMs(path: string, nowMs: number): Promise<number | undefined> {
  try {
    return nowMs - (await stat(path)).mtimeMs;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Deletes a partition's garbage; `held` names files this process's open snapshots read. Returns files deleted. */
export async function collectGarbage(p: Partition, nowMs: number, graceMs: number, held: (path: string) => boolean): Promise<number> {
  let deleted = 0;
  const drop = async (name: string) => {
    const path = join(p.dir, name);
    if (held(path)) return;
    await removeIfPresent(path);
    deleted += 1;
  };
  const live = new Set([...p.visible, ...Object.values(p.manifest.summaries ?? {})]);
  for (const name of p.names) {
    if (live.has(name)) continue;
    const replacedAt = p.manifest.replaced[name];
    if (replacedAt !== undefined) {
      if (nowMs - replacedAt >= graceMs) await drop(name);
      continue;
    }
    const kind = kindOf(name);
    // One of a newer generation belongs to a compaction still running; one of the manifest's own
    // generation that it does not name, to one that lost the commit.
    const leftOver = kind === 'temp' || ((kind === 'compacted' || kind === 'summary') && genOf(name) <= p.manifest.gen);
    if (leftOver && ((await ageMs(join(p.dir, name), nowMs)) ?? 0) >= graceMs) await drop(name);
  }
  return deleted;
}
