import { once } from 'node:events';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/app.js';
import { redactUrl } from '../src/http/request-log.js';
import { type Mode, openTestApp, type TestApp, uniqueName } from './helpers.js';

// What a browser needs of the inbox routes (issue 14, "browser-ready"): the stream opened by an
// EventSource with the user token in the query string (there only, and never logged), CORS for
// every method a user token uses, empty bodies on action POSTs and DELETE, one notification by
// id, and JSON bodies taken as sent (a number where a string is due is a 400 with its path).

describe.each<Mode>(['external', 'embedded'])('inbox routes from a browser (%s)', (mode) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await openTestApp(mode);
  });
  afterAll(async () => {
    await t?.close();
  });

  const send = async (
    method: 'GET' | 'POST' | 'DELETE' | 'PUT',
    url: string,
    options: { auth?: string | null; payload?: string | Record<string, unknown>; contentType?: string } = {},
  ) => {
    const headers: Record<string, string> = {};
    const auth = options.auth === undefined ? t.bearer : options.auth;
    if (auth !== null) headers['authorization'] = auth;
    if (options.contentType) headers['content-type'] = options.contentType;
    const res = await t.app.inject({
      method,
      url,
      headers,
      ...(options.payload === undefined ? {} : { payload: options.payload }),
    });
    return { status: res.statusCode, body: res.body ? (res.json() as Record<string, any>) : {}, headers: res.headers };
  };
  const create = async (userId: string, title = 'Hello') =>
    (await send('POST', '/v1/notifications', { payload: { userId, title } })).body as { id: string };
  const tokenOf = async (userId: string): Promise<string> => (await send('POST', `/v1/users/${userId}/token`)).body['token'];

  /** Opens a stream over a real socket; resolves with the status and, for a 200, the first pushed value. */
  async function openStream(app: FastifyInstance, path: string, headers: Record<string, string> = {}) {
    const address = app.server.listening ? app.listeningOrigin : await app.listen({ port: 0, host: '127.0.0.1' });
    const req = httpRequest(`${address}${path}`, { headers });
    req.end();
    const [res] = (await once(req, 'response')) as [IncomingMessage];
    if (res.statusCode !== 200) {
      let text = '';
      for await (const chunk of res) text += chunk;
      return { status: res.statusCode, body: JSON.parse(text) as Record<string, any> };
    }
    res.setEncoding('utf8');
    let buffered = '';
    for await (const chunk of res) {
      buffered += chunk;
      const data = buffered.split('\n').find((line) => line.startsWith('data: '));
      if (data && buffered.includes('\n\n', buffered.indexOf(data))) {
        req.destroy();
        return { status: 200, body: JSON.parse(data.slice(6)) as Record<string, any> };
      }
    }
    throw new Error('the stream ended before its first value');
  }

  it('opens the stream with a user token as ?token= (EventSource sends no headers); only its user, only a user token', async () => {
    const [user, other] = [uniqueName('u'), uniqueName('o')];
    await create(user);
    const token = await tokenOf(user);
    const stream = (userId: string) => `/v1/users/${userId}/notifications/stream`;
    const first = await openStream(t.app, `${stream(user)}?token=${encodeURIComponent(token)}`);
    expect(first).toMatchObject({ status: 200, body: { unread: 1 } });
    expect(await openStream(t.app, `${stream(other)}?token=${encodeURIComponent(token)}`)).toMatchObject({
      status: 404,
      body: { error: { code: 'not_found' } },
    });
    expect(await openStream(t.app, `${stream(user)}?token=${encodeURIComponent(t.site.secretKey)}`)).toMatchObject({
      status: 403,
      body: { error: { code: 'forbidden', path: '/token' } },
    });
    expect(await openStream(t.app, `${stream(user)}?token=tut_forged.sig`)).toMatchObject({ status: 401 });
    expect(await openStream(t.app, `${stream(user)}?token=`)).toMatchObject({ status: 400, body: { error: { path: '/token' } } });
    expect(await openStream(t.app, stream(user))).toMatchObject({ status: 401 });
    // A header, when sent, is what counts (as on every other route).
    expect(await openStream(t.app, `${stream(user)}?token=tut_forged.sig`, { authorization: `Bearer ${token}` })).toMatchObject({
      status: 200,
    });
  });

  it('takes no key in the query string on any other route', async () => {
    const user = uniqueName('u');
    const { id } = await create(user);
    const token = encodeURIComponent(await tokenOf(user));
    const secret = encodeURIComponent(t.site.secretKey);
    const routes: ['GET' | 'POST' | 'DELETE', string][] = [
      ['GET', `/v1/users/${user}/notifications`],
      ['GET', `/v1/users/${user}/notifications/count`],
      ['GET', `/v1/notifications/${id}`],
      ['POST', `/v1/notifications/${id}/read`],
      ['POST', `/v1/notifications/${id}/unread`],
      ['POST', `/v1/users/${user}/notifications/read-all`],
      ['GET', `/v1/users/${user}/notifications/counts`],
      ['GET', `/v1/users/${user}/preferences`],
      ['POST', `/v1/notifications/${id}/seen`],
      ['POST', `/v1/notifications/${id}/archive`],
      ['POST', `/v1/users/${user}/notifications/seen-all`],
      ['DELETE', `/v1/notifications/${id}`],
      ['GET', '/v1/stats/summary'],
      ['GET', '/v1/stats/stream'],
    ];
    for (const [method, url] of routes) {
      for (const key of [token, secret]) {
        const res = await send(method, `${url}${url.includes('?') ? '&' : '?'}token=${key}`, { auth: null });
        expect(res.status, `${method} ${url}`).toBe(401);
      }
    }
    expect((await send('GET', `/v1/notifications/${id}`)).status).toBe(200);
  });

  it('never logs the query token: the request serializer redacts it', async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _encoding, done) {
        lines.push(String(chunk));
        done();
      },
    });
    const app = await buildApp({ ...t.ctx, log: pino({ level: 'trace' }, sink) });
    // What Fastify's request logging writes for every request when it is on.
    app.addHook('onRequest', async (request) => request.log.info({ req: request }, 'incoming request'));
    try {
      const user = uniqueName('u');
      const token = await tokenOf(user);
      const opened = await openStream(app, `/v1/users/${user}/notifications/stream?a=1&token=${encodeURIComponent(token)}&TOKEN=x`);
      expect(opened.status).toBe(200);
      const logged = lines.join('');
      expect(logged).toContain('incoming request');
      expect(logged).toContain(`/v1/users/${user}/notifications/stream?a=1&token=[redacted]&token=[redacted]`);
      expect(logged).not.toContain(token.slice(4, 40));
    } finally {
      await app.close();
    }
    expect(redactUrl('/x?token=abc')).toBe('/x?token=[redacted]');
    expect(redactUrl('/x?tokens=abc&b=2')).toBe('/x?tokens=abc&b=2');
    expect(redactUrl('/x')).toBe('/x');
  });

  it('allows every method of the user-token routes across origins, without credentials', async () => {
    for (const method of ['GET', 'POST', 'PUT', 'DELETE']) {
      const res = await t.app.inject({
        method: 'OPTIONS',
        url: '/v1/notifications/n-1',
        headers: {
          origin: 'https://shop.example',
          'access-control-request-method': method,
          'access-control-request-headers': 'authorization, content-type',
        },
      });
      expect(res.statusCode, method).toBe(204);
      expect(res.headers['access-control-allow-origin']).toBe('https://shop.example');
      expect(String(res.headers['access-control-allow-methods']).split(/,\s*/)).toContain(method);
      expect(String(res.headers['access-control-allow-headers']).toLowerCase()).toMatch(/authorization.*content-type/);
      expect(res.headers['access-control-allow-credentials']).toBeUndefined();
    }
    const user = uniqueName('u');
    const get = await t.app.inject({
      method: 'GET',
      url: `/v1/users/${user}/notifications/count`,
      headers: { origin: 'https://shop.example', authorization: `Bearer ${await tokenOf(user)}` },
    });
    expect(get.statusCode).toBe(200);
    expect(get.headers['access-control-allow-origin']).toBe('https://shop.example');
    expect(get.headers['access-control-allow-credentials']).toBeUndefined();
  });

  it('takes an empty body on action POSTs and DELETE, with or without a JSON content type', async () => {
    const user = uniqueName('u');
    const token = `Bearer ${await tokenOf(user)}`;
    for (const contentType of ['application/json', 'application/json; charset=utf-8', 'text/plain', undefined]) {
      for (const auth of [t.bearer, token]) {
        const { id } = (
          await send('POST', '/v1/notifications', {
            payload: { userId: user, title: 'Act', actions: [{ id: 'ok', label: 'OK' }] },
          })
        ).body as { id: string };
        const empty = { auth, payload: '', ...(contentType ? { contentType } : {}) };
        const post = async (url: string) => {
          const res = await send('POST', url, empty);
          expect(res.status, `${url} ${contentType}`).toBe(200);
          return res.body;
        };
        expect(await post(`/v1/notifications/${id}/seen`)).toMatchObject({ changed: true, counts: { unseen: 0, unread: 1, total: 1 } });
        expect(await post(`/v1/notifications/${id}/read`)).toMatchObject({ changed: true, unread: 0 });
        expect(await post(`/v1/notifications/${id}/unread`)).toMatchObject({ changed: true, unread: 1 });
        expect(await post(`/v1/notifications/${id}/actions/ok`)).toMatchObject({ unread: 0 });
        expect(await post(`/v1/notifications/${id}/unread`)).toMatchObject({ changed: true, unread: 1 });
        expect(await post(`/v1/users/${user}/notifications/read-all`)).toMatchObject({ changed: 1, counts: { unread: 0 } });
        expect(await post(`/v1/users/${user}/notifications/seen-all`)).toMatchObject({ counts: { unseen: 0 } });
        expect(await post(`/v1/notifications/${id}/archive`)).toMatchObject({ changed: true, counts: { total: 0 } });
        expect(await post(`/v1/notifications/${id}/unarchive`)).toMatchObject({ changed: true, counts: { total: 1 } });
        expect(await post(`/v1/users/${user}/notifications/archive-all`)).toMatchObject({ changed: 1, counts: { total: 0 } });
        expect((await send('DELETE', `/v1/notifications/${id}`, empty)).body).toMatchObject({ deleted: true, unread: 0 });
      }
    }
    // A body that is there must still be JSON.
    const { id } = await create(user);
    const broken = await send('POST', `/v1/notifications/${id}/read`, { payload: '{', contentType: 'application/json' });
    expect(broken).toMatchObject({ status: 400, body: { error: { code: 'invalid_json' } } });
  });

  it('still refuses an empty or broken JSON body on every route that needs one', async () => {
    const user = uniqueName('u');
    const routes: ['POST' | 'PUT', string][] = [
      ['POST', '/v1/notifications'],
      ['POST', '/v1/notifications/batch'],
      ['POST', `/v1/users/${user}/notifications/bulk`],
      ['PUT', `/v1/users/${user}/preferences`],
    ];
    for (const [method, url] of routes) {
      for (const payload of ['', ' ', '{', 'nul']) {
        const res = await send(method, url, { payload, contentType: 'application/json' });
        expect(res, `${url} ${JSON.stringify(payload)}`).toMatchObject({ status: 400, body: { error: { code: 'invalid_json' } } });
      }
      const none = await send(method, url);
      expect(none.status, url).toBe(400);
      expect(none.body['error']['code']).toBe('invalid_request');
    }
  });

  it('answers one notification by id: the secret key, or its owner’s token; another user’s is a 404', async () => {
    const [user, other] = [uniqueName('u'), uniqueName('o')];
    const created = await create(user, 'Yours');
    const mine = await send('GET', `/v1/notifications/${created.id}`, { auth: `Bearer ${await tokenOf(user)}` });
    expect(mine.status).toBe(200);
    expect(mine.body).toEqual(created);
    expect((await send('GET', `/v1/notifications/${created.id}`)).body).toEqual(created);
    const theirs = await send('GET', `/v1/notifications/${created.id}`, { auth: `Bearer ${await tokenOf(other)}` });
    expect(theirs).toMatchObject({ status: 404, body: { error: { code: 'not_found' } } });
    expect((await send('GET', '/v1/notifications/no-such-id')).status).toBe(404);
    expect((await send('GET', `/v1/notifications/${created.id}`, { auth: null })).status).toBe(401);
    expect((await send('GET', '/v1/notifications/a%00b')).body['error']).toMatchObject({ code: 'invalid_request', path: '/id' });
  });

  it('takes JSON bodies as sent: a number or boolean where a string is due is a 400 with its path', async () => {
    const user = uniqueName('u');
    const cases: [string, Record<string, unknown>, string][] = [
      ['/v1/notifications', { userId: user, title: 42 }, '/title'],
      ['/v1/notifications', { userId: 7, title: 't' }, '/userId'],
      ['/v1/notifications', { userId: user, title: 't', body: 5 }, '/body'],
      ['/v1/notifications', { userId: user, title: 't', category: true }, '/category'],
      ['/v1/notifications', { userId: user, title: 't', id: 12 }, '/id'],
      ['/v1/notifications', { userId: user, title: ['t'] }, '/title'],
      ['/v1/notifications/batch', { notifications: [{ userId: user, title: 1 }] }, '/notifications/0/title'],
      ['/v1/notifications/batch', { notifications: { userId: user, title: 't' } }, '/notifications'],
      [`/v1/users/${user}/notifications/read-all`, { category: 5 }, '/category'],
      [`/v1/users/${user}/notifications/read-all`, { before: 1 }, '/before'],
      [`/v1/users/${user}/notifications/seen-all`, { tenant: 3 }, '/tenant'],
      [`/v1/users/${user}/notifications/archive-all`, { category: false }, '/category'],
      [`/v1/users/${user}/notifications/bulk`, { ids: [1], action: 'read' }, '/ids/0'],
      [`/v1/users/${user}/notifications/bulk`, { ids: 'n-1', action: 'read' }, '/ids'],
      ['/v1/notifications', { userId: user, title: 't', tenant: 9 }, '/tenant'],
      ['/v1/notifications', { userId: user, title: 't', actionUrl: 1 }, '/actionUrl'],
      ['/v1/notifications', { userId: user, title: 't', actions: [{ id: 1, label: 'x' }] }, '/actions/0/id'],
      ['/v1/notifications', { userId: user, title: 't', expiresAt: 1_900_000_000 }, '/expiresAt'],
    ];
    for (const [url, payload, path] of cases) {
      const res = await send('POST', url, { payload });
      expect(res.status, `${url} ${JSON.stringify(payload)}`).toBe(400);
      expect(res.body['error']).toMatchObject({ code: 'invalid_request', path });
    }
    for (const in_app of ['false', 0, null]) {
      const res = await send('PUT', `/v1/users/${user}/preferences`, { payload: { categories: { marketing: { in_app } } } });
      expect(res.status, JSON.stringify(in_app)).toBe(400);
      expect(res.body['error']).toMatchObject({ code: 'invalid_request', path: '/categories/marketing/in_app' });
    }
    expect((await send('GET', `/v1/users/${user}/notifications`)).body['items']).toEqual([]);
    expect((await send('GET', `/v1/users/${user}/preferences`)).body['categories']['marketing']).toBeUndefined();
  });
});
