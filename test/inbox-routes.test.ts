import { once } from 'node:events';
import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFlusher } from '../src/counters/flusher.js';
import { LIMITS } from '../src/inbox/inbox-schemas.js';
import { inboxTargets } from '../src/inbox/unread-flush.js';
import { eventually, type Mode, openTestApp, type TestApp, uniqueName } from './helpers.js';

// The notification routes of API.md, on Redis + PostgreSQL and on the embedded default.

describe.each<Mode>(['external', 'embedded'])('notification routes (%s)', (mode) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await openTestApp(mode);
  });
  afterAll(async () => {
    await t.close();
  });

  const send = async (method: 'GET' | 'POST' | 'DELETE', url: string, payload?: unknown, auth = t.bearer) => {
    const res = await t.app.inject({
      method,
      url,
      headers: { authorization: auth },
      ...(payload === undefined ? {} : { payload: payload as Record<string, unknown> }),
    });
    return { status: res.statusCode, body: res.body ? (res.json() as Record<string, any>) : {} };
  };
  const create = (payload: Record<string, unknown>) => send('POST', '/v1/notifications', payload);
  const count = async (userId: string, auth = t.bearer) =>
    (await send('GET', `/v1/users/${encodeURIComponent(userId)}/notifications/count`, undefined, auth)).body['unread'];
  const flush = () => startFlusher(t.ctx, { intervalMs: 1000, providers: [inboxTargets(t.ctx)], autoStart: false }).flushAll();
  const tokenFor = async (userId: string) => `Bearer ${(await send('POST', `/v1/users/${userId}/token`)).body['token']}`;

  it('creates a notification (201, the API shape) and counts it', async () => {
    const user = uniqueName('u');
    const res = await create({ userId: user, title: 'Hello', body: 'World', category: 'social', data: { a: [1, 'x'] } });
    expect(res.status).toBe(201);
    expect(res.body).toEqual({
      id: expect.any(String),
      userId: user,
      title: 'Hello',
      body: 'World',
      category: 'social',
      data: { a: [1, 'x'] },
      createdAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      readAt: null,
      seenAt: null,
      archivedAt: null,
      tenant: null,
      expiresAt: null,
      actionUrl: null,
      actions: [],
    });
    const bare = await create({ userId: user, title: 'Bare' });
    expect(bare.body).toMatchObject({ body: '', category: null, data: {}, readAt: null });
    expect(await count(user)).toBe(2);
  });

  it('is idempotent by id: the same id again is the same notification, counted once; another user is 409', async () => {
    const user = uniqueName('u');
    const first = await create({ id: 'n-1', userId: user, title: 'One' });
    const again = await create({ id: 'n-1', userId: user, title: 'One' });
    expect(again.status).toBe(201);
    expect(again.body).toEqual(first.body);
    expect(await count(user)).toBe(1);
    const other = await create({ id: 'n-1', userId: uniqueName('v'), title: 'One' });
    expect(other.status).toBe(409);
    expect(other.body['error']).toMatchObject({ code: 'conflict', path: '/id' });
    expect(await count(user)).toBe(1);
  });

  it('creates a batch in one go, in order, counting each user; all or nothing', async () => {
    const [a, b] = [uniqueName('a'), uniqueName('b')];
    const res = await send('POST', '/v1/notifications/batch', {
      notifications: [
        { userId: a, title: '1' },
        { userId: b, title: '2', id: 'batch-2' },
        { userId: a, title: '3' },
      ],
    });
    expect(res.status).toBe(201);
    expect(res.body['items'].map((n: { title: string }) => n.title)).toEqual(['1', '2', '3']);
    expect([await count(a), await count(b)]).toEqual([2, 1]);
    const replay = await send('POST', '/v1/notifications/batch', { notifications: [{ userId: b, title: '2', id: 'batch-2' }] });
    expect(replay.body['items'][0]).toEqual(res.body['items'][1]);
    expect(await count(b)).toBe(1);
    // One id taken by another user: nothing of the batch is created.
    const conflict = await send('POST', '/v1/notifications/batch', {
      notifications: [
        { userId: a, title: 'new', id: 'fresh-1' },
        { userId: a, title: 'clash', id: 'batch-2' },
      ],
    });
    expect(conflict.status).toBe(409);
    expect(conflict.body['error']).toMatchObject({ code: 'conflict', path: '/notifications/1/id' });
    expect(await count(a)).toBe(2);
    const dup = await send('POST', '/v1/notifications/batch', {
      notifications: [
        { userId: a, title: 'x', id: 'same' },
        { userId: a, title: 'y', id: 'same' },
      ],
    });
    expect(dup.status).toBe(400);
    expect(dup.body['error']).toMatchObject({ code: 'invalid_request', path: '/notifications/1/id' });
  });

  it('lists newest first with cursor pagination and filters', async () => {
    const user = uniqueName('u');
    const ids: string[] = [];
    for (let i = 0; i < 7; i++) {
      ids.push((await create({ userId: user, title: `n${i}`, category: i % 2 ? 'odd' : 'even' })).body['id']);
    }
    await send('POST', `/v1/notifications/${ids[0]}/read`);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const query: string = cursor ? `?limit=3&cursor=${cursor}` : '?limit=3';
      const page = await send('GET', `/v1/users/${user}/notifications${query}`);
      expect(page.status).toBe(200);
      expect(page.body['items'].length).toBeLessThanOrEqual(3);
      seen.push(...page.body['items'].map((n: { id: string }) => n.id));
      cursor = page.body['nextCursor'];
    } while (cursor);
    expect(seen).toEqual([...ids].reverse());
    const unread = await send('GET', `/v1/users/${user}/notifications?status=unread`);
    expect(unread.body['items'].map((n: { id: string }) => n.id)).toEqual(ids.slice(1).reverse());
    const read = await send('GET', `/v1/users/${user}/notifications?status=read`);
    expect(read.body['items'].map((n: { id: string }) => n.id)).toEqual([ids[0]]);
    const odd = await send('GET', `/v1/users/${user}/notifications?category=odd`);
    expect(odd.body['items'].map((n: { title: string }) => n.title)).toEqual(['n5', 'n3', 'n1']);
    expect(odd.body['nextCursor']).toBeNull();
  });

  it('reads, unreads and deletes: changed says whether the count moved, unread is the count after', async () => {
    const user = uniqueName('u');
    const a = (await create({ userId: user, title: 'a' })).body['id'];
    const b = (await create({ userId: user, title: 'b' })).body['id'];
    const counts = (unseen: number, unread: number, total: number) => ({ unseen, unread, total });
    expect((await send('POST', `/v1/notifications/${a}/read`)).body).toEqual({ changed: true, unread: 1, counts: counts(1, 1, 2) });
    expect((await send('POST', `/v1/notifications/${a}/read`)).body).toEqual({ changed: false, unread: 1, counts: counts(1, 1, 2) });
    // Unread again, but still seen: reading implied seeing, unreading does not undo it.
    expect((await send('POST', `/v1/notifications/${a}/unread`)).body).toEqual({ changed: true, unread: 2, counts: counts(1, 2, 2) });
    expect((await send('POST', `/v1/notifications/${a}/unread`)).body).toEqual({ changed: false, unread: 2, counts: counts(1, 2, 2) });
    await send('POST', `/v1/notifications/${b}/read`);
    expect((await send('DELETE', `/v1/notifications/${b}`)).body).toEqual({ deleted: true, unread: 1, counts: counts(0, 1, 1) });
    expect((await send('DELETE', `/v1/notifications/${a}`)).body).toEqual({ deleted: true, unread: 0, counts: counts(0, 0, 0) });
    expect((await send('DELETE', `/v1/notifications/${a}`)).status).toBe(404);
    expect((await send('POST', '/v1/notifications/nope/read')).status).toBe(404);
    expect(await count(user)).toBe(0);
  });

  it('reads all, optionally by category and up to a `before` notification; bad `before` is 404', async () => {
    const user = uniqueName('u');
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) ids.push((await create({ userId: user, title: `n${i}`, category: i < 3 ? 'x' : 'y' })).body['id']);
    const before = await send('POST', `/v1/users/${user}/notifications/read-all`, { before: ids[1] });
    expect(before.body).toEqual({ changed: 2, unread: 4, counts: { unseen: 4, unread: 4, total: 6 } });
    const byCategory = await send('POST', `/v1/users/${user}/notifications/read-all`, { category: 'x' });
    expect(byCategory.body).toMatchObject({ changed: 1, unread: 3 });
    const missing = await send('POST', `/v1/users/${user}/notifications/read-all`, { before: 'nope' });
    expect(missing.status).toBe(404);
    expect(missing.body['error']).toMatchObject({ code: 'not_found', path: '/before' });
    const all = await send('POST', `/v1/users/${user}/notifications/read-all`);
    expect(all.body).toEqual({ changed: 3, unread: 0, counts: { unseen: 0, unread: 0, total: 6 } });
    expect((await send('POST', `/v1/users/${user}/notifications/read-all`)).body).toMatchObject({ changed: 0, unread: 0 });
  });

  it('counts exactly, uncapped, across flushes', async () => {
    const user = uniqueName('u');
    const notifications = Array.from({ length: 150 }, (_, i) => ({ userId: user, title: `n${i}` }));
    await send('POST', '/v1/notifications/batch', { notifications });
    expect(await count(user)).toBe(150);
    await flush();
    expect(await count(user)).toBe(150);
    const rows = await t.ctx.db.query<{ unseen: number; unread: number; total: number }>(
      'SELECT unseen, unread, total FROM inbox_counts WHERE site_id = $1 AND user_id = $2',
      [t.site.id, user],
    );
    expect(rows.rows.map((r) => [Number(r.unseen), Number(r.unread), Number(r.total)])).toEqual([[150, 150, 150]]);
    await send('POST', `/v1/users/${user}/notifications/read-all`);
    expect(await count(user)).toBe(0);
    await flush();
    expect(await count(user)).toBe(0);
  });

  it('scopes user tokens to their user: another user is a 404, creating needs the secret key', async () => {
    const [a, b] = [uniqueName('a'), uniqueName('b')];
    const na = (await create({ userId: a, title: 'for a' })).body['id'];
    const nb = (await create({ userId: b, title: 'for b' })).body['id'];
    const tokenA = await tokenFor(a);
    expect(await count(a, tokenA)).toBe(1);
    expect((await send('GET', `/v1/users/${b}/notifications/count`, undefined, tokenA)).status).toBe(404);
    expect((await send('GET', `/v1/users/${b}/notifications`, undefined, tokenA)).status).toBe(404);
    expect((await send('POST', `/v1/users/${b}/notifications/read-all`, undefined, tokenA)).status).toBe(404);
    expect((await send('POST', `/v1/notifications/${nb}/read`, undefined, tokenA)).status).toBe(404);
    expect((await send('POST', `/v1/notifications/${nb}/unread`, undefined, tokenA)).status).toBe(404);
    expect((await send('DELETE', `/v1/notifications/${nb}`, undefined, tokenA)).status).toBe(404);
    expect(await count(b)).toBe(1);
    expect((await send('POST', `/v1/notifications/${na}/read`, undefined, tokenA)).body).toMatchObject({ changed: true, unread: 0 });
    expect((await send('GET', `/v1/users/${a}/notifications`, undefined, tokenA)).body['items']).toHaveLength(1);
    expect((await send('POST', '/v1/notifications', { userId: a, title: 'x' }, tokenA)).status).toBe(403);
    expect((await send('GET', `/v1/users/${a}/notifications/count`, undefined, 'Bearer tut_forged.sig')).status).toBe(401);
    expect((await send('GET', `/v1/users/${a}/notifications/count`, undefined, '')).status).toBe(401);
  });

  it('refuses bad input with the catalogue error and the path of the field, storing nothing', async () => {
    const user = uniqueName('u');
    const long = (n: number) => 'x'.repeat(n);
    const cases: [unknown, string][] = [
      [{ title: 't' }, '/userId'],
      [{ userId: user }, '/title'],
      [{ userId: user, title: '' }, '/title'],
      [{ userId: user, title: long(LIMITS.titleLength + 1) }, '/title'],
      [{ userId: user, title: 't', body: long(LIMITS.bodyLength + 1) }, '/body'],
      [{ userId: user, title: 't', category: long(LIMITS.categoryLength + 1) }, '/category'],
      [{ userId: user, title: 't', id: long(LIMITS.idLength + 1) }, '/id'],
      [{ userId: long(LIMITS.idLength + 1), title: 't' }, '/userId'],
      [{ userId: user, title: 't', data: { big: long(LIMITS.dataBytes) } }, '/data'],
      [{ userId: user, title: 't', data: [1] }, '/data'],
      [{ userId: user, title: 't\u0000' }, '/title'],
      [{ userId: user, title: 't', data: { k: 'a\u0000' } }, '/data'],
      [{ userId: user, title: 't\ud800' }, '/title'],
      [{ userId: `${user}\udc00`, title: 't' }, '/userId'],
      [{ userId: user, title: 't', data: { ['\ud83d']: 1 } }, '/data'],
    ];
    for (const [payload, path] of cases) {
      const res = await create(payload as Record<string, unknown>);
      expect(res.status, JSON.stringify(payload).slice(0, 80)).toBe(400);
      expect(res.body['error']['code']).toBe('invalid_request');
      if (path) expect(res.body['error']['path']).toBe(path);
    }
    // The text of an escape and paired surrogates (an emoji) are fine.
    const fine = await create({ userId: `${user}-fine`, title: 'a \\u0000 😀', data: { k: '\\ud800 text', '😀': 1 } });
    expect(fine.status).toBe(201);
    expect(fine.body).toMatchObject({ title: 'a \\u0000 😀', data: { k: '\\ud800 text', '😀': 1 } });
    const tooMany = Array.from({ length: LIMITS.batchSize + 1 }, () => ({ userId: user, title: 't' }));
    const batch = await send('POST', '/v1/notifications/batch', { notifications: tooMany });
    expect(batch.status).toBe(400);
    expect(batch.body['error']['path']).toBe('/notifications');
    const deep = await send('POST', '/v1/notifications/batch', { notifications: [{ userId: user, title: 't' }, { userId: user }] });
    expect(deep.body['error']).toMatchObject({ code: 'invalid_request', path: '/notifications/1/title' });
    for (const [query, path] of [
      ['limit=0', '/limit'],
      ['limit=101', '/limit'],
      ['limit=x', '/limit'],
      ['status=new', '/status'],
      ['cursor=bogus', '/cursor'],
      [`cursor=${long(LIMITS.cursorLength + 1)}`, '/cursor'],
    ] as const) {
      const res = await send('GET', `/v1/users/${user}/notifications?${query}`);
      expect(res.status, query).toBe(400);
      expect(res.body['error']).toMatchObject({ code: 'invalid_request', path });
    }
    expect((await send('GET', `/v1/users/${long(LIMITS.idLength + 1)}/notifications/count`)).status).toBe(400);
    expect((await send('GET', `/v1/users/a%00b/notifications/count`)).body['error']).toMatchObject({ path: '/userId' });
    const readAll = await send('POST', `/v1/users/${user}/notifications/read-all`, { category: '' });
    expect(readAll.body['error']).toMatchObject({ code: 'invalid_request', path: '/category' });
    expect(await count(user)).toBe(0);
    expect((await send('GET', `/v1/users/${user}/notifications`)).body['items']).toEqual([]);
  });

  it('streams {unread, version} over SSE: the current value at once, then every change with a growing version', async () => {
    const user = uniqueName('u');
    await create({ userId: user, title: 'before' });
    const address = await t.app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = new URL(address);
    const events: { unread: number; version: number; counts: Record<string, number> }[] = [];
    const req = httpRequest({
      host: '127.0.0.1',
      port: Number(port),
      path: `/v1/users/${user}/notifications/stream`,
      headers: { authorization: await tokenFor(user) },
    });
    req.end();
    const [res] = (await once(req, 'response')) as [import('node:http').IncomingMessage];
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toContain('text/event-stream');
    let buffered = '';
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      buffered += chunk;
      for (let at = buffered.indexOf('\n\n'); at >= 0; at = buffered.indexOf('\n\n')) {
        const block = buffered.slice(0, at);
        buffered = buffered.slice(at + 2);
        const data = block.split('\n').find((l) => l.startsWith('data: '));
        if (data) events.push(JSON.parse(data.slice(6)));
      }
    });
    const waitFor = (unread: number) => eventually(async () => expect(events.at(-1)?.unread).toBe(unread), 5_000, 25);
    await waitFor(1);
    const id = (await create({ userId: user, title: 'live' })).body['id'];
    await waitFor(2);
    await send('POST', `/v1/notifications/${id}/read`);
    await waitFor(1);
    await send('POST', `/v1/users/${user}/notifications/read-all`);
    await waitFor(0);
    expect(events.at(-1)?.counts).toEqual({ unseen: 0, unread: 0, total: 2 });
    for (let i = 1; i < events.length; i++) expect(events[i]!.version).toBeGreaterThan(events[i - 1]!.version);
    req.destroy();
    expect((t.app.server.address() as AddressInfo).port).toBe(Number(port));
  });

  it('exports the drift metric', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/metrics' });
    expect(res.body).toMatch(/^tally_inbox_drift 0$/m);
  });
});
