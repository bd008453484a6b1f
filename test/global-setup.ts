import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { freshClusterImage } from '../src/storage/pglite.js';

// Once per run, before any test file: the image of a fresh PGlite cluster, on disk for every
// worker. An embedded test context starts from a copy of it instead of running initdb (seconds
// of CPU each, and the suite opens dozens); the migrations still run on each one.

declare module 'vitest' {
  export interface ProvidedContext {
    /** Path of the fresh cluster's data directory image (a tar). */
    pgliteTemplate: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const dir = await mkdtemp(join(tmpdir(), 'tally-pglite-'));
  const path = join(dir, 'fresh-cluster.tar');
  await writeFile(path, Buffer.from(await (await freshClusterImage()).arrayBuffer()));
  project.provide('pgliteTemplate', path);
  return () => rm(dir, { recursive: true, force: true });
}
