import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startWorker, type Worker } from '../src/worker.js';
import { eventually, openTestApp, type TestApp } from './helpers.js';

// Plausible's Events API: what Plausible's tracker posts counts like Segment's page and track,
// with visitors told apart by a daily-salted hash of IP + user agent (no cookies, no ids).

const FIREFOX = 'Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0';
const CHROME = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36';

const ADMIN_TOKEN = 'plausible-test-admin-token';

describe.each(['external', 'embedded'] as const)('Plausible Events API (%s)', (mode) => {
  let t: TestApp;
  let worker: Worker;
  const post = (payload: unknown, ua = FIREFOX, ip = '203.0.113.7') =>
    t.app.inject({
      method: 'POST',
      url: '/api/event',
      headers: { 'content-type': 'text/plain', 'user-agent': ua, 'x-forwarded-for': ip },
      payload: JSON.stringify(payload),
    });
  const stats = async (url: string) => (await t.app.inject({ url, headers: { authorization: t.bearer } })).json();

  beforeAll(async () => {
    t = await openTestApp(mode, { ADMIN_TOKEN });
    worker = startWorker(t.ctx);
  });
  afterAll(async () => {
    await worker.stop();
    await t.close();
  });

  it('takes the visitor address from X-Forwarded-For only when a trusted proxy sends it', async () => {
    // By default only proxies on private networks are trusted: a client on the internet naming
    // two addresses is still one visitor (its own address), behind a local proxy two.
    const site = await t.ctx.sites.create(`${t.site.name}-xff`);
    const from = (remoteAddress: string, forwarded: string) =>
      t.app.inject({
        method: 'POST',
        url: '/api/event',
        remoteAddress,
        headers: { 'content-type': 'text/plain', 'user-agent': FIREFOX, 'x-forwarded-for': forwarded },
        payload: JSON.stringify({ n: 'pageview', u: 'https://xff.example/', d: site.name }),
      });
    for (const forwarded of ['192.0.2.10', '192.0.2.11']) expect((await from('203.0.113.50', forwarded)).statusCode).toBe(202);
    for (const forwarded of ['192.0.2.20', '192.0.2.21']) expect((await from('10.1.2.3', forwarded)).statusCode).toBe(202);
    const summary = async () =>
      (await t.app.inject({ url: '/v1/stats/summary?period=today', headers: { authorization: `Bearer ${site.secretKey}` } })).json();
    await eventually(async () => expect(await summary()).toMatchObject({ pageviews: 4, visitors: 3 }));
  });

  it('counts page views, custom events and engagement, one visitor per IP and browser', async () => {
    const domain = t.site.name;
    const sent = [
      await post({ n: 'pageview', u: 'https://blog.example/post-1', d: domain, r: 'https://news.ycombinator.com/' }),
      await post({ n: 'pageview', u: 'https://blog.example/post-2?utm_source=hn', d: domain, r: null }),
      await post({ name: 'pageview', url: 'https://blog.example/post-1', domain }, CHROME, '198.51.100.1'),
      await post({ name: 'Signup', url: 'https://blog.example/post-2', domain, props: { plan: 'pro' } }),
      await post({ n: 'engagement', u: 'https://blog.example/post-1', d: domain, e: 12_000, sd: 80 }),
      await post({ n: 'Download', u: 'https://blog.example/post-1', d: domain, p: '{"file":"a.pdf"}' }, CHROME, '198.51.100.1'),
    ];
    for (const res of sent) {
      expect(res.statusCode, res.body).toBe(202);
      expect(res.body).toBe('ok');
    }
    await eventually(async () =>
      expect(await stats('/v1/stats/summary?period=today')).toEqual({
        visitors: 2,
        pageviews: 3,
        events: 2,
        clicks: 0,
        bounceRate: 0.5,
        avgEngagedSeconds: 12,
        bots: 0,
      }),
    );
    expect((await stats('/v1/stats/top?period=today&dimension=page')).results).toEqual([
      { value: '/post-1', count: 2 },
      { value: '/post-2', count: 1 },
    ]);
    expect((await stats('/v1/stats/top?period=today&dimension=referrer')).results).toEqual([{ value: 'news.ycombinator.com', count: 1 }]);
    expect((await stats('/v1/stats/top?period=today&dimension=utm_source')).results).toEqual([{ value: 'hn', count: 1 }]);
    expect((await stats('/v1/stats/top?period=today&dimension=event')).results).toEqual([
      { value: 'Download', count: 1 },
      { value: 'Signup', count: 1 },
    ]);
    expect((await stats('/v1/stats/top?period=today&dimension=browser')).results).toEqual([
      { value: 'Firefox', count: 2 },
      { value: 'Chrome', count: 1 },
    ]);
  });

  it('refuses bad events with invalid_event and the path', async () => {
    const domain = t.site.name;
    const bad: [unknown, string][] = [
      [{ u: 'https://a.example/', d: domain }, '/name'],
      [{ n: 'pageview', d: domain }, '/url'],
      [{ n: 'pageview', u: 'not a url', d: domain }, '/u'],
      [{ n: 'pageview', u: 'https://a.example/' }, '/domain'],
      [{ n: 'x', u: 'https://a.example/', d: domain, p: '[1]' }, '/p'],
      [{ n: 'x', u: 'https://a.example/', d: domain, sd: 101 }, '/sd'],
      [{ n: 'Purchase', u: 'https://a.example/', d: domain, revenue: 12 }, '/revenue'],
      [{ n: 'Purchase', u: 'https://a.example/', d: domain, $: { currency: 'USD' } }, '/$/amount'],
      [{ n: 'Purchase', u: 'https://a.example/', d: domain, revenue: { amount: true, currency: 'USD' } }, '/revenue/amount'],
    ];
    for (const [payload, path] of bad) {
      const res = await post(payload);
      expect(res.statusCode, JSON.stringify(payload)).toBe(400);
      expect(res.json().error).toMatchObject({ code: 'invalid_event', path });
    }
    for (const payload of [
      { n: 'x\u0000', u: 'https://a.example/', d: domain },
      { n: 'x', u: 'https://a.example/', d: domain, r: '\ud800' },
    ]) {
      const res = await post(payload);
      expect(res.statusCode, JSON.stringify(payload)).toBe(400);
      expect(res.json().error).toMatchObject({ code: 'invalid_event', message: expect.stringMatching(/NUL characters or unpaired/) });
    }
  });

  const unknownDomainMetric = async () => {
    const text = (await t.app.inject({ url: '/metrics' })).body;
    return Number(/^tally_plausible_unknown_domain_events_total (\d+)$/m.exec(text)?.[1]);
  };
  const summaryOf = async (secretKey: string) =>
    (await t.app.inject({ url: '/v1/stats/summary?period=today', headers: { authorization: `Bearer ${secretKey}` } })).json();
  const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };

  it('answers 202 to a domain no site answers to, as Plausible does, and counts it only in a metric', async () => {
    const site = await t.ctx.sites.create(`${t.site.name}-known`);
    const before = await unknownDomainMetric();
    const alone = await post({ n: 'pageview', u: 'https://a.example/', d: 'no-such-site.example' });
    expect(alone.statusCode).toBe(202);
    expect(alone.body).toBe('ok');
    // Beside a known site: that one counts it; each unknown domain is one in the metric.
    const mixed = await post({ n: 'pageview', u: 'https://a.example/', d: `nope-1.example, ${site.name},nope-2.example` });
    expect(mixed.statusCode).toBe(202);
    expect(await unknownDomainMetric()).toBe(before + 3);
    await eventually(async () => expect(await summaryOf(site.secretKey)).toMatchObject({ pageviews: 1, visitors: 1 }));
  });

  it('lets a site answer to several domains, set on POST /v1/sites and changed by PATCH /v1/sites/:id', async () => {
    const name = `${t.site.name}-multi`;
    const created = await t.app.inject({
      method: 'POST',
      url: '/v1/sites',
      headers: admin,
      payload: { name, domains: ['Blog.Example', 'shop.example', 'blog.example'] },
    });
    expect(created.statusCode, created.body).toBe(201);
    const site = created.json() as { id: string; name: string; secretKey: string; domains: string[] };
    expect(site).toMatchObject({ name, domains: ['blog.example', 'shop.example'] });
    const event = (d: string) => post({ n: 'pageview', u: `https://${d}/`, d });
    for (const d of [name, 'blog.example', 'SHOP.example', 'blog.example,shop.example']) expect((await event(d)).statusCode).toBe(202);
    // Two of one site's domains in one event: one page view.
    await eventually(async () => expect(await summaryOf(site.secretKey)).toMatchObject({ pageviews: 4 }));

    const changed = await t.app.inject({
      method: 'PATCH',
      url: `/v1/sites/${site.id}`,
      headers: { authorization: `Bearer ${site.secretKey}` },
      payload: { domains: ['news.example'] },
    });
    expect(changed.statusCode, changed.body).toBe(200);
    expect(changed.json()).toEqual({ id: site.id, name, domains: ['news.example'], timezone: 'UTC', retentionDays: null });
    expect(await t.ctx.sites.domainsOf(site.id)).toEqual(['news.example']);
    const before = await unknownDomainMetric();
    expect((await event('blog.example')).statusCode).toBe(202);
    expect(await unknownDomainMetric()).toBe(before + 1);
    expect((await event('news.example')).statusCode).toBe(202);
    await eventually(async () => expect(await summaryOf(site.secretKey)).toMatchObject({ pageviews: 5 }));

    // A domain names one site: taken domains and other sites' names are refused.
    const other = await t.ctx.sites.create(`${t.site.name}-other`);
    const taken = await t.app.inject({
      method: 'POST',
      url: '/v1/sites',
      headers: admin,
      payload: { name: `${name}-2`, domains: ['a.example', 'News.example'] },
    });
    expect(taken.statusCode).toBe(409);
    expect(taken.json().error).toMatchObject({ code: 'conflict', path: '/domains/1' });
    expect(await t.ctx.sites.domainsOf(site.id)).toEqual(['news.example']);
    const patch = (id: string, authorization: string, payload: unknown) =>
      t.app.inject({ method: 'PATCH', url: `/v1/sites/${id}`, headers: { authorization }, payload: payload as object });
    const clash = await patch(other.id, `Bearer ${other.secretKey}`, { domains: [name] });
    expect(clash.statusCode).toBe(409);
    expect(clash.json().error).toMatchObject({ code: 'conflict', path: '/domains/0' });
    expect((await patch(other.id, admin.authorization, { domains: ['other.example'] })).json()).toMatchObject({
      domains: ['other.example'],
    });

    // Who may: the admin token, or the site's own secret key.
    const cases: [string, string, unknown, number, string][] = [
      [site.id, `Bearer ${other.secretKey}`, { domains: [] }, 403, 'forbidden'],
      [site.id, `Bearer ${site.secretKey.replace('tsk_', 'twk_')}`, { domains: [] }, 401, 'unauthorized'],
      [site.id, 'Bearer wrong-admin-token', { domains: [] }, 401, 'unauthorized'],
      ['no-such-site', admin.authorization, { domains: [] }, 404, 'not_found'],
      [site.id, admin.authorization, { domains: ['a b'] }, 400, 'invalid_request'],
      [site.id, admin.authorization, { domains: ['a.example,b.example'] }, 400, 'invalid_request'],
      // A bad time zone refuses the whole change, domains included.
      [site.id, admin.authorization, { domains: [], timezone: 'Europe/Nowhere' }, 400, 'invalid_request'],
    ];
    for (const [id, authorization, payload, status, code] of cases) {
      const res = await patch(id, authorization, payload);
      expect(res.statusCode, `${authorization} ${JSON.stringify(payload)}`).toBe(status);
      expect(res.json().error.code).toBe(code);
    }
    expect(await t.ctx.sites.domainsOf(site.id)).toEqual(['news.example']);
    const cleared = await patch(site.id, admin.authorization, { domains: [] });
    expect(cleared.json()).toEqual({ id: site.id, name, domains: [], timezone: 'UTC', retentionDays: null });
  });
});
