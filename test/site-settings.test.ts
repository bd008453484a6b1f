import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, openTestApp, type TestApp, uniqueName } from './helpers.js';

// A site's settings (API.md "Sites and keys", "A site's time zone"): timezone and retentionDays
// on POST /v1/sites, PATCH /v1/sites/:id and GET /v1/sites/:id, who may, and every bad value.

const ADMIN_TOKEN = 'site-settings-admin-token';
const admin = `Bearer ${ADMIN_TOKEN}`;

describe.each(['external', 'embedded'] as const)('site settings (%s)', (mode) => {
  let t: TestApp;
  const call = (method: 'GET' | 'POST' | 'PATCH', url: string, authorization: string, payload?: unknown) =>
    t.app.inject({ method, url, headers: { authorization }, ...(payload === undefined ? {} : { payload: payload as object }) });

  beforeAll(async () => {
    t = await openTestApp(mode, { ADMIN_TOKEN });
  });
  afterAll(async () => {
    await t.close();
  });

  it('creates a site with a time zone and a retention, and reads them back', async () => {
    const name = uniqueName('berlin');
    const created = await call('POST', '/v1/sites', admin, { name, timezone: 'europe/berlin', retentionDays: 400 });
    expect(created.statusCode, created.body).toBe(201);
    const site = created.json();
    expect(site).toMatchObject({ name, domains: [], timezone: 'Europe/Berlin', retentionDays: 400 });
    expect(site.writeKey).toMatch(/^twk_/);
    for (const authorization of [admin, `Bearer ${site.secretKey}`]) {
      const read = await call('GET', `/v1/sites/${site.id}`, authorization);
      expect(read.statusCode, read.body).toBe(200);
      expect(read.json()).toEqual({ id: site.id, name, domains: [], timezone: 'Europe/Berlin', retentionDays: 400 });
    }
    // The repository hands them to whoever reads sites (stats, retention).
    expect(await t.ctx.sites.byId(site.id)).toMatchObject({ timezone: 'Europe/Berlin', retentionDays: 400 });
    expect((await t.ctx.sites.list()).find((s) => s.id === site.id)).toMatchObject({ timezone: 'Europe/Berlin', retentionDays: 400 });
  });

  it('defaults to UTC and keeping events forever', async () => {
    const created = await call('POST', '/v1/sites', admin, { name: uniqueName('plain') });
    expect(created.json()).toMatchObject({ timezone: 'UTC', retentionDays: null });
    expect((await call('GET', `/v1/sites/${t.site.id}`, t.bearer)).json()).toEqual({
      id: t.site.id,
      name: t.site.name,
      domains: [],
      timezone: 'UTC',
      retentionDays: null,
    });
  });

  it('changes only what PATCH sends; an alias keeps its spelling', async () => {
    const site = (await call('POST', '/v1/sites', admin, { name: uniqueName('kolkata'), domains: ['in.example'] })).json();
    const key = `Bearer ${site.secretKey}`;
    const zone = await call('PATCH', `/v1/sites/${site.id}`, key, { timezone: 'Asia/Kolkata' });
    expect(zone.statusCode, zone.body).toBe(200);
    expect(zone.json()).toEqual({ id: site.id, name: site.name, domains: ['in.example'], timezone: 'Asia/Kolkata', retentionDays: null });
    const retention = await call('PATCH', `/v1/sites/${site.id}`, admin, { retentionDays: 30 });
    expect(retention.json()).toMatchObject({ domains: ['in.example'], timezone: 'Asia/Kolkata', retentionDays: 30 });
    const both = await call('PATCH', `/v1/sites/${site.id}`, key, { domains: [], retentionDays: null, timezone: 'UTC' });
    expect(both.json()).toEqual({ id: site.id, name: site.name, domains: [], timezone: 'UTC', retentionDays: null });
    const nothing = await call('PATCH', `/v1/sites/${site.id}`, key, {});
    expect(nothing.json()).toEqual(both.json());
    // The key lookups this process cached see the change at once: stats use the new zone.
    await call('PATCH', `/v1/sites/${site.id}`, key, { timezone: 'Pacific/Kiritimati' });
    expect((await call('GET', `/v1/sites/${site.id}`, key)).json().timezone).toBe('Pacific/Kiritimati');
    const series = await call('GET', '/v1/stats/timeseries?period=today&interval=day', key);
    expect(series.json().results[0].t).toMatch(/T00:00:00\.000\+14:00$/);
  });

  it('refuses bad values with the path of the field, and changes nothing then', async () => {
    const site = (await call('POST', '/v1/sites', admin, { name: uniqueName('bad'), timezone: 'Europe/Berlin', retentionDays: 90 })).json();
    const bad: [unknown, string][] = [
      [{ timezone: 'Mars/Olympus_Mons' }, '/timezone'],
      [{ timezone: '+05:30' }, '/timezone'],
      [{ timezone: '' }, '/timezone'],
      [{ timezone: 'Europe/Berlin\u0000' }, '/timezone'],
      [{ timezone: 'x'.repeat(65) }, '/timezone'],
      [{ timezone: 5 }, '/timezone'],
      [{ timezone: null }, '/timezone'],
      [{ retentionDays: 0 }, '/retentionDays'],
      [{ retentionDays: -1 }, '/retentionDays'],
      [{ retentionDays: 36_501 }, '/retentionDays'],
      [{ retentionDays: 1.5 }, '/retentionDays'],
      [{ retentionDays: '30' }, '/retentionDays'],
      [{ timezone: 'Asia/Kolkata', retentionDays: 0 }, '/retentionDays'],
      [{ domains: ['ok.example'], timezone: 'Nowhere' }, '/timezone'],
    ];
    for (const [payload, path] of bad) {
      for (const [method, url, body] of [
        ['PATCH', `/v1/sites/${site.id}`, payload],
        ['POST', '/v1/sites', { name: uniqueName('refused'), ...(payload as object) }],
      ] as const) {
        const res = await call(method, url, admin, body);
        expect(res.statusCode, `${method} ${JSON.stringify(body)}`).toBe(400);
        expect(res.json().error, `${method} ${JSON.stringify(body)}`).toMatchObject({ code: 'invalid_request', path });
      }
    }
    expect((await call('GET', `/v1/sites/${site.id}`, admin)).json()).toMatchObject({
      domains: [],
      timezone: 'Europe/Berlin',
      retentionDays: 90,
    });
    // The limits themselves are fine.
    for (const retentionDays of [1, 36_500]) {
      expect((await call('PATCH', `/v1/sites/${site.id}`, admin, { retentionDays })).json().retentionDays).toBe(retentionDays);
    }
  });

  it('lets the admin token or the site’s own secret key read and change it, no one else', async () => {
    const site = (await call('POST', '/v1/sites', admin, { name: uniqueName('mine') })).json();
    const cases: [string, string, number, string][] = [
      [site.id, t.bearer, 403, 'forbidden'],
      [site.id, t.basic, 403, 'forbidden'],
      [site.id, `Bearer ${site.writeKey}`, 403, 'forbidden'],
      [site.id, 'Bearer wrong-admin-token', 401, 'unauthorized'],
      [site.id, '', 401, 'unauthorized'],
      ['no-such-site', admin, 404, 'not_found'],
    ];
    for (const [id, authorization, status, code] of cases) {
      for (const method of ['GET', 'PATCH'] as const) {
        const res = await call(method, `/v1/sites/${id}`, authorization, method === 'PATCH' ? { timezone: 'Asia/Tokyo' } : undefined);
        expect(res.statusCode, `${method} ${authorization}`).toBe(status);
        expect(res.json().error.code).toBe(code);
      }
    }
    expect((await call('GET', `/v1/sites/${site.id}`, admin)).json().timezone).toBe('UTC');
  });

  it('keeps the settings in PostgreSQL (another process reads them)', async () => {
    const site = (await call('POST', '/v1/sites', admin, { name: uniqueName('durable'), timezone: 'Pacific/Kiritimati' })).json();
    await call('PATCH', `/v1/sites/${site.id}`, admin, { retentionDays: 7 });
    const rows = await t.ctx.db.query<{ timezone: string; retention_days: number | null }>(
      'SELECT timezone, retention_days FROM sites WHERE id = $1',
      [site.id],
    );
    expect(rows.rows).toEqual([{ timezone: 'Pacific/Kiritimati', retention_days: 7 }]);
    await eventually(async () => expect((await t.ctx.sites.byKey('secret', site.secretKey))?.retentionDays).toBe(7));
  });
});
