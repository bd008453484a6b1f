import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFlusher } from '../src/counters/flusher.js';
import { createInbox } from '../src/inbox/inbox.js';
import { LIMITS } from '../src/inbox/inbox-schemas.js';
import { createUnreadCounter } from '../src/inbox/unread-counter.js';
import { inboxTargets } from '../src/inbox/unread-flush.js';
import { eventually, type Mode, openTestApp, type TestApp, uniqueName } from './helpers.js';

// API.md "Inbox states": seen / read / archived, tenants, counts by category and tenant, bulk and
// *-all changes, preferences, expiry and actions, on Redis + PostgreSQL and on the embedded default.

describe.each<Mode>(['external', 'embedded'])('inbox states (%s)', (mode) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await openTestApp(mode);
  });
  afterAll(async () => {
    await t.close();
  });

  const send = async (method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, payload?: unknown, auth = t.bearer) => {
    const res = await t.app.inject({
      method,
      url,
      headers: { authorization: auth },
      ...(payload === undefined ? {} : { payload: payload as Record<string, unknown> }),
    });
    return { status: res.statusCode, body: res.body ? (res.json() as Record<string, any>) : {} };
  };
  const create = async (payload: Record<string, unknown>) => {
    const res = await send('POST', '/v1/notifications', payload);
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return res.body['id'] as string;
  };
  const counts = async (userId: string, query = '', auth = t.bearer) =>
    (await send('GET', `/v1/users/${userId}/notifications/counts${query}`, undefined, auth)).body;
  const list = async (userId: string, query = '') =>
    (await send('GET', `/v1/users/${userId}/notifications${query}`)).body['items'].map((n: { id: string }) => n.id) as string[];
  const flush = () => startFlusher(t.ctx, { intervalMs: 1000, providers: [inboxTargets(t.ctx)], autoStart: false }).flushAll();
  const tokenFor = async (userId: string) => `Bearer ${(await send('POST', `/v1/users/${userId}/token`)).body['token']}`;
  const c = (unseen: number, unread: number, total: number) => ({ unseen, unread, total });

  /** Every count of the user equals what the list endpoints return, per tenant and category too. */
  async function expectCountsMatchLists(userId: string): Promise<void> {
    const all = (await send('GET', `/v1/users/${userId}/notifications?status=all&limit=100`)).body['items'] as {
      tenant: string | null;
      category: string | null;
      readAt: string | null;
      seenAt: string | null;
    }[];
    const expected = (rows: typeof all) => c(rows.filter((n) => !n.seenAt).length, rows.filter((n) => !n.readAt).length, rows.length);
    expect(await counts(userId)).toEqual(expected(all));
    expect((await list(userId, '?status=unread&limit=100')).length).toBe(all.filter((n) => !n.readAt).length);
    expect((await list(userId, '?status=unseen&limit=100')).length).toBe(all.filter((n) => !n.seenAt).length);
    const byCategory = (await counts(userId, '?by=category'))['by'];
    const byTenant = (await counts(userId, '?by=tenant'))['by'];
    const groups = (key: 'tenant' | 'category') => {
      const out: Record<string, ReturnType<typeof c>> = {};
      for (const value of new Set(all.map((n) => n[key] ?? ''))) out[value] = expected(all.filter((n) => (n[key] ?? '') === value));
      return out;
    };
    expect(byCategory).toEqual(groups('category'));
    expect(byTenant).toEqual(groups('tenant'));
  }

  it('marks seen, read, unread, archived and unarchived; every answer carries the counts after it', async () => {
    const user = uniqueName('u');
    const [a, b] = [await create({ userId: user, title: 'a' }), await create({ userId: user, title: 'b' })];
    expect(await counts(user)).toEqual(c(2, 2, 2));
    expect((await send('POST', `/v1/notifications/${a}/seen`)).body).toEqual({ changed: true, unread: 2, counts: c(1, 2, 2) });
    expect((await send('POST', `/v1/notifications/${a}/seen`)).body).toEqual({ changed: false, unread: 2, counts: c(1, 2, 2) });
    expect((await send('POST', `/v1/notifications/${b}/read`)).body).toEqual({ changed: true, unread: 1, counts: c(0, 1, 2) });
    expect((await send('POST', `/v1/notifications/${b}/archive`)).body).toEqual({ changed: true, unread: 1, counts: c(0, 1, 1) });
    expect((await send('POST', `/v1/notifications/${b}/archive`)).body).toMatchObject({ changed: false });
    expect(await list(user)).toEqual([a]);
    expect(await list(user, '?status=archived')).toEqual([b]);
    // An archived notification changes state without touching any count.
    expect((await send('POST', `/v1/notifications/${b}/unread`)).body).toEqual({ changed: true, unread: 1, counts: c(0, 1, 1) });
    expect((await send('POST', `/v1/notifications/${b}/unarchive`)).body).toEqual({ changed: true, unread: 2, counts: c(0, 2, 2) });
    const row = (await send('GET', `/v1/users/${user}/notifications`)).body['items'][0];
    expect(row).toMatchObject({ id: b, readAt: null, seenAt: expect.any(String), archivedAt: null });
    await expectCountsMatchLists(user);
    await flush();
    expect(await counts(user)).toEqual(c(0, 2, 2));
  });

  it('counts per tenant and category, scopes lists, counts and *-all to a tenant, and breaks counts down', async () => {
    const user = uniqueName('u');
    for (const [tenant, category] of [
      ['t1', 'x'],
      ['t1', 'y'],
      ['t2', 'x'],
      [undefined, undefined],
    ] as const) {
      await create({ userId: user, title: 'n', ...(tenant ? { tenant } : {}), ...(category ? { category } : {}) });
    }
    expect(await counts(user, '?tenant=t1')).toEqual(c(2, 2, 2));
    expect(await counts(user, '?by=tenant')).toEqual({ ...c(4, 4, 4), by: { '': c(1, 1, 1), t1: c(2, 2, 2), t2: c(1, 1, 1) } });
    expect(await counts(user, '?tenant=t1&by=category')).toEqual({ ...c(2, 2, 2), by: { x: c(1, 1, 1), y: c(1, 1, 1) } });
    expect(await list(user, '?tenant=t2')).toHaveLength(1);
    const seen = await send('POST', `/v1/users/${user}/notifications/seen-all`, { tenant: 't1' });
    expect(seen.body).toEqual({ changed: 2, unread: 4, counts: c(2, 4, 4) });
    const read = await send('POST', `/v1/users/${user}/notifications/read-all`, { category: 'x' });
    expect(read.body).toEqual({ changed: 2, unread: 2, counts: c(1, 2, 4) });
    const archived = await send('POST', `/v1/users/${user}/notifications/archive-all`, { tenant: 't2' });
    expect(archived.body).toEqual({ changed: 1, unread: 2, counts: c(1, 2, 3) });
    await expectCountsMatchLists(user);
  });

  it('takes `before` as a time or an id in *-all', async () => {
    const user = uniqueName('u');
    const first = await create({ userId: user, title: 'old' });
    await new Promise((resolve) => setTimeout(resolve, 20));
    const cut = new Date().toISOString();
    await new Promise((resolve) => setTimeout(resolve, 20));
    await create({ userId: user, title: 'new' });
    expect((await send('POST', `/v1/users/${user}/notifications/seen-all`, { before: cut })).body).toMatchObject({ changed: 1 });
    expect((await send('POST', `/v1/users/${user}/notifications/archive-all`, { before: first })).body).toMatchObject({
      changed: 1,
      counts: c(1, 1, 1),
    });
    const missing = await send('POST', `/v1/users/${user}/notifications/read-all`, { before: 'nope' });
    expect(missing.body['error']).toMatchObject({ code: 'not_found', path: '/before' });
  });

  it('changes lists of ids in bulk, skipping other users’ ids', async () => {
    const [user, other] = [uniqueName('u'), uniqueName('o')];
    const ids = [
      await create({ userId: user, title: '1' }),
      await create({ userId: user, title: '2' }),
      await create({ userId: user, title: '3' }),
    ];
    const theirs = await create({ userId: other, title: 'x' });
    const bulk = (action: string, list: string[]) => send('POST', `/v1/users/${user}/notifications/bulk`, { ids: list, action });
    expect((await bulk('read', [...ids.slice(0, 2), theirs])).body).toEqual({ changed: 2, unread: 1, counts: c(1, 1, 3) });
    expect((await bulk('unread', ids)).body).toEqual({ changed: 2, unread: 3, counts: c(1, 3, 3) });
    expect((await bulk('seen', ids)).body).toMatchObject({ changed: 1, counts: c(0, 3, 3) });
    expect((await bulk('archive', ids.slice(1))).body).toMatchObject({ changed: 2, counts: c(0, 1, 1) });
    expect((await bulk('unarchive', ids)).body).toMatchObject({ changed: 2, counts: c(0, 3, 3) });
    expect((await bulk('delete', [ids[0] as string, theirs])).body).toMatchObject({ changed: 1, counts: c(0, 2, 2) });
    expect(await counts(other)).toEqual(c(1, 1, 1));
    const token = await tokenFor(user);
    expect((await send('POST', `/v1/users/${user}/notifications/bulk`, { ids, action: 'read' }, token)).body).toMatchObject({
      changed: 2,
    });
    await expectCountsMatchLists(user);
  });

  it('refuses bad bulk, *-all, counts and creates with the path of the field', async () => {
    const user = uniqueName('u');
    const bad: [string, string, unknown, string][] = [
      ['POST', `/v1/users/${user}/notifications/bulk`, { ids: [], action: 'read' }, '/ids'],
      [
        'POST',
        `/v1/users/${user}/notifications/bulk`,
        { ids: Array.from({ length: LIMITS.bulkIds + 1 }, (_, i) => `n${i}`), action: 'read' },
        '/ids',
      ],
      ['POST', `/v1/users/${user}/notifications/bulk`, { ids: ['a'], action: 'explode' }, '/action'],
      ['POST', `/v1/users/${user}/notifications/bulk`, { ids: ['a\u0000'], action: 'read' }, '/ids/0'],
      ['POST', `/v1/users/${user}/notifications/seen-all`, { tenant: 'x'.repeat(LIMITS.tenantLength + 1) }, '/tenant'],
      ['POST', `/v1/users/${user}/notifications/archive-all`, { before: '' }, '/before'],
      ['POST', '/v1/notifications', { userId: user, title: 't', tenant: '' }, '/tenant'],
      ['POST', '/v1/notifications', { userId: user, title: 't', expiresAt: 'soon' }, '/expiresAt'],
      ['POST', '/v1/notifications', { userId: user, title: 't', actionUrl: 'x'.repeat(LIMITS.urlLength + 1) }, '/actionUrl'],
      [
        'POST',
        '/v1/notifications',
        { userId: user, title: 't', actions: Array.from({ length: 4 }, (_, i) => ({ id: `a${i}`, label: 'L' })) },
        '/actions',
      ],
      ['POST', '/v1/notifications', { userId: user, title: 't', actions: [{ id: 'a' }] }, '/actions/0/label'],
      [
        'POST',
        '/v1/notifications',
        {
          userId: user,
          title: 't',
          actions: [
            { id: 'a', label: 'A' },
            { id: 'a', label: 'B' },
          ],
        },
        '/actions/1/id',
      ],
      ['PUT', `/v1/users/${user}/preferences`, { categories: { x: { in_app: 'no' } } }, '/categories/x/in_app'],
      ['PUT', `/v1/users/${user}/preferences`, { categories: { ['c'.repeat(LIMITS.categoryLength + 1)]: { in_app: false } } }, ''],
    ];
    for (const [method, url, payload, path] of bad) {
      const res = await send(method as 'POST', url, payload);
      expect(res.status, `${url} ${JSON.stringify(payload).slice(0, 60)}`).toBe(400);
      expect(res.body['error']['code']).toBe('invalid_request');
      if (path) expect(res.body['error']['path']).toBe(path);
    }
    for (const [query, path] of [
      ['by=day', '/by'],
      ['tenant=', '/tenant'],
    ] as const) {
      expect((await send('GET', `/v1/users/${user}/notifications/counts?${query}`)).body['error']).toMatchObject({ path });
    }
    expect(await counts(user)).toEqual(c(0, 0, 0));
  });

  it('keeps a user token to its user: another user’s notifications, counts, preferences and bulk are 404', async () => {
    const [a, b] = [uniqueName('a'), uniqueName('b')];
    const nb = await create({ userId: b, title: 'for b', actions: [{ id: 'go', label: 'Go' }] });
    const tokenA = await tokenFor(a);
    for (const action of ['seen', 'read', 'unread', 'archive', 'unarchive', 'actions/go']) {
      expect((await send('POST', `/v1/notifications/${nb}/${action}`, undefined, tokenA)).status, action).toBe(404);
    }
    for (const [method, url] of [
      ['GET', `/v1/users/${b}/notifications/counts`],
      ['GET', `/v1/users/${b}/preferences`],
      ['POST', `/v1/users/${b}/notifications/seen-all`],
      ['POST', `/v1/users/${b}/notifications/archive-all`],
    ] as const) {
      expect((await send(method, url, undefined, tokenA)).status, url).toBe(404);
    }
    expect((await send('PUT', `/v1/users/${b}/preferences`, { categories: {} }, tokenA)).status).toBe(404);
    expect((await send('POST', `/v1/users/${b}/notifications/bulk`, { ids: [nb], action: 'delete' }, tokenA)).status).toBe(404);
    // Bulk on one's own route never reaches another user's notification.
    expect((await send('POST', `/v1/users/${a}/notifications/bulk`, { ids: [nb], action: 'delete' }, tokenA)).body).toMatchObject({
      changed: 0,
    });
    expect((await send('PUT', '/v1/preferences/defaults', { categories: { x: { in_app: false } } }, tokenA)).status).toBe(403);
    expect(await counts(b)).toEqual(c(1, 1, 1));
  });

  it('mutes a switched-off category: stored, not counted, not listed, not pushed; only new notifications', async () => {
    const user = uniqueName('u');
    const token = await tokenFor(user);
    const before = await create({ userId: user, title: 'before', category: 'promo' });
    const put = await send('PUT', `/v1/users/${user}/preferences`, { categories: { promo: { in_app: false } } }, token);
    expect(put.body).toEqual({ categories: { promo: { in_app: false } } });
    const { version } = await counter().read(t.site.id, user);
    const muted = await create({ userId: user, title: 'muted', category: 'promo' });
    await create({ userId: user, title: 'other', category: 'news' });
    expect(await counts(user, '', token)).toEqual(c(2, 2, 2));
    expect(await list(user)).not.toContain(muted);
    expect(await list(user)).toContain(before);
    // The muted create changed no count: one version step (the other create) since.
    expect((await counter().read(t.site.id, user)).version).toBe(version + 1);
    // Site defaults apply where the user chose nothing; the user's choice wins.
    const defaults = await send('PUT', '/v1/preferences/defaults', { categories: { digest: { in_app: false }, promo: { in_app: true } } });
    expect(defaults.body).toEqual({ categories: { digest: { in_app: false }, promo: { in_app: true } } });
    expect((await send('GET', `/v1/users/${user}/preferences`, undefined, token)).body).toEqual({
      categories: { digest: { in_app: false }, promo: { in_app: false } },
    });
    await create({ userId: user, title: 'digest', category: 'digest' });
    expect(await counts(user)).toEqual(c(2, 2, 2));
    // Switched on again: new notifications count, the muted one stays out.
    await send('PUT', `/v1/users/${user}/preferences`, { categories: { promo: { in_app: true } } }, token);
    await create({ userId: user, title: 'after', category: 'promo' });
    expect(await counts(user)).toEqual(c(3, 3, 3));
    // A change of the muted one moves no count.
    expect((await send('POST', `/v1/notifications/${muted}/read`)).body).toMatchObject({ changed: true, counts: c(3, 3, 3) });
    await expectCountsMatchLists(user);
  });

  it('expires notifications: they leave every count and list without a request touching the user', async () => {
    const user = uniqueName('u');
    const inbox = createInbox({ db: t.ctx.db, counter: counter() });
    await create({ userId: user, title: 'stays', tenant: 'w', category: 'k' });
    const soon = await create({
      userId: user,
      title: 'soon',
      tenant: 'w',
      category: 'k',
      expiresAt: new Date(Date.now() + 300).toISOString(),
    });
    await create({ userId: user, title: 'gone', expiresAt: new Date(Date.now() - 1000).toISOString() });
    expect(await counts(user)).toEqual(c(2, 2, 2));
    await send('POST', `/v1/notifications/${soon}/read`);
    await eventually(async () => {
      await inbox.expire(100);
      expect(await counts(user, '?by=tenant')).toEqual({ ...c(1, 1, 1), by: { w: c(1, 1, 1) } });
    }, 5_000);
    expect(await list(user)).not.toContain(soon);
    expect(await inbox.expire(100)).toBe(0);
    await expectCountsMatchLists(user);
    await flush();
    const durable = await t.ctx.db.query<{ unseen: string; unread: string; total: string }>(
      'SELECT sum(unseen) AS unseen, sum(unread) AS unread, sum(total) AS total FROM inbox_counts WHERE site_id = $1 AND user_id = $2',
      [t.site.id, user],
    );
    expect(durable.rows.map((r) => c(Number(r.unseen), Number(r.unread), Number(r.total)))).toEqual([c(1, 1, 1)]);
  });

  it('records an action click and marks the notification read; an unknown action is 404', async () => {
    const user = uniqueName('u');
    const id = await create({
      userId: user,
      title: 'Invite',
      actionUrl: 'https://example.com/i/1',
      actions: [
        { id: 'accept', label: 'Accept', url: 'https://example.com/i/1/accept' },
        { id: 'decline', label: 'Decline' },
      ],
    });
    const token = await tokenFor(user);
    const item = (await send('GET', `/v1/users/${user}/notifications`, undefined, token)).body['items'][0];
    expect(item).toMatchObject({ actionUrl: 'https://example.com/i/1', actions: [{ id: 'accept', label: 'Accept' }, { id: 'decline' }] });
    const click = await send('POST', `/v1/notifications/${id}/actions/accept`, undefined, token);
    expect(click.body).toEqual({ changed: true, unread: 0, counts: c(0, 0, 1) });
    expect((await send('POST', `/v1/notifications/${id}/actions/decline`, undefined, token)).body).toMatchObject({ changed: false });
    const stored = await t.ctx.db.query<{ clicked_action: string }>(
      'SELECT clicked_action FROM notifications WHERE site_id = $1 AND id = $2',
      [t.site.id, id],
    );
    expect(stored.rows[0]?.clicked_action).toBe('decline');
    const unknown = await send('POST', `/v1/notifications/${id}/actions/nope`, undefined, token);
    expect(unknown.status).toBe(404);
    expect(unknown.body['error']).toMatchObject({ code: 'not_found', path: '/actionId' });
  });

  it("streams one tenant's counts with ?tenant=, with the version of every change of the user", async () => {
    const user = uniqueName('u');
    await create({ userId: user, title: 'w1', tenant: 'w1' });
    await create({ userId: user, title: 'w2', tenant: 'w2' });
    const address = await t.app.listen({ port: 0, host: '127.0.0.1' });
    const controller = new AbortController();
    const res = await fetch(`${address}/v1/users/${user}/notifications/stream?tenant=w1`, {
      headers: { authorization: await tokenFor(user) },
      signal: controller.signal,
    });
    expect(res.status).toBe(200);
    const events: { unread: number; version: number; counts: ReturnType<typeof c> }[] = [];
    const reading = (async () => {
      const decoder = new TextDecoder();
      let buffered = '';
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buffered += decoder.decode(chunk, { stream: true });
        for (let at = buffered.indexOf('\n\n'); at >= 0; at = buffered.indexOf('\n\n')) {
          const data = buffered
            .slice(0, at)
            .split('\n')
            .find((l) => l.startsWith('data: '));
          buffered = buffered.slice(at + 2);
          if (data) events.push(JSON.parse(data.slice(6)));
        }
      }
    })().catch(() => undefined);
    await eventually(async () => expect(events.at(-1)).toMatchObject({ unread: 1, counts: c(1, 1, 1) }), 5_000, 25);
    await create({ userId: user, title: 'w1 again', tenant: 'w1' });
    await eventually(async () => expect(events.at(-1)).toMatchObject({ unread: 2, counts: c(2, 2, 2) }), 5_000, 25);
    // Another tenant's change moves the version; this stream's counts stay its tenant's.
    await create({ userId: user, title: 'w2 again', tenant: 'w2' });
    await send('POST', `/v1/users/${user}/notifications/seen-all`, { tenant: 'w1' });
    await eventually(async () => expect(events.at(-1)).toMatchObject({ unread: 2, counts: c(0, 2, 2) }), 5_000, 25);
    for (let i = 1; i < events.length; i++) expect(events[i]!.version).toBeGreaterThan(events[i - 1]!.version);
    controller.abort();
    await reading;
  });

  const counter = () => createUnreadCounter(t.ctx);
});
