import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

// GET / — the live dashboard: one HTML page with its script and style sheet, plain files kept as
// written in src/present/dashboard/ (the build compiles TypeScript only). Like the tracker, they
// are read from there both when running from src/ (tsx) and from dist/ (both sit two levels below
// the package root), once at start. The page reads the stats API with the secret key the user
// types in; it holds no data itself, so it needs no auth.

const DIR = new URL('../../src/present/dashboard/', import.meta.url);

/** Assets are named by their content hash in the page, so browsers may keep them for good. */
export const ASSET_CACHE_CONTROL = 'public, max-age=31536000, immutable';
/** The page is revalidated every time (a 304 costs nothing) so a new build is picked up at once. */
export const PAGE_CACHE_CONTROL = 'no-cache';

/** Same-origin script, style and API calls only: data shown on the page can never run as code. */
export const DASHBOARD_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self' data:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

interface Served {
  body: string;
  type: string;
  etag: string;
  cacheControl: string;
}

const hash = (text: string) => createHash('sha256').update(text).digest('base64url').slice(0, 22);

function served(body: string, type: string, cacheControl: string): Served {
  return { body, type, etag: `"${hash(body)}"`, cacheControl };
}

function send(request: FastifyRequest, reply: FastifyReply, file: Served) {
  reply
    .header('cache-control', file.cacheControl)
    .header('etag', file.etag)
    .header('x-content-type-options', 'nosniff')
    .header('referrer-policy', 'no-referrer');
  const given = request.headers['if-none-match'];
  if (given?.split(',').some((tag) => tag.trim() === file.etag)) return reply.code(304).send();
  return reply.type(file.type).send(file.body);
}

export function registerDashboardRoute(app: FastifyInstance): void {
  const read = (name: string) => readFileSync(new URL(name, DIR), 'utf8');
  const script = served(read('dashboard.js'), 'application/javascript; charset=utf-8', ASSET_CACHE_CONTROL);
  const style = served(read('dashboard.css'), 'text/css; charset=utf-8', ASSET_CACHE_CONTROL);
  const html = read('dashboard.html')
    .replace('{{script}}', `/dashboard/dashboard.js?v=${hash(script.body)}`)
    .replace('{{style}}', `/dashboard/dashboard.css?v=${hash(style.body)}`);
  const page = served(html, 'text/html; charset=utf-8', PAGE_CACHE_CONTROL);

  app.get('/', async (request, reply) => {
    reply.header('content-security-policy', DASHBOARD_CSP).header('x-frame-options', 'DENY');
    return send(request, reply, page);
  });
  app.get('/dashboard/dashboard.js', async (request, reply) => send(request, reply, script));
  app.get('/dashboard/dashboard.css', async (request, reply) => send(request, reply, style));
}
