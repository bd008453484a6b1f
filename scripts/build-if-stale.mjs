#!/usr/bin/env node
// Runs `npm run build` only when dist/ is older than what it is built from (src/, tsconfig*.json,
// package.json), so `npm start` and the benchmarks start at once when nothing changed. The build
// stamps dist/.build-stamp after it succeeded; a failed or interrupted build leaves no new stamp.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const stamp = join(root, 'dist', '.build-stamp');

/** Latest modification time of a file, or of any file under a folder. */
function newest(path) {
  const stat = statSync(path);
  if (!stat.isDirectory()) return stat.mtimeMs;
  let latest = stat.mtimeMs; // a deleted file changes its folder's mtime
  for (const entry of readdirSync(path)) latest = Math.max(latest, newest(join(path, entry)));
  return latest;
}

function stampTime() {
  try {
    return statSync(stamp).mtimeMs;
  } catch {
    return -Infinity;
  }
}

const inputs = ['src', 'package.json', ...readdirSync(root).filter((name) => /^tsconfig.*\.json$/.test(name))];
const sourcesChanged = Math.max(...inputs.map((name) => newest(join(root, name))));
if (sourcesChanged < stampTime()) process.exit(0);

const started = Date.now();
const build = spawnSync('npm', ['run', 'build', '--silent'], { cwd: root, stdio: 'inherit' });
if (build.status !== 0) process.exit(build.status ?? 1);
// Stamped with the time the build started: a source saved while tsc ran is newer, so it rebuilds next time.
writeFileSync(stamp, '');
utimesSync(stamp, started / 1000, started / 1000);
