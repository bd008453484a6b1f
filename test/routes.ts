import type { FastifyInstance } from 'fastify';

export interface RouteEntry {
  method: string;
  /** Fastify's form: /v1/users/:userId/token. */
  url: string;
}

/**
 * Every route the app registered, read from Fastify's own table (printRoutes draws it as a tree
 * of path pieces, four columns of indent a level: a child's path is its parent's plus its own).
 * HEAD routes Fastify adds for each GET and the CORS preflight route (OPTIONS *) are left out.
 */
export function listRoutes(app: FastifyInstance): RouteEntry[] {
  const out: RouteEntry[] = [];
  const stack: { depth: number; path: string }[] = [];
  for (const line of app.printRoutes({ commonPrefix: false }).split('\n')) {
    const match = /^([│ ]*)[├└]── (.+) \(([A-Z, ]+)\)$/.exec(line);
    if (!match) continue;
    const depth = (match[1] ?? '').length / 4;
    while (stack.length > depth) stack.pop();
    const piece = match[2] ?? '';
    const parent = stack.at(-1)?.path ?? '';
    const path = parent === '' ? piece : parent === '/' ? `/${piece}` : parent + piece;
    stack.push({ depth, path });
    for (const method of (match[3] ?? '').split(', ')) {
      if (method === 'HEAD' || path === '*') continue;
      out.push({ method, url: path });
    }
  }
  return out;
}
