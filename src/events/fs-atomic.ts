import { link, open, rename, unlink } from 'node:fs/promises';

// The file-system steps every writer of the event store uses: data reaches the disk before its
// name does, and a name appears whole (rename or link, both atomic on one file system).

/** Flushes a file's (or a folder's: its entries) data to the disk. */
export async function fsync(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Moves a finished temp file to its name (replacing nothing of value: names are unique) and makes the move durable. */
export async function publish(temp: string, final: string, folder: string): Promise<void> {
  await fsync(temp);
  await rename(temp, final);
  await fsync(folder);
}

/**
 * Gives a finished temp file its name only if no file holds that name yet (link fails with
 * EEXIST): the compare-and-set that lets one of two compactions commit a manifest generation.
 */
export async function publishIfAbsent(temp: string, final: string, folder: string): Promise<boolean> {
  await fsync(temp);
  try {
    await link(temp, final);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    await unlink(temp);
  }
  await fsync(folder);
  return true;
}

export async function removeIfPresent(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}
