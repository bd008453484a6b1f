import type { FastifyInstance, FastifyRequest } from 'fastify';
import { TallyError } from '../errors.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * The route's body is optional, and an empty one is no body even when labelled JSON: browser
     * and client wrappers (fetch helpers, axios, ky) send `Content-Type: application/json` with
     * nothing after it on action POSTs and DELETEs.
     */
    acceptsEmptyBody?: boolean;
  }
}

// JSON bodies, depth first. A body of a few hundred KB can nest arrays thousands of levels deep;
// JSON.parse copes, but everything after it that walks the value recursively (JSON.stringify,
// the storable-text check, the processor) would overflow the stack and answer 500. So the
// nesting is measured before parsing, by a scan that skips strings, and a body nested deeper
// than anything Tally stores is refused as invalid_json.

/** Deepest nesting of arrays and objects a body may have (Segment messages use 4 or 5 levels). */
export const MAX_JSON_DEPTH = 64;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACE = 0x7d;
const CLOSE_BRACKET = 0x5d;

/** True when the text nests arrays and objects deeper than maxDepth (brackets inside strings do not count). */
export function jsonDeeperThan(text: string, maxDepth: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
    } else if (c === QUOTE) {
      inString = true;
    } else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      if (++depth > maxDepth) return true;
    } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
      depth--;
    }
  }
  return false;
}

export const tooDeep = (): TallyError =>
  new TallyError('invalid_json', `The JSON nests arrays and objects deeper than ${MAX_JSON_DEPTH} levels.`);

type Done = (err: Error | null, body?: unknown) => void;

/** Fastify's own JSON parser (prototype poisoning refused), once the depth is known to be safe. */
export function createJsonParser(app: FastifyInstance) {
  // Fastify's default parser takes a callback (its type also allows a promise-returning one).
  const parse = app.getDefaultJsonParser('error', 'ignore') as (request: FastifyRequest, body: string, done: Done) => void;
  return (request: FastifyRequest, body: string, done: Done) => {
    if (body.trim() === '' && request.routeOptions.config.acceptsEmptyBody === true) return done(null, undefined);
    if (jsonDeeperThan(body, MAX_JSON_DEPTH)) return done(tooDeep(), undefined);
    return parse(request, body, done);
  };
}

/** application/json, and text/plain parsed as JSON (navigator.sendBeacon posts text/plain). */
export function registerJsonBodies(app: FastifyInstance): void {
  const parser = createJsonParser(app);
  app.addContentTypeParser('application/json', { parseAs: 'string' }, parser);
  app.addContentTypeParser('text/plain', { parseAs: 'string' }, parser);
}
