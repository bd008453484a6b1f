import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { PGlite } from '@electric-sql/pglite';
import type { TestProject } from 'vitest/node';

// Once per run, before any test file:
// - the image of a fresh PGlite cluster, on disk for every worker. An embedded test context
//   starts from a copy of it instead of running initdb (seconds of CPU each, and the suite opens
//   dozens); the migrations still run on each one.
// - dist/, built from src when it is older (scripts/build-if-stale.mjs): tests that run `tally`
//   as a process start dist/cli.js, as `npm start` does, instead of compiling src through tsx at
//   every start (seconds of CPU each, and the kill tests start dozens).

const ROOT = new URL('..', import.meta.url).pathname;

declare module 'vitest' {
  export interface ProvidedContext {
    /** Path of the fresh cluster's data directory image (a tar). */
    pgliteTemplate: string;
  }
}

/** The data directory of a fresh, empty cluster (as initdb leaves it). */
async function freshClusterImage(): Promise<Blob> {
  const db = await PGlite.create();
  try {
    return await db.dumpDataDir('none');
  } finally {
    await db.close();
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  try {
    await promisify(execFile)(process.execPath, ['scripts/build-if-stale.mjs'], { cwd: ROOT });
  } catch (err) {
    const { stdout = '', stderr = '' } = err as { stdout?: string; stderr?: string };
    throw new Error(`npm run build failed; the tests that start tally as a process run dist/cli.js:\n${stdout}${stderr}`);
  }
  const dir = await mkdtemp(join(tmpdir(), 'tally-pglite-'));
  const path = join(dir, 'fresh-cluster.tar');
  await writeFile(path, Buffer.from(await (await freshClusterImage()).arrayBuffer()));
  project.provide('pgliteTemplate', path);
  return () => rm(dir, { recursive: true, force: true });
}
