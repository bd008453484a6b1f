import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { type CollectedMessage, normalizeMessage } from '../src/collect/message.js';
import { plausibleMessage } from '../src/collect/plausible-route.js';
import { EVENT_COLUMNS, type EventRow } from '../src/events/event-row.js';
import {
  createEnricher,
  MAX_PROP_KEY_LENGTH,
  MAX_PROP_VALUE_LENGTH,
  MAX_PROPS,
  MAX_REVENUE,
  MAX_VALUE_LENGTH,
} from '../src/process/enrich.js';
import { createEventRows } from '../src/process/event-rows.js';
import { openGeoDatabase } from '../src/process/geo.js';
import { type BatchSink, type Processor, startProcessor } from '../src/process/processor.js';
import { createEmbeddedSessions } from '../src/storage/embedded/sessions.js';
import { createKeys } from '../src/storage/keys.js';
import { eventually, type Mode, openTestApp, propertyParams, silentLog, type TestApp, uniqueName } from './helpers.js';

// What the event store's row of an event holds: enrichment (src/process/enrich.ts) and the
// session's columns (src/process/event-rows.ts), from messages as the collector normalises them.
// The sessions are the embedded implementation; the Redis one is held to it by the contract suite
// and the differential test.

const CHROME = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36';
const T0 = Date.UTC(2026, 11, 4, 10);
const MIN = 60_000;
/** 81.2.69.160 is in GB in the bundled database (test/geo.test.ts). */
const CLIENT_IP = '81.2.69.160';

let n = 0;
function message(raw: Record<string, unknown>, at = T0, ip = CLIENT_IP): CollectedMessage {
  return normalizeMessage({ anonymousId: 'anon-1', messageId: `m${n++}`, timestamp: new Date(at).toISOString(), ...raw }, [], {
    receivedAt: at,
    ip,
    userAgent: CHROME,
  });
}

function pageView(url: string, referrer = '', at = T0, extra: Record<string, unknown> = {}): CollectedMessage {
  const { pathname } = new URL(url);
  return message({ type: 'page', properties: { url, path: pathname }, context: { page: { url, path: pathname, referrer } }, ...extra }, at);
}

function track(event: string, properties: Record<string, unknown>, at = T0): CollectedMessage {
  return message({ type: 'track', event, properties, context: { page: { url: 'https://shop.example/cart', path: '/cart' } } }, at);
}

function setup() {
  const enrich = createEnricher(async () => 'salt', openGeoDatabase());
  const eventRows = createEventRows({ sessions: createEmbeddedSessions(createKeys(uniqueName('rows')), Date.now) });
  return async (messages: CollectedMessage[], siteId = 'site'): Promise<EventRow[]> => {
    const enriched = await enrich(siteId, messages);
    return eventRows(
      siteId,
      messages.map((m, i) => ({ message: m, enriched: enriched[i] as (typeof enriched)[number] })),
    );
  };
}

describe('event rows', () => {
  it('fills every column of the row', async () => {
    const rows = setup();
    const [row] = await rows([pageView('https://www.shop.example/a?utm_source=news', 'https://www.google.com/search?q=secret#x')]);
    expect(Object.keys(row as EventRow).sort()).toEqual(Object.keys(EVENT_COLUMNS).sort());
    expect(row).toMatchObject({
      site_id: 'site',
      type: 'page',
      kind: 'pageview',
      name: null,
      visitor: 'anon-1',
      user_id: null,
      hostname: 'shop.example',
      page: '/a',
      entry_page: '/a',
      source: 'news',
      referrer: 'https://www.google.com/search',
      referrer_host: 'google.com',
      utm_source: 'news',
      browser: 'Chrome',
      os: 'Linux',
      device: 'desktop',
      country: 'GB',
      region: null,
      product: null,
      revenue: null,
      engaged_ms: 0,
      props: {},
      bot: false,
      ts: T0,
    });
    expect(row?.session).toMatch(/^[0-9a-f]{16}$/);
  });

  it('never stores the IP', async () => {
    const rows = setup();
    const all = await rows([pageView('https://shop.example/'), track('Signed Up', { plan: 'pro' })]);
    expect(JSON.stringify(all)).not.toContain(CLIENT_IP);
    expect(JSON.stringify(all)).not.toContain('81.2.69');
  });

  it('takes the country from the IP a server SDK names in context.ip, else from the request', async () => {
    const rows = setup();
    const [sdk, request, unknown] = await rows([
      message({ type: 'track', event: 'Paid', context: { ip: '2001:4860:4860::8888' } }),
      message({ type: 'track', event: 'Paid' }),
      message({ type: 'track', event: 'Paid' }, T0, '10.1.2.3'),
    ]);
    expect([sdk?.country, request?.country, unknown?.country]).toEqual(['US', 'GB', null]);
  });

  describe('UTM fields and source', () => {
    it('reads every UTM field from the page URL, and context.campaign (Segment) before it, field by field', async () => {
      const rows = setup();
      const url =
        'https://shop.example/?utm_source=url-src&utm_medium=url-med&utm_campaign=url-camp&utm_term=url-term&utm_content=url-content';
      const [fromUrl] = await rows([pageView(url)]);
      expect(fromUrl).toMatchObject({
        utm_source: 'url-src',
        utm_medium: 'url-med',
        utm_campaign: 'url-camp',
        utm_term: 'url-term',
        utm_content: 'url-content',
        source: 'url-src',
      });
      const rows2 = setup();
      const campaign = { source: 'c-src', name: 'c-camp', content: 'c-content' };
      const [mixed] = await rows2([message({ type: 'page', properties: { url }, context: { page: { url, path: '/' }, campaign } })]);
      expect(mixed).toMatchObject({
        utm_source: 'c-src',
        utm_medium: 'url-med',
        utm_campaign: 'c-camp',
        utm_term: 'url-term',
        utm_content: 'c-content',
        source: 'c-src',
      });
    });

    it('takes utm_source, else the referrer host, else Direct; the own site is no source', async () => {
      const at = (k: number) => T0 + k * 2 * 30 * MIN; // each view its own session
      const rows = setup();
      const got = await rows([
        pageView('https://shop.example/a?utm_source=mail', 'https://news.example/story', at(0)),
        pageView('https://shop.example/b', 'https://www.news.example/story?id=1', at(1)),
        pageView('https://shop.example/c', '', at(2)),
        pageView('https://shop.example/d', 'https://www.shop.example/elsewhere', at(3)),
        pageView('https://www.shop.example/e', 'https://shop.example/elsewhere', at(4)),
        pageView('https://shop.example/f', 'not a url', at(5)),
      ]);
      expect(got.map((r) => [r.source, r.referrer_host, r.referrer])).toEqual([
        ['mail', 'news.example', 'https://news.example/story'],
        ['news.example', 'news.example', 'https://www.news.example/story'],
        ['Direct', null, null],
        ['Direct', null, null],
        ['Direct', null, null],
        ['Direct', null, null],
      ]);
    });

    it(`cuts values to ${MAX_VALUE_LENGTH} characters`, async () => {
      const rows = setup();
      const long = 'x'.repeat(MAX_VALUE_LENGTH + 50);
      const [row] = await rows([pageView(`https://shop.example/${long}?utm_campaign=${long}`, `https://ref.example/${long}`)]);
      expect(row?.page).toHaveLength(MAX_VALUE_LENGTH);
      expect(row?.utm_campaign).toHaveLength(MAX_VALUE_LENGTH);
      expect(row?.referrer).toHaveLength(MAX_VALUE_LENGTH);
    });
  });

  describe('sessions', () => {
    it("gives every event of a session the first event's session columns, and starts another after 30 minutes", async () => {
      const rows = setup();
      const got = await rows([
        pageView('https://shop.example/landing?utm_source=ads&utm_campaign=spring', 'https://google.com/'),
        track('Signed Up', { plan: 'pro' }, T0 + 5 * MIN),
        pageView('https://shop.example/pricing', 'https://other.example/', T0 + 20 * MIN),
      ]);
      const later = await rows([pageView('https://shop.example/again', 'https://bing.com/', T0 + 51 * MIN)]);
      const [first, event, second] = got;
      expect(new Set(got.map((r) => r.session)).size).toBe(1);
      for (const row of got) {
        expect(row).toMatchObject({
          entry_page: '/landing',
          source: 'ads',
          referrer: 'https://google.com/',
          referrer_host: 'google.com',
          utm_source: 'ads',
          utm_campaign: 'spring',
        });
      }
      // Event-level columns stay the event's own.
      expect([first?.page, event?.page, second?.page]).toEqual(['/landing', '/cart', '/pricing']);
      expect(later[0]?.session).not.toBe(first?.session);
      expect(later[0]).toMatchObject({ entry_page: '/again', source: 'bing.com', utm_source: null });
    });

    it("starts a batch's session with its earliest event, whatever order the batch brought", async () => {
      const rows = setup();
      const got = await rows([
        pageView('https://shop.example/second', 'https://b.example/', T0 + 2 * MIN),
        pageView('https://shop.example/first', 'https://a.example/', T0),
      ]);
      expect(got.map((r) => [r.page, r.entry_page, r.source])).toEqual([
        ['/second', '/first', 'a.example'],
        ['/first', '/first', 'a.example'],
      ]);
    });

    it('gives redelivered events the same rows', async () => {
      const rows = setup();
      const batch = [pageView('https://shop.example/a', 'https://a.example/'), pageView('https://shop.example/b', '', T0 + 40 * MIN)];
      const first = await rows(batch);
      expect(first[0]?.session).not.toBe(first[1]?.session);
      expect(await rows(batch)).toEqual(first);
      expect(await rows([...batch].reverse())).toEqual([...first].reverse());
    });

    it('keeps visitors apart, and signed-in users by their id', async () => {
      const rows = setup();
      const got = await rows([
        message({ type: 'page', anonymousId: 'x', context: { page: { path: '/x' } } }),
        message({ type: 'page', anonymousId: 'y', context: { page: { path: '/y' } } }),
        message({ type: 'page', userId: 'u1', context: { page: { path: '/u' } } }),
      ]);
      expect(new Set(got.map((r) => r.session)).size).toBe(3);
      expect(got.map((r) => [r.visitor, r.user_id])).toEqual([
        ['x', null],
        ['y', null],
        ['u1', 'u1'],
      ]);
    });
  });

  describe('custom properties', () => {
    it('keeps scalars as text and drops null, objects and arrays', async () => {
      const rows = setup();
      const [row] = await rows([
        track('Signed Up', { plan: 'pro', seats: 3, ratio: 0.5, trial: false, none: null, nested: { a: 1 }, list: [1], '': 'x' }),
      ]);
      expect(row?.props).toEqual({ plan: 'pro', seats: '3', ratio: '0.5', trial: 'false' });
    });

    it(`keeps the first ${MAX_PROPS}, names up to ${MAX_PROP_KEY_LENGTH} characters, values cut to ${MAX_PROP_VALUE_LENGTH}`, async () => {
      const rows = setup();
      const properties: Record<string, unknown> = { ['k'.repeat(MAX_PROP_KEY_LENGTH + 1)]: 'dropped' };
      properties['k'.repeat(MAX_PROP_KEY_LENGTH)] = 'v'.repeat(MAX_PROP_VALUE_LENGTH + 10);
      for (let i = 1; i <= MAX_PROPS + 5; i++) properties[`p${i}`] = i;
      const [row] = await rows([track('Many', properties)]);
      const props = row?.props ?? {};
      expect(Object.keys(props)).toHaveLength(MAX_PROPS);
      expect(props['k'.repeat(MAX_PROP_KEY_LENGTH)]).toHaveLength(MAX_PROP_VALUE_LENGTH);
      expect(props['k'.repeat(MAX_PROP_KEY_LENGTH + 1)]).toBeUndefined();
      expect(props[`p${MAX_PROPS - 1}`]).toBe(String(MAX_PROPS - 1));
      expect(props[`p${MAX_PROPS}`]).toBeUndefined();
    });

    it("leaves out what has a column or is the page's context, and gives engagements and identifies none", async () => {
      const rows = setup();
      const [view, purchase, engaged, identify] = await rows([
        pageView('https://shop.example/a', '', T0, { properties: { url: 'https://shop.example/a', path: '/a', title: 'A', author: 'me' } }),
        track('Order Completed', { revenue: 10, title: 'Big order' }),
        track('Page Engaged', { engaged_ms: 5000, scroll_depth: 50 }),
        message({ type: 'identify', traits: { email: 'a@b.example' }, properties: { x: 1 } }),
      ]);
      expect(view?.props).toEqual({ author: 'me' });
      expect(purchase?.props).toEqual({ title: 'Big order' });
      expect(engaged?.props).toEqual({});
      expect(engaged?.engaged_ms).toBe(5000);
      expect(identify?.props).toEqual({});
      expect(identify?.kind).toBe('other');
    });

    it("takes Plausible's props", async () => {
      const rows = setup();
      const m = plausibleMessage(
        { name: 'Download', url: 'https://shop.example/docs', domain: 'shop.example', props: { file: 'a.pdf', size: 12, gone: null } },
        { receivedAt: T0, ip: CLIENT_IP, userAgent: CHROME },
      );
      const [row] = await rows([m]);
      expect(row).toMatchObject({ kind: 'event', name: 'Download', props: { file: 'a.pdf', size: '12' }, country: 'GB' });
    });
  });

  describe('revenue', () => {
    it("reads Segment's properties.revenue and Plausible's {amount, currency}", async () => {
      const rows = setup();
      const plausible = (revenue: Record<string, unknown>, short: boolean) =>
        plausibleMessage(
          { name: 'Purchase', url: 'https://shop.example/', domain: 'shop.example', ...(short ? { $: revenue } : { revenue }) } as never,
          { receivedAt: T0, ip: CLIENT_IP, userAgent: CHROME },
        );
      const got = await rows([
        track('Order Completed', { revenue: 25.5 }),
        track('Order Completed', { revenue: ' 1322.22 ' }),
        track('Refund', { revenue: -10 }),
        plausible({ amount: 15.99, currency: 'USD' }, false),
        plausible({ amount: '7.5', currency: 'EUR' }, true),
      ]);
      expect(got.map((r) => r.revenue)).toEqual([25.5, 1322.22, -10, 15.99, 7.5]);
    });

    it('is no revenue when it is not a finite amount below the limit, or not a track event', async () => {
      const rows = setup();
      const got = await rows([
        track('Order Completed', { revenue: '12,50' }),
        track('Order Completed', { revenue: 'ten' }),
        track('Order Completed', { revenue: MAX_REVENUE }),
        track('Order Completed', { revenue: true }),
        track('Order Completed', { revenue: [5] }),
        track('Order Completed', { total: 5 }),
        pageView('https://shop.example/', '', T0, { properties: { revenue: 5 } }),
      ]);
      expect(got.map((r) => r.revenue)).toEqual([null, null, null, null, null, null, null]);
    });
  });

  it('keeps every limit for any properties and revenue a message may carry, and never fails', async () => {
    const rows = setup();
    const value = fc.oneof(fc.string({ maxLength: 2500 }), fc.double(), fc.boolean(), fc.constant(null), fc.jsonValue({ maxDepth: 2 }));
    const properties = fc.dictionary(fc.string({ maxLength: 320 }), value, { maxKeys: 40 });
    const revenue = fc.oneof(
      fc.double(),
      fc.string({ maxLength: 20 }),
      fc.record({ amount: fc.oneof(fc.double(), fc.string()) }),
      fc.jsonValue(),
    );
    await fc.assert(
      fc.asyncProperty(fc.constantFrom('page', 'track'), properties, revenue, async (type, props, rev) => {
        const json = JSON.parse(JSON.stringify({ ...props, revenue: rev })) as Record<string, unknown>;
        // What the collector refuses (a message over 32 KB) never reaches the processor.
        fc.pre(JSON.stringify(json).length < 30_000);
        const [row] = await rows([message({ type, event: 'Random', properties: json })]);
        const kept = Object.entries(row?.props ?? {});
        expect(kept.length).toBeLessThanOrEqual(MAX_PROPS);
        for (const [key, text] of kept) {
          expect(key.length).toBeGreaterThanOrEqual(1);
          expect(key.length).toBeLessThanOrEqual(MAX_PROP_KEY_LENGTH);
          expect(typeof text).toBe('string');
          expect(text.length).toBeLessThanOrEqual(MAX_PROP_VALUE_LENGTH);
        }
        const r = row?.revenue ?? null;
        if (r !== null) {
          expect(type).toBe('track');
          expect(Number.isFinite(r) && Math.abs(r) < MAX_REVENUE).toBe(true);
        }
      }),
      propertyParams(200, 20_000),
    );
  });

  it('names the product of a Product Clicked and the event of a track', async () => {
    const rows = setup();
    const [row] = await rows([track('Product Clicked', { product_id: 'sku-1' })]);
    expect(row).toMatchObject({ kind: 'event', name: 'Product Clicked', product: 'sku-1', props: { product_id: 'sku-1' } });
  });
});

// The whole way: the collector's routes, the stream, the processor's enrichment (the context's
// geo database, the mode's sessions) and a sink that builds the rows, as the event store's does.
describe.each(['external', 'embedded'] as Mode[])('event rows from collected events (%s)', (mode) => {
  let t: TestApp | undefined;
  let processor: Processor | undefined;
  afterEach(async () => {
    await processor?.stop();
    processor = undefined;
    await t?.close();
    t = undefined;
  });

  it('places the client by its forwarded address, keeps sessions, and gives a redelivered batch the same rows', async () => {
    t = await openTestApp(mode, { TALLY_STREAM_SHARDS: '1' });
    const { ctx } = t;
    const eventRows = createEventRows({ sessions: ctx.realtime.sessions });
    const attempts: EventRow[][] = [];
    // The first attempt fails after building its rows: the entry comes again, as after a crash.
    const sink: BatchSink = async (bySite) => {
      for (const [siteId, counted] of bySite) attempts.push(await eventRows(siteId, counted));
      if (attempts.length === 1) throw new Error('the store is not there yet');
    };
    processor = startProcessor({ ...ctx, log: silentLog }, { shards: 1, blockMs: 50, sinks: [sink] });
    const at = (minutes: number) => new Date(Date.now() - 60 * MIN + minutes * MIN).toISOString();
    const page = (messageId: string, minutes: number, path: string, referrer: string) => ({
      type: 'page',
      anonymousId: 'browser-1',
      messageId,
      timestamp: at(minutes),
      context: { page: { url: `https://shop.example${path}?utm_medium=email`, path, referrer }, userAgent: CHROME },
    });
    const response = await t.app.inject({
      method: 'POST',
      url: '/v1/batch',
      headers: { authorization: t.basic, 'x-forwarded-for': CLIENT_IP },
      payload: {
        batch: [
          page('p1', 0, '/landing', 'https://news.example/item'),
          page('p2', 10, '/pricing', 'https://shop.example/landing'),
          {
            type: 'track',
            anonymousId: 'browser-1',
            messageId: 't1',
            event: 'Order Completed',
            timestamp: at(12),
            properties: { revenue: 30, coupon: 'X' },
          },
          page('p3', 50, '/again', ''),
        ],
      },
    });
    expect(response.statusCode).toBe(200);
    await eventually(async () => expect(attempts).toHaveLength(2), 30_000);
    const [first, again] = attempts as [EventRow[], EventRow[]];
    expect(again).toEqual(first);
    const byId = new Map(first.map((r) => [r.message_id, r]));
    expect(first.map((r) => r.country)).toEqual(['GB', 'GB', 'GB', 'GB']);
    expect(JSON.stringify(first)).not.toContain(CLIENT_IP);
    const landing = byId.get('p1');
    expect(landing).toMatchObject({ site_id: t.site.id, entry_page: '/landing', source: 'news.example', utm_medium: 'email' });
    expect(byId.get('p2')).toMatchObject({ session: landing?.session, entry_page: '/landing', source: 'news.example', page: '/pricing' });
    expect(byId.get('t1')).toMatchObject({ session: landing?.session, revenue: 30, props: { coupon: 'X' }, source: 'news.example' });
    expect(byId.get('p3')).toMatchObject({ entry_page: '/again', source: 'Direct' });
    expect(byId.get('p3')?.session).not.toBe(landing?.session);
  }, 120_000);
});
