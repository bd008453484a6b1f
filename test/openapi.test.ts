import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTestApp, type TestApp } from './helpers.js';
import { listRoutes } from './routes.js';

// GET /openapi.json describes every route from the routes' own schemas; GET /docs shows it.

interface Operation {
  responses?: Record<string, { content?: Record<string, Media> }>;
  requestBody?: { content?: Record<string, Media> };
  parameters?: { schema: object; example?: unknown }[];
  tags?: string[];
}
interface Media {
  schema?: object;
  example?: unknown;
  examples?: Record<string, { value: unknown }>;
}

/** Every (schema, example) pair in a schema tree: JSON Schema 2020-12 `examples` arrays. */
function schemaExamples(schema: unknown, out: [object, unknown][]): void {
  if (schema === null || typeof schema !== 'object') return;
  const examples = (schema as { examples?: unknown }).examples;
  if (Array.isArray(examples)) for (const example of examples) out.push([schema, example]);
  for (const value of Object.values(schema)) schemaExamples(value, out);
}

let t: TestApp;
let doc: { openapi: string; info: { title: string; version: string }; paths: Record<string, Record<string, Operation>> };

beforeAll(async () => {
  t = await openTestApp('embedded');
  const res = await t.app.inject({ method: 'GET', url: '/openapi.json' });
  expect(res.statusCode).toBe(200);
  expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
  doc = res.json();
});
afterAll(() => t.close());

describe('GET /openapi.json', () => {
  it('is an OpenAPI 3.1 document with info, paths and responses for each operation', () => {
    expect(doc.openapi).toMatch(/^3\.1\.\d+$/);
    expect(doc.info.title).toBe('Tally');
    expect(doc.info.version).toMatch(/^\d+\.\d+\.\d+/);
    const operations = Object.values(doc.paths).flatMap((item) => Object.values(item));
    expect(operations.length).toBeGreaterThan(30);
    for (const op of operations) {
      expect(Object.keys(op.responses ?? {}).length).toBeGreaterThan(0);
      expect(Object.keys(op.responses ?? {}).some((status) => status.startsWith('2'))).toBe(true);
      expect(op.responses?.['4XX']?.content?.['application/json']?.schema).toBeDefined();
      expect(op.tags?.length).toBe(1);
    }
  });

  it('holds every route the app registered, and only those', () => {
    const routes = listRoutes(t.app);
    expect(routes.length).toBeGreaterThan(30);
    const documented = Object.entries(doc.paths)
      .flatMap(([path, item]) => Object.keys(item).map((method) => `${method.toUpperCase()} ${path}`))
      .sort();
    // OpenAPI writes path parameters as {name}, Fastify as :name.
    const registered = routes.map((r) => `${r.method} ${r.url.replace(/:(\w+)/g, '{$1}')}`).sort();
    expect(documented).toEqual(registered);
    expect(registered).toContain('GET /openapi.json');
    expect(registered).toContain('POST /v1/users/{userId}/token');
  });

  it('has examples, and each one validates against its schema', () => {
    const ajv = addFormats.default(new Ajv2020({ strict: false, allErrors: true }));
    const pairs: [object, unknown][] = [];
    const media = (m: Media | undefined) => {
      if (!m?.schema) return;
      if (m.example !== undefined) pairs.push([m.schema, m.example]);
      for (const { value } of Object.values(m.examples ?? {})) pairs.push([m.schema, value]);
      schemaExamples(m.schema, pairs);
    };
    for (const item of Object.values(doc.paths)) {
      for (const op of Object.values(item)) {
        for (const m of Object.values(op.requestBody?.content ?? {})) media(m);
        for (const response of Object.values(op.responses ?? {})) for (const m of Object.values(response.content ?? {})) media(m);
        for (const p of op.parameters ?? []) schemaExamples(p.schema, pairs);
      }
    }
    // NewNotification (2), the batch, Success (7 collect routes), the summary, the count, the site.
    expect(pairs.length).toBeGreaterThanOrEqual(13);
    for (const [schema, example] of pairs) {
      const validate = ajv.compile(schema);
      expect({ example, valid: validate(example), errors: validate.errors ?? null }).toMatchObject({ valid: true, errors: null });
    }
    const notification = doc.paths['/v1/notifications']?.['post']?.requestBody?.content?.['application/json'];
    expect(Object.keys(notification?.examples ?? {})).toHaveLength(2);
  });

  it('rejects a bad example: the check can fail', () => {
    const ajv = new Ajv2020({ strict: false });
    const schema = doc.paths['/v1/notifications']?.['post']?.requestBody?.content?.['application/json']?.schema as object;
    expect(ajv.validate(schema, { userId: 5, title: 'x' })).toBe(false);
  });
});

describe('GET /docs', () => {
  it('is a page of this server, with its own script and style, that renders /openapi.json', async () => {
    const page = await t.app.inject({ method: 'GET', url: '/docs' });
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(page.headers['content-security-policy']).toContain("script-src 'self'");
    const scripts = [...page.body.matchAll(/src="([^"]+)"/g)].map((m) => m[1]);
    const styles = [...page.body.matchAll(/href="(\/docs\/[^"]+)"/g)].map((m) => m[1]);
    // Nothing from elsewhere: every asset is served here.
    expect(page.body).not.toMatch(/(src|href)="(https?:)?\/\//);
    expect([...scripts, ...styles]).toEqual(['/docs/docs.js', '/docs/docs.css']);
    const script = await t.app.inject({ method: 'GET', url: '/docs/docs.js' });
    expect(script.statusCode).toBe(200);
    expect(script.headers['content-type']).toBe('application/javascript; charset=utf-8');
    expect(script.body).toContain("fetch('/openapi.json')");
    expect(() => new Function(script.body)).not.toThrow();
    expect((await t.app.inject({ method: 'GET', url: '/docs/docs.css' })).statusCode).toBe(200);
  });
});
