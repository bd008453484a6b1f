import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { brotliCompressSync, constants, gzipSync } from 'node:zlib';
import { transformSync } from 'esbuild';
import type { FastifyInstance, FastifyRequest } from 'fastify';

// GET /t.js — the browser tracker. The script is plain JavaScript kept as written in
// src/tracker/t.js (the build compiles TypeScript only): it is read from there both when running
// from src/ (tsx) and from dist/ (both sit two levels below the package root). It loads on every
// page of a site, so it is minified, then gzipped and brotli-compressed, once at start, and each
// browser gets the smallest encoding its Accept-Encoding allows.

const SCRIPT_PATH = new URL('../../src/tracker/t.js', import.meta.url);

/** Browsers and CDNs may keep it an hour, then revalidate with the ETag (a 304 costs nothing). */
export const TRACKER_CACHE_CONTROL = 'public, max-age=3600, stale-while-revalidate=86400';

export type TrackerEncoding = 'br' | 'gzip' | 'identity';

interface Variant {
  body: Buffer;
  /** Differs per encoding: a strong ETag names one exact sequence of bytes. */
  etag: string;
}

export interface TrackerBuild {
  /** Minified; what every variant decodes to. */
  minified: string;
  variants: Record<TrackerEncoding, Variant>;
}

/** Minifies and compresses the tracker (at start: a few milliseconds, once). */
export function buildTracker(source: string): TrackerBuild {
  // The header comment is documentation for readers of t.js, not a licence: dropped. ES2015 is
  // the oldest syntax the script itself uses, so minifying adds nothing newer.
  const minified = transformSync(source, { loader: 'js', minify: true, legalComments: 'none', target: 'es2015' }).code;
  const raw = Buffer.from(minified);
  const hash = createHash('sha256').update(raw).digest('base64url').slice(0, 27);
  return {
    minified,
    variants: {
      br: {
        body: brotliCompressSync(raw, {
          params: {
            [constants.BROTLI_PARAM_QUALITY]: constants.BROTLI_MAX_QUALITY,
            [constants.BROTLI_PARAM_MODE]: constants.BROTLI_MODE_TEXT,
            [constants.BROTLI_PARAM_SIZE_HINT]: raw.length,
          },
        }),
        etag: `"${hash}-br"`,
      },
      gzip: { body: gzipSync(raw, { level: constants.Z_BEST_COMPRESSION }), etag: `"${hash}-gz"` },
      identity: { body: raw, etag: `"${hash}"` },
    },
  };
}

/** The encoding to send: br, then gzip, when Accept-Encoding allows it (q > 0, named or by `*`). */
export function chooseEncoding(acceptEncoding: string | undefined): TrackerEncoding {
  const weights = new Map<string, number>();
  for (const part of (acceptEncoding ?? '').split(',')) {
    const [name = '', ...params] = part.split(';').map((p) => p.trim().toLowerCase());
    if (name === '') continue;
    const q = params.find((p) => p.startsWith('q='));
    weights.set(name, q === undefined ? 1 : Number(q.slice(2)) || 0);
  }
  const allowed = (name: string) => (weights.get(name) ?? weights.get('*') ?? 0) > 0;
  if (allowed('br')) return 'br';
  if (allowed('gzip')) return 'gzip';
  return 'identity';
}

/** If-None-Match holds this ETag (compared weakly, as RFC 9110 asks for If-None-Match). */
function matches(request: FastifyRequest, etag: string): boolean {
  const given = request.headers['if-none-match'];
  return given?.split(',').some((tag) => tag.trim().replace(/^W\//, '') === etag) ?? false;
}

export function registerTrackerRoute(app: FastifyInstance): void {
  const tracker = buildTracker(readFileSync(SCRIPT_PATH, 'utf8'));

  app.get('/t.js', async (request, reply) => {
    const encoding = chooseEncoding(request.headers['accept-encoding']);
    const variant = tracker.variants[encoding];
    reply.header('cache-control', TRACKER_CACHE_CONTROL).header('etag', variant.etag).header('vary', 'Accept-Encoding');
    if (matches(request, variant.etag)) return reply.code(304).send();
    if (encoding !== 'identity') reply.header('content-encoding', encoding);
    return reply.type('application/javascript; charset=utf-8').send(variant.body);
  });
}
