import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';

// GET /t.js — the browser tracker. The script is plain JavaScript kept as written in
// src/tracker/t.js (the build compiles TypeScript only): it is read from there both when running
// from src/ (tsx) and from dist/ (both sit two levels below the package root).

const SCRIPT_PATH = new URL('../../src/tracker/t.js', import.meta.url);

/** Browsers and CDNs may keep it an hour, then revalidate with the ETag (a 304 costs nothing). */
export const TRACKER_CACHE_CONTROL = 'public, max-age=3600, stale-while-revalidate=86400';

export function registerTrackerRoute(app: FastifyInstance): void {
  const script = readFileSync(SCRIPT_PATH, 'utf8');
  const etag = `"${createHash('sha256').update(script).digest('base64url').slice(0, 27)}"`;

  app.get('/t.js', async (request, reply) => {
    reply.header('cache-control', TRACKER_CACHE_CONTROL).header('etag', etag);
    const given = request.headers['if-none-match'];
    if (given?.split(',').some((tag) => tag.trim() === etag)) return reply.code(304).send();
    return reply.type('application/javascript; charset=utf-8').send(script);
  });
}
