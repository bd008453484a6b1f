import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import swagger from '@fastify/swagger';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import Type from 'typebox';
import { errorCatalogue } from '../errors.js';

// GET /openapi.json — the OpenAPI 3.1 document of every route, built by @fastify/swagger from
// the routes' own schemas (the ones that validate requests and serialize answers), so it cannot
// drift from what the server does. GET /docs — the same document as a readable page: plain
// files in src/api-docs/ (the build compiles TypeScript only; read from src/ whether running from
// src/ or dist/, like the dashboard), no CDN: the page works where the server has no internet.

const DIR = new URL('../../src/api-docs/', import.meta.url);
const PACKAGE = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  version: string;
  description: string;
};

/** The body of every error answer (API.md "Errors"). */
export const ErrorBody = Type.Object({
  error: Type.Object({
    code: Type.Enum(Object.keys(errorCatalogue)),
    message: Type.String(),
    path: Type.Optional(Type.String({ description: 'JSON pointer of the bad field, when there is one' })),
  }),
});

/** Groups of the reference, by path. */
function tagOf(url: string): string {
  if (url.startsWith('/v1/stats') || url.startsWith('/v1/goals') || url.startsWith('/user/') || url.endsWith('/events')) return 'Stats';
  if (url.startsWith('/v1/sites') || url.endsWith('/token')) return 'Sites and keys';
  if (url.includes('notifications')) return 'Notifications';
  if (url.startsWith('/v1/') || url === '/click' || url === '/api/event') return 'Collect';
  return 'Operations and pages';
}

/** Registers the document's collector; it must come before the routes it describes. */
export async function registerOpenApi(app: FastifyInstance): Promise<void> {
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: 'Tally', version: PACKAGE.version, description: PACKAGE.description },
      components: {
        securitySchemes: {
          writeKey: {
            type: 'http',
            scheme: 'basic',
            description: 'The write key as the user name, empty password (or `writeKey` in the body).',
          },
          secretKey: {
            type: 'http',
            scheme: 'bearer',
            description: "The site's secret key, or a user token where the route names that user.",
          },
        },
      },
    },
    // Every operation documents the error body; a route's own 4xx/5xx schemas, if any, win. A
    // route without a schema for its success still says it has one.
    transform: ({ schema, url }) => {
      const own = (schema?.response ?? {}) as Record<string, unknown>;
      const success = Object.keys(own).some((status) => status.startsWith('2')) ? {} : { '2XX': { description: 'Success' } };
      const response = { ...success, '4XX': ErrorBody, '5XX': ErrorBody, ...own };
      return { schema: { ...schema, tags: [tagOf(url)], response }, url };
    },
  });
}

const hash = (text: string) => createHash('sha256').update(text).digest('base64url').slice(0, 22);

/** Only this page's own script and style, and same-origin fetches: document text never runs. */
const DOCS_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

interface Served {
  body: string;
  type: string;
  etag: string;
}

function send(request: FastifyRequest, reply: FastifyReply, file: Served) {
  reply.header('cache-control', 'no-cache').header('etag', file.etag).header('x-content-type-options', 'nosniff');
  const given = request.headers['if-none-match'];
  if (given?.split(',').some((tag) => tag.trim() === file.etag)) return reply.code(304).send();
  return reply.type(file.type).send(file.body);
}

export function registerApiDocsRoutes(app: FastifyInstance): void {
  const file = (name: string, type: string): Served => {
    const body = readFileSync(new URL(name, DIR), 'utf8');
    return { body, type, etag: `"${hash(body)}"` };
  };
  const page = file('docs.html', 'text/html; charset=utf-8');
  const script = file('docs.js', 'application/javascript; charset=utf-8');
  const style = file('docs.css', 'text/css; charset=utf-8');

  app.get('/openapi.json', { schema: { summary: 'This document: the OpenAPI 3.1 description of every route' } }, async () => app.swagger());
  app.get('/docs', { schema: { summary: 'The API reference, readable (rendered from /openapi.json)' } }, async (request, reply) => {
    reply.header('content-security-policy', DOCS_CSP);
    return send(request, reply, page);
  });
  app.get('/docs/docs.js', { schema: { summary: "The reference page's script" } }, async (request, reply) => send(request, reply, script));
  app.get('/docs/docs.css', { schema: { summary: "The reference page's style sheet" } }, async (request, reply) =>
    send(request, reply, style),
  );
}
