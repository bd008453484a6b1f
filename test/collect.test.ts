import { deflateSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTestApp, type TestApp } from './helpers.js';

// The collector's contract at the door: auth, validation with the path of the bad field,
// limits, and that nothing of a rejected request reaches the stream.

async function backlog(t: TestApp): Promise<number> {
  let n = 0;
  for (let shard = 0; shard < t.ctx.config.streamShards; shard++) n += await t.ctx.realtime.queue.length(t.ctx.keys.stream(shard));
  return n;
}

const page = (over: Record<string, unknown> = {}) => ({ type: 'page', userId: 'u1', name: 'Home', ...over });

describe.each(['external', 'embedded'] as const)('collector (%s)', (mode) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await openTestApp(mode, { TALLY_STREAM_SHARDS: '1' });
  });
  afterAll(() => t.close());

  const post = (url: string, payload: unknown, headers: Record<string, string> = {}) =>
    t.app.inject({ method: 'POST', url, payload: payload as object, headers: { authorization: t.basic, ...headers } });

  it('accepts a Segment batch whole and answers {"success": true}', async () => {
    const before = await backlog(t);
    const res = await post('/v1/batch', { batch: [page(), { type: 'track', anonymousId: 'a1', event: 'Signed Up' }] });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ success: true });
    expect(await backlog(t)).toBe(before + 1);
  });

  it('accepts every single-message route with the type implied', async () => {
    for (const [route, body] of [
      ['/v1/track', { userId: 'u1', event: 'Clicked' }],
      ['/v1/page', { userId: 'u1', name: 'Home' }],
      ['/v1/screen', { userId: 'u1', name: 'Main' }],
      ['/v1/identify', { userId: 'u1', traits: { plan: 'pro' } }],
      ['/v1/group', { userId: 'u1', groupId: 'g1' }],
      ['/v1/alias', { userId: 'u2', previousId: 'u1' }],
      ['/v1/alias', { userId: 'u2', previousUserId: 'u1' }],
    ] as const) {
      const res = await post(route, body);
      expect(res.statusCode, route).toBe(200);
    }
  });

  it("accepts analytics.js's short paths, text/plain with the write key in the body", async () => {
    const before = await backlog(t);
    const writeKey = t.site.writeKey;
    const cases = [
      ['/v1/t', { writeKey, userId: 'u1', event: 'Clicked' }],
      ['/v1/p', { writeKey, userId: 'u1', name: 'Home' }],
      ['/v1/s', { writeKey, userId: 'u1', name: 'Main' }],
      ['/v1/i', { writeKey, userId: 'u1', traits: { plan: 'pro' } }],
      ['/v1/g', { writeKey, userId: 'u1', groupId: 'g1' }],
      ['/v1/a', { writeKey, userId: 'u2', previousId: 'u1' }],
      ['/v1/b', { writeKey, batch: [page(), page()] }],
    ] as const;
    for (const [url, body] of cases) {
      const res = await t.app.inject({ method: 'POST', url, headers: { 'content-type': 'text/plain' }, payload: JSON.stringify(body) });
      expect(res.statusCode, url).toBe(200);
      expect(res.json()).toEqual({ success: true });
    }
    expect(await backlog(t)).toBe(before + cases.length);
    // The short forms validate as the long ones: a track without its event is refused.
    const bad = await t.app.inject({
      method: 'POST',
      url: '/v1/t',
      headers: { 'content-type': 'text/plain' },
      payload: JSON.stringify({ writeKey, userId: 'u1' }),
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error).toMatchObject({ code: 'invalid_event', path: '/event' });
  });

  describe('compressed bodies', () => {
    const send = (url: string, body: Buffer, encoding: string, contentType = 'application/json') =>
      t.app.inject({
        method: 'POST',
        url,
        payload: body,
        headers: { authorization: t.basic, 'content-type': contentType, 'content-encoding': encoding },
      });
    const json = (value: unknown) => Buffer.from(JSON.stringify(value));

    it('inflates gzip and deflate bodies on every collect route', async () => {
      const before = await backlog(t);
      const bodies: [string, unknown, number][] = [
        ['/v1/batch', { batch: [page(), page()] }, 200],
        ['/v1/b', { batch: [page()] }, 200],
        ['/v1/track', { userId: 'u1', event: 'Zipped' }, 200],
        ['/v1/p', { userId: 'u1', name: 'Home' }, 200],
        ['/click', { user_id: 'u1', product_id: 'p1' }, 200],
        ['/api/event', { n: 'pageview', u: 'https://zip.example/', d: t.site.name }, 202],
      ];
      for (const [encoding, compress] of [
        ['gzip', gzipSync],
        ['deflate', deflateSync],
        ['GZIP', gzipSync],
        ['x-gzip', gzipSync],
      ] as const) {
        for (const [url, body, status] of bodies) {
          const res = await send(url, compress(json(body)), encoding);
          expect(res.statusCode, `${encoding} ${url} ${res.body}`).toBe(status);
        }
      }
      expect(await backlog(t)).toBe(before + 4 * bodies.length);
    });

    it('applies the limits to the inflated body: 413 past them, nothing queued', async () => {
      const before = await backlog(t);
      // 600 KB of JSON gzips to about 1 KB: small on the wire, too large inflated.
      const batch = gzipSync(json({ batch: [page({ properties: { pad: 'x'.repeat(600 * 1024) } })] }));
      expect(batch.length).toBeLessThan(4096);
      const cases = [
        await send('/v1/batch', batch, 'gzip'),
        await send('/v1/track', gzipSync(json({ userId: 'u', event: 'e', properties: { pad: 'x'.repeat(40 * 1024) } })), 'gzip'),
        await send('/v1/t', deflateSync(json({ userId: 'u', event: 'e', properties: { pad: 'x'.repeat(40 * 1024) } })), 'deflate'),
        await send('/click', gzipSync(json({ user_id: 'u', product_id: 'p', pad: 'x'.repeat(8192) })), 'gzip'),
        await send(
          '/api/event',
          gzipSync(json({ n: 'pageview', u: 'https://zip.example/', d: t.site.name, pad: 'x'.repeat(40 * 1024) })),
          'gzip',
        ),
      ];
      for (const res of cases) {
        expect(res.statusCode, res.body).toBe(413);
        expect(res.json().error.code).toBe('payload_too_large');
      }
      expect(await backlog(t)).toBe(before);
    });

    it('answers 415 to an unknown Content-Encoding and 400 invalid_json to a body that does not inflate', async () => {
      const body = json({ batch: [page()] });
      for (const encoding of ['br', 'compress', 'gzip, gzip', 'zstd']) {
        const res = await send('/v1/batch', body, encoding);
        expect(res.statusCode, encoding).toBe(415);
        expect(res.json().error).toMatchObject({ code: 'unsupported_media_type', message: expect.stringContaining(encoding) });
      }
      const zipped = gzipSync(body);
      for (const [label, broken, encoding] of [
        ['not gzip at all', body, 'gzip'],
        ['truncated', zipped.subarray(0, zipped.length - 10), 'gzip'],
        ['gzip sent as deflate', zipped, 'deflate'],
      ] as const) {
        const res = await send('/v1/batch', broken, encoding);
        expect(res.statusCode, label).toBe(400);
        expect(res.json().error, label).toMatchObject({ code: 'invalid_json', message: expect.stringMatching(/does not inflate/) });
      }
      // "identity" is no encoding at all.
      expect((await send('/v1/batch', body, 'identity')).statusCode).toBe(200);
    });
  });

  it('takes the write key from the body, and text/plain bodies (sendBeacon)', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/v1/batch',
      headers: { 'content-type': 'text/plain' },
      payload: JSON.stringify({ writeKey: t.site.writeKey, batch: [page()] }),
    });
    expect(res.statusCode).toBe(200);
  });

  it('rejects a batch with one invalid message whole, naming the field', async () => {
    const before = await backlog(t);
    const res = await post('/v1/batch', { batch: [page(), page(), { type: 'track', userId: 'u1' }] });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toEqual({
      error: { code: 'invalid_event', message: expect.stringMatching(/event is required/), path: '/batch/2/event' },
    });
    expect(await backlog(t)).toBe(before);
  });

  it.each([
    [{ type: 'page' }, '/batch/0/userId'],
    [{ type: 'bogus', userId: 'u' }, '/batch/0/type'],
    [{ type: 'page', userId: 'x'.repeat(257) }, '/batch/0/userId'],
    [{ type: 'page', userId: 'u', messageId: 'm'.repeat(257) }, '/batch/0/messageId'],
    [{ type: 'page', userId: 'u', timestamp: 'yesterday' }, '/batch/0/timestamp'],
    [{ type: 'page', userId: 'u', properties: 'nope' }, '/batch/0/properties'],
    [{ type: 'track', userId: 'u', event: 'e'.repeat(201) }, '/batch/0/event'],
    [{ type: 'group', userId: 'u' }, '/batch/0/groupId'],
    [{ type: 'alias', userId: 'u' }, '/batch/0/previousId'],
  ])('answers 400 invalid_event for %j at %s', async (message, path) => {
    const res = await post('/v1/batch', { batch: [message] });
    expect(res.statusCode).toBe(400);
    expect(res.json().error).toMatchObject({ code: 'invalid_event', path });
  });

  it('refuses text PostgreSQL cannot store (NUL, unpaired surrogates) before anything is queued', async () => {
    const before = await backlog(t);
    // Sent as raw JSON: the escapes arrive as the characters they stand for.
    const raw = (body: string, url = '/v1/batch') =>
      t.app.inject({ method: 'POST', url, payload: body, headers: { authorization: t.basic, 'content-type': 'application/json' } });
    const cases: [string, string, string?][] = [
      ['{"batch": [{"type": "page", "userId": "u"}, {"type": "page", "userId": "a\\u0000b"}]}', '/batch/1'],
      ['{"batch": [{"type": "track", "userId": "u", "event": "e", "properties": {"k\\u0000": 1}}]}', '/batch/0'],
      ['{"batch": [{"type": "page", "userId": "u", "name": "x\\ud800"}]}', '/batch/0'],
      ['{"batch": [{"type": "page", "userId": "u"}], "context": {"page": {"title": "\\udc00"}}}', '/context'],
      ['{"userId": "u", "event": "e\\u0000"}', '', '/v1/track'],
    ];
    for (const [body, path, url] of cases) {
      const res = await raw(body, url);
      expect(res.statusCode, body).toBe(400);
      expect(res.json().error).toMatchObject({ code: 'invalid_event', message: expect.stringMatching(/NUL characters or unpaired/) });
      expect(res.json().error.path).toBe(path === '' ? undefined : path);
    }
    expect(await backlog(t)).toBe(before);
    // Paired surrogates (an emoji) and the text of an escape are fine.
    expect((await raw('{"batch": [{"type": "page", "userId": "\\ud83d\\ude00", "name": "\\\\u0000"}]}')).statusCode).toBe(200);
  });

  it('answers 400 when the envelope is wrong', async () => {
    const res = await post('/v1/batch', { events: [] });
    expect(res.statusCode).toBe(400);
    expect(res.json().error).toMatchObject({ code: 'invalid_event', path: '/batch' });
  });

  it('answers 400 invalid_json for a body that is not JSON', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/v1/batch',
      headers: { authorization: t.basic, 'content-type': 'application/json' },
      payload: '{"batch": [',
    });
    expect(res.statusCode).toBe(400);
    expect(res.json().error.code).toBe('invalid_json');
  });

  it('answers 413 for a body over 500 KB, and for one message over 32 KB', async () => {
    const big = await post('/v1/batch', { batch: [page({ properties: { pad: 'x'.repeat(600 * 1024) } })] });
    expect(big.statusCode).toBe(413);
    expect(big.json().error.code).toBe('payload_too_large');
    const fat = await post('/v1/batch', { batch: [page(), page({ properties: { pad: 'x'.repeat(33 * 1024) } })] });
    expect(fat.statusCode).toBe(413);
    expect(fat.json().error).toMatchObject({ code: 'payload_too_large', path: '/batch/1' });
    const single = await post('/v1/track', { userId: 'u', event: 'e', properties: { pad: 'x'.repeat(33 * 1024) } });
    expect(single.statusCode).toBe(413);
  });

  it('answers 400 for more than 2,500 messages in a batch', async () => {
    const res = await post('/v1/batch', { batch: Array.from({ length: 2501 }, () => ({ type: 'page', userId: 'u' })) });
    expect(res.statusCode).toBe(400);
    expect(res.json().error).toMatchObject({ code: 'invalid_event', path: '/batch' });
  });

  it('answers 401 without a key or with an unknown one', async () => {
    const none = await t.app.inject({ method: 'POST', url: '/v1/batch', payload: { batch: [page()] } });
    expect(none.statusCode).toBe(401);
    expect(none.json().error.code).toBe('unauthorized');
    const wrong = await post('/v1/batch', { batch: [page()] }, { authorization: 'Basic ' + Buffer.from('twk_nope:').toString('base64') });
    expect(wrong.statusCode).toBe(401);
  });

  it('answers CORS preflights so browsers can post', async () => {
    const res = await t.app.inject({
      method: 'OPTIONS',
      url: '/v1/batch',
      headers: { origin: 'https://shop.example', 'access-control-request-method': 'POST' },
    });
    expect(res.statusCode).toBe(204);
    expect(res.headers['access-control-allow-origin']).toBe('https://shop.example');
  });

  it("keeps the tutorial's POST /click, validated", async () => {
    const ok = await post('/click', { user_id: 5, product_id: 'p-9' });
    expect(ok.statusCode).toBe(200);
    expect(ok.body).toBe('OK');
    const bad = await post('/click', { user_id: 5 });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error).toMatchObject({ code: 'invalid_event', path: '/product_id' });
    const long = await post('/click', { user_id: 'u'.repeat(257), product_id: 1 });
    expect(long.json().error).toMatchObject({ code: 'invalid_event', path: '/user_id' });
  });

  it('refuses stats to a write key (403) and an unknown key (401)', async () => {
    const withWrite = await t.app.inject({ url: '/v1/stats/users/u1', headers: { authorization: `Bearer ${t.site.writeKey}` } });
    expect(withWrite.statusCode).toBe(403);
    expect(withWrite.json().error.code).toBe('forbidden');
    const unknown = await t.app.inject({ url: '/v1/stats/users/u1', headers: { authorization: 'Bearer tsk_nope' } });
    expect(unknown.statusCode).toBe(401);
    const ok = await t.app.inject({ url: '/v1/stats/users/u1', headers: { authorization: t.bearer } });
    expect(ok.statusCode).toBe(200);
    const tooLong = await t.app.inject({ url: `/v1/stats/users/${'x'.repeat(300)}`, headers: { authorization: t.bearer } });
    expect(tooLong.statusCode).toBe(400);
    expect(tooLong.json().error).toMatchObject({ code: 'invalid_request', path: '/userId' });
  });
});

describe('collector limits', () => {
  it('answers 429 with Retry-After past the per-site rate', async () => {
    const t = await openTestApp('external', { TALLY_COLLECT_RATE_LIMIT: '5' });
    try {
      const codes: number[] = [];
      let retryAfter: string | undefined;
      for (let i = 0; i < 8; i++) {
        const res = await t.app.inject({ method: 'POST', url: '/v1/page', headers: { authorization: t.basic }, payload: { userId: 'u' } });
        codes.push(res.statusCode);
        if (res.statusCode === 429) {
          retryAfter = res.headers['retry-after'] as string;
          expect(res.json().error.code).toBe('rate_limited');
        }
      }
      expect(codes.slice(0, 5)).toEqual([200, 200, 200, 200, 200]);
      expect(codes).toContain(429);
      expect(Number(retryAfter)).toBeGreaterThanOrEqual(1);
    } finally {
      await t.close();
    }
  });

  it('answers 503 overloaded with Retry-After when the backlog is full, and queues nothing more', async () => {
    const t = await openTestApp('external', { TALLY_STREAM_SHARDS: '1', TALLY_STREAM_MAX_BACKLOG: '100' });
    try {
      for (let i = 0; i < 100; i++) {
        const res = await t.app.inject({ method: 'POST', url: '/v1/page', headers: { authorization: t.basic }, payload: { userId: 'u' } });
        expect(res.statusCode).toBe(200);
      }
      const res = await t.app.inject({ method: 'POST', url: '/v1/page', headers: { authorization: t.basic }, payload: { userId: 'u' } });
      expect(res.statusCode).toBe(503);
      expect(res.headers['retry-after']).toBe('1');
      expect(res.json().error.code).toBe('overloaded');
      expect(await t.ctx.realtime.queue.length(t.ctx.keys.stream(0))).toBe(100);
    } finally {
      await t.close();
    }
  });
});

describe('sites', () => {
  it('creates sites with ADMIN_TOKEN only, and their keys work', async () => {
    const admin = 'a'.repeat(24);
    const t = await openTestApp('external', { ADMIN_TOKEN: admin });
    try {
      const create = (auth: string | undefined, name: unknown) =>
        t.app.inject({ method: 'POST', url: '/v1/sites', headers: auth ? { authorization: auth } : {}, payload: { name } });
      expect((await create(undefined, 'shop')).statusCode).toBe(401);
      expect((await create('Bearer wrong-token-wrong-token', 'shop')).statusCode).toBe(401);
      expect((await create(`Bearer ${admin}`, '')).json().error).toMatchObject({ code: 'invalid_request', path: '/name' });
      const res = await create(`Bearer ${admin}`, 'shop');
      expect(res.statusCode).toBe(201);
      const site = res.json();
      expect(site).toEqual({
        id: expect.any(String),
        name: 'shop',
        writeKey: expect.stringMatching(/^twk_/),
        secretKey: expect.stringMatching(/^tsk_/),
        domains: [],
        timezone: 'UTC',
        retentionDays: null,
      });
      expect((await create(`Bearer ${admin}`, 'shop')).json().error.code).toBe('conflict');
      const stored = await t.ctx.db.query<{ write_key_hash: string }>('SELECT write_key_hash FROM sites WHERE id = $1', [site.id]);
      expect(stored.rows[0]?.write_key_hash).not.toContain(site.writeKey.slice(4));
      const collect = await t.app.inject({
        method: 'POST',
        url: '/v1/page',
        headers: { authorization: 'Basic ' + Buffer.from(`${site.writeKey}:`).toString('base64') },
        payload: { userId: 'u' },
      });
      expect(collect.statusCode).toBe(200);
    } finally {
      await t.close();
    }
  });

  it('refuses to create sites when ADMIN_TOKEN is not set', async () => {
    const t = await openTestApp('external');
    try {
      const res = await t.app.inject({
        method: 'POST',
        url: '/v1/sites',
        headers: { authorization: 'Bearer x'.repeat(3) },
        payload: { name: 'n' },
      });
      expect(res.statusCode).toBe(403);
    } finally {
      await t.close();
    }
  });
});
