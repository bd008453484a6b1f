import { readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fsync } from './fs-atomic.js';
import { DAY_MS, dayOf, dayOfFolder, EXPIRED_MARK, sitePath } from './layout.js';

// Retention: a site keeps its events for a number of days (or forever). Whole day partitions
// go: first marked expired (readers skip a marked partition at once), then deleted a grace
// period later, so a query that listed the day before the mark still reads its files.

/** The first day a site with this retention keeps (UTC days; today counts as one). */
export const firstKeptDay = (retentionDays: number, nowMs: number) => dayOf(nowMs - (retentionDays - 1) * DAY_MS);

/** Marks and deletes a site's partitions older than its retention; returns the days deleted. */
export async function applyRetention(
  root: string,
  siteId: string,
  retentionDays: number | null,
  nowMs: number,
  graceMs: number,
): Promise<string[]> {
  if (retentionDays === null) return [];
  const first = firstKeptDay(retentionDays, nowMs);
  const site = sitePath(root, siteId);
  let folders: string[];
  try {
    folders = await readdir(site);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const deleted: string[] = [];
  for (const folder of folders) {
    const day = dayOfFolder(folder);
    if (day === undefined || day >= first) continue;
    const dir = join(site, folder);
    const mark = join(dir, EXPIRED_MARK);
    let markedAt: number | undefined;
    try {
      markedAt = (await stat(mark)).mtimeMs;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    if (markedAt === undefined) {
      await writeFile(mark, '');
      await fsync(dir);
      markedAt = nowMs;
    }
    if (nowMs - markedAt >= graceMs) {
      await rm(dir, { recursive: true, force: true });
      deleted.push(day);
    }
  }
  return deleted;
}
