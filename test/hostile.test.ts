import { once } from 'node:events';
import { get as httpGet, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { type AddressInfo, connect, type Socket } from 'node:net';
import fc from 'fast-check';
import type { InjectOptions } from 'fastify';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/app.js';
import { openContext } from '../src/context.js';
import { type ErrorCode, errorCatalogue } from '../src/errors.js';
import { MAX_JSON_DEPTH } from '../src/http/json-body.js';
import { dropTestData, eventually, type Mode, openTestApp, type TestApp, testConfig, testContextOptions, uniqueName } from './helpers.js';
import { listRoutes, type RouteEntry } from './routes.js';

// Every hostile request gets a contract 4xx (API.md "Errors"): never a 500, never a hang, never
// a half-stored write. Fixed cases first (over a real socket where Node answers before Fastify),
// then a fuzz test over every route the app registered.

const ADMIN_TOKEN = 'admin-token-for-hostile-tests';
const REQUEST_TIMEOUT_MS = 500;

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** The contract's error body, with the catalogue's status for its code. */
function expectContractError(answer: Answer, code: ErrorCode): void {
  expect(answer.status).toBe(errorCatalogue[code].status);
  expect(answer.headers['content-type']).toMatch(/^application\/json/);
  const body = JSON.parse(answer.body) as { error: { code: string; message: string; path?: string } };
  expect(body.error.code).toBe(code);
  expect(body.error.message.length).toBeGreaterThan(0);
  expect(Object.keys(body)).toEqual(['error']);
}

/** Everything a raw socket receives until the server closes it; rejects after 5 s. */
function untilClosed(socket: Socket): Promise<{ received: string; ms: number }> {
  const started = Date.now();
  let received = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    received += chunk;
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`the server did not close the connection in 5 s; received ${JSON.stringify(received)}`)),
      5000,
    );
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ received, ms: Date.now() - started });
    });
  });
}

/** An HTTP answer read off a raw socket (Connection: close, Content-Length). */
function parseRaw(raw: string): Answer {
  const [head = '', body = ''] = raw.split('\r\n\r\n');
  const [statusLine = '', ...lines] = head.split('\r\n');
  const headers: IncomingHttpHeaders = {};
  for (const line of lines) {
    const i = line.indexOf(':');
    headers[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
  }
  return { status: Number(statusLine.split(' ')[1]), headers, body };
}

describe('over a real socket: answers Node or Fastify give before a route runs', () => {
  let t: TestApp;
  let port: number;
  beforeAll(async () => {
    t = await openTestApp('embedded', { TALLY_REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS) });
    await t.app.listen({ port: 0, host: '127.0.0.1' });
    port = (t.app.server.address() as AddressInfo).port;
  });
  afterAll(() => t.close());

  const open = async () => {
    const socket = connect(port, '127.0.0.1');
    await once(socket, 'connect');
    return socket;
  };

  it('cuts off a client that trickles its body, with a 408, while a live stream opened before it stays open', async () => {
    // A live stream, opened first: if the request timeout cut it, it would be cut before the trickler.
    const events: string[] = [];
    const stream = await new Promise<IncomingMessage>((resolve, reject) => {
      httpGet(`http://127.0.0.1:${port}/v1/users/u1/notifications/stream`, { headers: { authorization: t.bearer } }, resolve).on(
        'error',
        reject,
      );
    });
    expect(stream.statusCode).toBe(200);
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => events.push(chunk));
    await eventually(async () => expect(events.join('')).toContain('data: {"unread":0,'));

    const socket = await open();
    const closed = untilClosed(socket);
    const writeErrors: string[] = [];
    // Writes that race the server's close may fail; anything else would be a bug in the test.
    socket.on('error', (err: NodeJS.ErrnoException) => writeErrors.push(err.code ?? err.message));
    socket.write(
      `POST /v1/notifications HTTP/1.1\r\nHost: tally\r\nAuthorization: ${t.bearer}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{`,
    );
    const trickle = setInterval(() => {
      if (socket.writable) socket.write(' ');
    }, 50);
    const { received, ms } = await closed;
    clearInterval(trickle);
    expect(writeErrors.every((code) => code === 'EPIPE' || code === 'ECONNRESET')).toBe(true);
    // Node checks every quarter of the timeout: cut between the timeout and 1.25 times it (plus a
    // loaded machine's lateness).
    expect(ms).toBeGreaterThanOrEqual(REQUEST_TIMEOUT_MS - 20);
    expect(ms).toBeLessThan(REQUEST_TIMEOUT_MS * 1.25 + 1000);
    const answer = parseRaw(received);
    expectContractError(answer, 'request_timeout');
    expect(answer.headers['connection']).toBe('close');

    // The stream outlived the sweep that cut the trickler, and still delivers.
    const created = await t.app.inject({
      method: 'POST',
      url: '/v1/notifications',
      headers: { authorization: t.bearer },
      payload: { userId: 'u1', title: 'hi' },
    });
    expect(created.statusCode).toBe(201);
    await eventually(async () => expect(events.join('')).toContain('data: {"unread":1,'));
    expect(stream.destroyed).toBe(false);
    stream.destroy();
  });

  it('answers oversized headers with a 431 in the contract shape and closes', async () => {
    const socket = await open();
    const closed = untilClosed(socket);
    socket.write(`GET /healthz HTTP/1.1\r\nHost: tally\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
    expectContractError(parseRaw((await closed).received), 'headers_too_large');
  });

  it('answers bytes that are not HTTP with a 400 in the contract shape and closes', async () => {
    const socket = await open();
    const closed = untilClosed(socket);
    socket.write('HELLO THERE\r\n\r\n');
    expectContractError(parseRaw((await closed).received), 'invalid_request');
  });

  it('answers a path parameter over the limit with a 414 that does not echo the URL', async () => {
    const socket = await open();
    const closed = untilClosed(socket);
    const secret = 'x'.repeat(3000);
    socket.write(`GET /v1/users/${secret}/notifications/count HTTP/1.1\r\nHost: tally\r\nConnection: close\r\n\r\n`);
    const { received } = await closed;
    expectContractError(parseRaw(received), 'uri_too_long');
    expect(received).not.toContain('xxxxxxxxxx');
  });
});

describe('fixed hostile requests', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await openTestApp('embedded', { ADMIN_TOKEN });
  });
  afterAll(() => t.close());

  const inject = async (opts: InjectOptions): Promise<Answer> => {
    const res = await t.app.inject(opts);
    return { status: res.statusCode, headers: res.headers as IncomingHttpHeaders, body: res.body };
  };

  it.each([
    ['/v1/track', 'application/json'],
    ['/v1/batch', 'text/plain'],
    ['/v1/notifications', 'application/json'],
    ['/v1/sites', 'application/json'],
    ['/api/event', 'application/json'],
  ])('refuses JSON nested hundreds or thousands of levels deep on %s (%s) as invalid_json', async (url, type) => {
    const depth = url === '/v1/sites' ? 600 : 5000;
    // Inside the route's size limit, so the depth is what is refused.
    const body = '{"a":'.repeat(depth) + '1' + '}'.repeat(depth);
    const answer = await inject({
      method: 'POST',
      url,
      headers: { authorization: url === '/v1/sites' ? `Bearer ${ADMIN_TOKEN}` : t.basic, 'content-type': type },
      payload: body,
    });
    expectContractError(answer, 'invalid_json');
    expect(JSON.parse(answer.body).error.message).toContain(String(MAX_JSON_DEPTH));
  });

  it('accepts nesting up to the limit, brackets inside strings not counted', async () => {
    const properties = '{"a":'.repeat(MAX_JSON_DEPTH - 1) + '"[[[[{{{{"' + '}'.repeat(MAX_JSON_DEPTH - 1);
    const answer = await inject({
      method: 'POST',
      url: '/v1/notifications',
      headers: { authorization: t.bearer, 'content-type': 'application/json' },
      payload: `{"userId":"deep","title":"t","data":${properties.slice('{"a":'.length, -1)}}`,
    });
    expect(answer.status).toBe(201);
    const tooDeep = `{"userId":"deep","title":"t","data":${'{"a":'.repeat(MAX_JSON_DEPTH)}1${'}'.repeat(MAX_JSON_DEPTH)}}`;
    expectContractError(
      await inject({
        method: 'POST',
        url: '/v1/notifications',
        headers: { authorization: t.bearer, 'content-type': 'application/json' },
        payload: tooDeep,
      }),
      'invalid_json',
    );
  });

  it.each([
    ['period=custom', '/from'],
    ['period=custom&from=2024-01-01', '/to'],
    ['period=custom&from=2024-02-01&to=2024-01-01', '/to'],
    ['period=custom&from=2020-01-01&to=2024-01-01', '/to'],
    ['from=2024-01-01&to=2024-01-02', '/from'],
  ])('answers GET /v1/stats/stream?%s with a 400 before the stream opens', async (query, path) => {
    const answer = await inject({ method: 'GET', url: `/v1/stats/stream?${query}`, headers: { authorization: t.bearer } });
    expectContractError(answer, 'invalid_request');
    expect(JSON.parse(answer.body).error.path).toBe(path);
  });

  it.each([
    ['a NUL', '{"name":"shop\\u0000"}'],
    ['an unpaired high surrogate', '{"name":"shop\\ud800x"}'],
    ['an unpaired low surrogate', '{"name":"shop\\udc00"}'],
  ])('refuses a site name with %s as a 400, and stores no site', async (_label, payload) => {
    const before = await t.ctx.sites.count();
    const answer = await inject({
      method: 'POST',
      url: '/v1/sites',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      payload,
    });
    expectContractError(answer, 'invalid_request');
    expect(JSON.parse(answer.body).error.path).toBe('/name');
    expect(await t.ctx.sites.count()).toBe(before);
  });

  it.each([
    ['/v1/sites', { name: 12345 }, 'invalid_request', '/name'],
    ['/v1/notifications', { userId: 5, title: 'x' }, 'invalid_request', '/userId'],
    ['/v1/notifications', { userId: 'u', title: true }, 'invalid_request', '/title'],
    ['/v1/users/u/notifications/read-all', { category: 7 }, 'invalid_request', '/category'],
    ['/api/event', { n: 'pageview', u: 'https://a.example/', d: 'x', e: '5' }, 'invalid_event', '/e'],
    ['/v1/batch', { batch: [], sentAt: 5 }, 'invalid_event', '/sentAt'],
  ] as const)('never converts a JSON value of the wrong type: POST %s %j', async (url, payload, code, path) => {
    const auth = url === '/v1/sites' ? `Bearer ${ADMIN_TOKEN}` : url === '/v1/batch' || url === '/api/event' ? t.basic : t.bearer;
    const answer = await inject({ method: 'POST', url, headers: { authorization: auth }, payload });
    expectContractError(answer, code);
    expect(JSON.parse(answer.body).error.path).toBe(path);
  });

  it('still converts query strings, which are text', async () => {
    const answer = await inject({ method: 'GET', url: '/v1/stats/top?dimension=page&limit=5', headers: { authorization: t.bearer } });
    expect(answer.status).toBe(200);
    expectContractError(
      await inject({ method: 'GET', url: '/v1/stats/top?dimension=page&limit=five', headers: { authorization: t.bearer } }),
      'invalid_request',
    );
  });

  it('answers a bad %-escape, an unknown route, a wrong method, a bad media type and a bad preflight in the contract shape', async () => {
    expectContractError(
      await inject({ method: 'GET', url: '/v1/users/%E0%A4%A/notifications/count', headers: { authorization: t.bearer } }),
      'invalid_request',
    );
    expectContractError(await inject({ method: 'GET', url: '/v1/nowhere' }), 'not_found');
    const wrong = await inject({ method: 'DELETE', url: '/v1/track' });
    expectContractError(wrong, 'method_not_allowed');
    expect(wrong.headers['allow']).toBe('POST');
    const list = await inject({ method: 'PUT', url: '/v1/users/u1/notifications' });
    expectContractError(list, 'method_not_allowed');
    expect(list.headers['allow']).toBe('GET, HEAD');
    expectContractError(
      await inject({
        method: 'POST',
        url: '/v1/track',
        headers: { authorization: t.basic, 'content-type': 'application/xml' },
        payload: '<a/>',
      }),
      'unsupported_media_type',
    );
    expectContractError(await inject({ method: 'OPTIONS', url: '/v1/track', headers: { origin: 'https://a.example' } }), 'invalid_request');
    const preflight = await inject({
      method: 'OPTIONS',
      url: '/v1/track',
      headers: { origin: 'https://a.example', 'access-control-request-method': 'POST' },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers['access-control-allow-origin']).toBe('https://a.example');
  });
});

describe('under overload', () => {
  it('logs the 503s once per interval with a count, without a stack trace', async () => {
    const lines: Record<string, unknown>[] = [];
    const log = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
    const config = testConfig('embedded', { TALLY_STREAM_MAX_BACKLOG: '100', TALLY_STREAM_SHARDS: '1', TALLY_COLLECT_RATE_LIMIT: '0' });
    const ctx = await openContext(config, log, await testContextOptions(config));
    const app = await buildApp(ctx);
    try {
      const site = await ctx.sites.create(uniqueName('site'));
      const basic = 'Basic ' + Buffer.from(`${site.writeKey}:`).toString('base64');
      const statuses: number[] = [];
      // One at a time: each request is its own stream entry, so the backlog fills after 100.
      for (let i = 0; i < 130; i++) {
        const res = await app.inject({
          method: 'POST',
          url: '/v1/track',
          headers: { authorization: basic },
          payload: { userId: `u${i}`, event: 'E' },
        });
        statuses.push(res.statusCode);
        if (res.statusCode === 503) expect(res.json().error.code).toBe('overloaded');
      }
      expect(statuses.filter((s) => s === 200)).toHaveLength(100);
      expect(statuses.filter((s) => s === 503)).toHaveLength(30);
      const refusals = () => lines.filter((l) => l['code'] === 'overloaded');
      expect(refusals().map((l) => l['count'])).toEqual([1]);
      await app.close();
      // Closing reports the rest of the interval's count.
      expect(refusals().map((l) => l['count'])).toEqual([1, 29]);
      expect(lines.some((l) => l['err'] !== undefined || JSON.stringify(l).includes('    at '))).toBe(false);
    } finally {
      await app.close();
      await ctx.close();
      await dropTestData(config);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// The fuzz test: random requests to every route, over a real socket.

interface FuzzRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: string | undefined;
}

const FIELD_NAMES = [
  'userId',
  'anonymousId',
  'title',
  'name',
  'batch',
  'event',
  'type',
  'writeKey',
  'category',
  'before',
  'n',
  'u',
  'd',
  'p',
  'user_id',
  'product_id',
  'notifications',
  'data',
  'properties',
  'messageId',
  'context',
  'timestamp',
  'id',
  'e',
  'sd',
] as const;

/** Strings that PostgreSQL cannot store, or that are huge, or that look like ids. */
const hostileString = fc.oneof(
  fc.string({ maxLength: 20 }),
  fc.constantFrom('\u0000', 'a\u0000b', '\ud800', 'x\udc00', '\udbff\udfff', '💥', '', ' ', '__proto__', '../../etc'),
  fc.integer({ min: 200, max: 40_000 }).map((n) => 'z'.repeat(n)),
);
const wrongValue = fc.oneof(
  hostileString,
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 4 }),
  fc.dictionary(fc.constantFrom(...FIELD_NAMES), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 4 }),
);
/** Nested past the limit, as the whole body or as the value of a field a route accepts any JSON in. */
const deepJson = fc
  .tuple(
    fc.integer({ min: MAX_JSON_DEPTH + 1, max: 20_000 }),
    fc.constantFrom('[', '{"a":'),
    fc.constantFrom('data', 'properties', 'context', 'traits', 'props', 'batch'),
    fc.boolean(),
  )
  .map(([depth, open, field, inField]) => {
    const deep = open.repeat(depth) + '1' + (open === '[' ? ']' : '}').repeat(depth);
    const value =
      field === 'batch' ? `[{"type":"track","userId":"u1","event":"E","properties":${deep}}]` : open === '[' ? `{"x":${deep}}` : deep;
    return inField ? `{"userId":"u1","title":"t","event":"E","n":"E","u":"https://a.example/","d":"x","${field}":${value}}` : deep;
  });
const body = fc.oneof(
  { weight: 1, arbitrary: fc.constant(undefined) },
  { weight: 4, arbitrary: fc.dictionary(fc.constantFrom(...FIELD_NAMES), wrongValue, { maxKeys: 6 }).map((o) => JSON.stringify(o)) },
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)) },
  { weight: 3, arbitrary: deepJson },
  {
    weight: 1,
    arbitrary: fc.constantFrom('', '{', '{"a":', 'null', '[1,]', '{"__proto__":{"x":1}}', '\u0000', 'not json', '{"a":"\\ud800"}'),
  },
);

const paramValue = fc.oneof(
  fc.constantFrom('u1', 'n1', 'p1', '%00', '%zz', '%E0%A4', '%', '%ED%A0%80', '..', '%2F', '%F0%9F%92%A5'),
  fc.string({ maxLength: 30 }).map((s) => encodeURIComponent(s.replace(/[\ud800-\udfff]/g, ''))),
  fc.integer({ min: 250, max: 5000 }).map((n) => 'q'.repeat(n)),
);
const QUERY_KEYS = [
  'period',
  'from',
  'to',
  'limit',
  'dimension',
  'metric',
  'interval',
  'format',
  'status',
  'category',
  'cursor',
  'token',
  'x',
];
const queryValue = fc.oneof(
  fc.constantFrom('custom', 'today', '7d', '2024-01-01', '2020-01-01', 'csv', 'page', 'minute', '-1', '0', '99999', '%zz', '%00', 'unread'),
  fc.string({ maxLength: 12 }).map((s) => encodeURIComponent(s.replace(/[\ud800-\udfff]/g, ''))),
);
const query = fc
  .array(fc.tuple(fc.constantFrom(...QUERY_KEYS), queryValue), { maxLength: 4 })
  .map((pairs) => (pairs.length === 0 ? '' : '?' + pairs.map(([k, v]) => `${k}=${v}`).join('&')));

/** Header values Node's client accepts (visible ASCII and spaces). */
const headerText = fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength: 40 });

function fuzzRequest(routes: readonly RouteEntry[], keys: { basic: string; bearer: string }): fc.Arbitrary<FuzzRequest> {
  return fc
    .record({
      route: fc.constantFrom(...routes),
      // Mostly the route's own method (null), sometimes another.
      method: fc.oneof(
        { weight: 3, arbitrary: fc.constant(null) },
        { weight: 1, arbitrary: fc.constantFrom('GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'HEAD', 'PROPFIND') },
      ),
      params: fc.array(paramValue, { minLength: 4, maxLength: 4 }),
      suffix: fc.constantFrom('', '', '', '/', '/x', '%zz', '//'),
      query,
      auth: fc.constantFrom(
        undefined,
        keys.basic,
        keys.basic,
        keys.bearer,
        keys.bearer,
        `Bearer ${ADMIN_TOKEN}`,
        'Bearer nope',
        'Basic !!!',
        'Basic ',
      ),
      contentType: fc.constantFrom(
        undefined,
        'application/json',
        'application/json',
        'text/plain',
        'text/plain;charset=UTF-8',
        'application/xml',
        'multipart/form-data; boundary=x',
        'application/x-www-form-urlencoded',
        'application/json; charset=utf-16',
        'nonsense',
      ),
      extra: fc.dictionary(
        fc.constantFrom(
          'x-a',
          'accept',
          'origin',
          'accept-encoding',
          'if-none-match',
          'x-forwarded-for',
          'user-agent',
          'access-control-request-method',
        ),
        headerText,
        { maxKeys: 3 },
      ),
      bigHeader: fc.oneof({ weight: 30, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.integer({ min: 17_000, max: 40_000 }) }),
      body,
    })
    .map(({ route, method, params, suffix, query, auth, contentType, extra, bigHeader, body }) => {
      let i = 0;
      const path = route.url.replace(/:\w+/g, () => params[i++ % params.length] ?? 'x') + suffix + query;
      const headers: Record<string, string> = { ...extra };
      if (auth !== undefined) headers['authorization'] = auth;
      if (contentType !== undefined) headers['content-type'] = contentType;
      if (bigHeader !== null) headers['x-big'] = 'b'.repeat(bigHeader);
      // Framed by length: Node's client would send a HEAD or GET body unframed otherwise.
      if (body !== undefined) headers['content-length'] = String(Buffer.byteLength(body));
      return { method: method ?? route.method, path, headers, body };
    });
}

/** Sends one request over a new connection; resolves with the answer (a live stream: its head only) within 5 s. */
function send(port: number, req: FuzzRequest): Promise<{ status: number; headers: IncomingHttpHeaders; body: string; ms: number }> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      client.destroy();
      reject(new Error(`no answer within 5 s to ${req.method} ${req.path.slice(0, 200)}`));
    }, 5000);
    const client = httpRequest(
      { host: '127.0.0.1', port, method: req.method, path: req.path, headers: req.headers, agent: false },
      (res) => {
        const done = (body: string) => {
          clearTimeout(timer);
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, ms: Date.now() - started });
        };
        if (String(res.headers['content-type']).startsWith('text/event-stream')) {
          res.destroy();
          done('');
          return;
        }
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          text += chunk;
        });
        res.on('end', () => done(text));
      },
    );
    client.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    if (req.body !== undefined) client.end(req.body);
    else client.end();
  });
}

/** What must not change when a request is refused: sites, notifications, the ingestion backlog. */
async function storedState(t: TestApp): Promise<string> {
  const rows = await t.ctx.db.query<{ sites: string; notifications: string }>(
    'SELECT (SELECT count(*) FROM sites)::text AS sites, (SELECT count(*) FROM notifications)::text AS notifications',
  );
  const backlog: number[] = [];
  for (let shard = 0; shard < t.ctx.config.streamShards; shard++) backlog.push(await t.ctx.realtime.queue.length(t.ctx.keys.stream(shard)));
  return JSON.stringify({ ...rows.rows[0], backlog });
}

function fuzzEveryRoute(mode: Mode, numRuns: number) {
  describe(`fuzz: every route, hostile input (${mode})`, () => {
    let t: TestApp;
    let port: number;
    beforeAll(async () => {
      t = await openTestApp(mode, { ADMIN_TOKEN, TALLY_COLLECT_RATE_LIMIT: '0' });
      await t.app.listen({ port: 0, host: '127.0.0.1' });
      port = (t.app.server.address() as AddressInfo).port;
    });
    afterAll(() => t.close());

    it('answers only 2xx or a catalogue 4xx in the contract shape, within 5 s, and stores nothing it refused', async () => {
      const routes = listRoutes(t.app);
      expect(routes.length).toBeGreaterThan(30);
      const seen = new Map<number, number>();
      await fc.assert(
        fc.asyncProperty(fuzzRequest(routes, { basic: t.basic, bearer: t.bearer }), async (req) => {
          const before = await storedState(t);
          const answer = await send(port, req);
          seen.set(answer.status, (seen.get(answer.status) ?? 0) + 1);
          expect(answer.ms).toBeLessThan(5000);
          if (answer.status < 400) {
            expect([200, 201, 202, 204, 304]).toContain(answer.status);
            return;
          }
          expect(answer.status).toBeLessThan(500);
          if (req.method !== 'HEAD') {
            const parsed = JSON.parse(answer.body) as { error: { code: ErrorCode; message: string; path?: string } };
            expect(Object.keys(parsed)).toEqual(['error']);
            const { code, message, path, ...rest } = parsed.error;
            expect(rest).toEqual({});
            expect(errorCatalogue[code]?.status).toBe(answer.status);
            expect(typeof message).toBe('string');
            if (path !== undefined) expect(path).toMatch(/^(\/[^/]*)*$/);
          }
          expect(await storedState(t)).toBe(before);
        }),
        { seed: 0x7a11, numRuns, interruptAfterTimeLimit: 100_000, markInterruptAsFailure: true },
      );
      // The input reached past the front door: refusals of several kinds.
      expect([...seen.keys()].filter((s) => s >= 400).length).toBeGreaterThanOrEqual(6);
    }, 150_000);
  });
}

fuzzEveryRoute('embedded', 1000);
fuzzEveryRoute('external', 300);
