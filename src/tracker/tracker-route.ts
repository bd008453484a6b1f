import { readFileSync } from 'node:fs';
import { transformSync } from 'esbuild';
import type { FastifyInstance } from 'fastify';
import { type CompressedScript, compressScript, sendScript } from '../http/compressed-script.js';

// GET /t.js — the browser tracker. The script is plain JavaScript kept as written in
// src/tracker/t.js (the build compiles TypeScript only): it is read from there both when running
// from src/ (tsx) and from dist/ (both sit two levels below the package root). It loads on every
// page of a site, so it is minified, then gzipped and brotli-compressed, once at start.

const SCRIPT_PATH = new URL('../../src/tracker/t.js', import.meta.url);

export interface TrackerBuild {
  /** Minified; what every variant decodes to. */
  minified: string;
  variants: CompressedScript;
}

/** Minifies and compresses the tracker (at start: a few milliseconds, once). */
export function buildTracker(source: string): TrackerBuild {
  // The header comment is documentation for readers of t.js, not a licence: dropped. ES2015 is
  // the oldest syntax the script itself uses, so minifying adds nothing newer.
  const minified = transformSync(source, { loader: 'js', minify: true, legalComments: 'none', target: 'es2015' }).code;
  return { minified, variants: compressScript(minified) };
}

export function registerTrackerRoute(app: FastifyInstance): void {
  const tracker = buildTracker(readFileSync(SCRIPT_PATH, 'utf8'));
  app.get('/t.js', async (request, reply) => sendScript(request, reply, tracker.variants, 'application/javascript; charset=utf-8'));
}
