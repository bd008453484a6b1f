import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Analytics } from '@segment/analytics-node';
import { afterAll, describe, expect, it } from 'vitest';
import type { EventRow } from '../src/events/event-row.js';
import { openGeoDatabase } from '../src/process/geo.js';
import { matchesPagePattern, modelFunnel } from './funnel-model.js';
import { DATABASE_URL, dropTestData, eventually, REDIS_URL, testConfig, uniqueName } from './helpers.js';
import { type ServerProcess, startServerProcess, stopServerProcess } from './server-process.js';

// Acceptance of the query API from outside (issue 13): a known data set goes into a real
// `tally serve` process through the unmodified Segment SDK; filtered summaries, goals, a funnel,
// a previous-period comparison and a country breakdown must answer exactly what a plain
// computation over the sent events gives (docs/query.md has the definitions it follows).
//
// The SDK sends batches concurrently, so a visit's events may reach the processor in any order
// and the first to arrive fixes the session's source. Every event of a visit therefore carries
// the visit's referrer and campaign (as analytics.js sends document.referrer on every call), a
// visit lasts under 30 minutes and a visitor's visits are hours apart: the sessions and their
// sources are then the same whatever the order.

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const SESSION_GAP = 30 * MINUTE;

const SHOP = 'https://www.shop.example';
const CHROME = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36';
const IPHONE =
  'Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1';
const GOOGLEBOT = 'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)';

/** Public addresses and their countries in the bundled database (checked once below); a private one has none. */
const COUNTRY_OF_IP: Record<string, string | null> = {
  '8.8.8.8': 'US',
  '194.25.0.60': 'DE',
  '80.67.169.12': 'FR',
  '133.242.0.3': 'JP',
  '200.160.2.3': 'BR',
  '10.20.30.40': null,
};
const IPS = Object.keys(COUNTRY_OF_IP);
const NONE = '(none)';

/** Landing referrers: a search engine, two sites, none, and a link inside the shop (no referrer at all). */
const REFERRERS = [
  'https://www.google.com/search?q=tally',
  'https://news.ycombinator.com/item?id=42',
  'https://t.co/x1',
  undefined,
  undefined,
  'https://shop.example/blog/a',
];
const BROWSE_PAGES = ['/', '/blog/a', '/blog/b', '/docs', '/pricing', '/pricing/enterprise'];

interface Visit {
  ip: string;
  userAgent: string;
  referrer: string | undefined;
  campaign: { source: string; medium: string; name: string } | undefined;
  /** A query string of the landing URL (a one-page visit only: later pages would not carry it). */
  query: string;
}

/** One message as sent through the SDK. */
interface Sent {
  call: 'page' | 'track' | 'identify';
  messageId: string;
  anonymousId: string;
  userId: string | undefined;
  at: number;
  /** The page the visitor is on. */
  path: string;
  event: string | undefined;
  properties: Record<string, string>;
  visit: Visit;
}

/** A deterministic data set around `now`: current visits 1–2 days ago, previous-period ones 8–9 days ago. */
function dataSet(now: number): Sent[] {
  let seed = 13;
  const next = (mod: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return Math.floor(seed / 65536) % mod;
  };
  const pick = <T>(list: readonly T[]): T => list[next(list.length)] as T;
  const sent: Sent[] = [];
  let n = 0;

  for (let i = 0; i < 120; i++) {
    const bot = i % 40 === 39;
    const signedIn = !bot && i % 4 === 0;
    const anonymousId = bot ? `crawler-${i}` : `anon-${i}`;
    const homeIp = pick(IPS);
    const userAgent = bot ? GOOGLEBOT : next(3) === 0 ? IPHONE : CHROME;
    const visitStarts = [
      ...Array.from({ length: 1 + next(3) }, (_, k) => now - DAY - k * 5 * HOUR - next(120) * MINUTE),
      ...Array.from({ length: next(3) }, (_, k) => now - 8 * DAY - k * 5 * HOUR - next(120) * MINUTE),
    ].sort((a, b) => a - b);
    let identified = false;
    for (const start of visitStarts) {
      const script = bot
        ? 'browse'
        : pick(['bounce', 'bounce', 'bounce', 'browse', 'browse', 'browse', 'signup', 'signup', 'reversed', 'events']);
      const campaign = next(5) === 0 ? { source: 'newsletter', medium: 'email', name: 'spring' } : undefined;
      const visit: Visit = {
        ip: next(6) === 0 ? pick(IPS) : homeIp,
        userAgent,
        referrer: campaign ? undefined : pick(REFERRERS),
        campaign,
        query: script === 'bounce' && !campaign && next(4) === 0 ? '?utm_source=producthunt&utm_medium=launch' : '',
      };
      // What the visitor does: [call, path, event, properties].
      const steps: [Sent['call'], string, string | undefined, Record<string, string>][] = [];
      const page = (path: string) => steps.push(['page', path, undefined, {}]);
      const track = (path: string, event: string, properties: Record<string, string> = {}) =>
        steps.push(['track', path, event, properties]);
      if (script === 'bounce') page(pick(BROWSE_PAGES));
      else if (script === 'browse') {
        for (let k = 0, pages = 2 + next(4); k < pages; k++) {
          const path = pick(BROWSE_PAGES);
          page(path);
          if (next(3) === 0) track(path, 'Product Clicked', { product_id: `sku-${next(5)}` });
        }
      } else if (script === 'signup') {
        page('/');
        if (next(2) === 0) page(pick(BROWSE_PAGES));
        page('/pricing');
        if (next(4) !== 0) track('/pricing', 'Signed Up', { plan: pick(['pro', 'free']) });
      } else if (script === 'reversed') {
        page('/pricing');
        track('/pricing', 'Signed Up', { plan: 'pro' });
        page('/');
      } else track('/docs', 'Download', { file: pick(['guide.pdf', 'terms.pdf']) });

      // A visitor who signs in does it in their first visit, after its first step: before it they
      // are anonymous, after it the userId is the visitor (a visitor of its own).
      let at = start;
      const identify = (path: string) => {
        identified = true;
        at += 20_000;
        sent.push({
          call: 'identify',
          messageId: `m-${n++}`,
          anonymousId,
          userId: `user-${i}`,
          at,
          path,
          event: undefined,
          properties: {},
          visit,
        });
      };
      steps.forEach(([call, path, event, properties], k) => {
        if (signedIn && !identified && k === 1) identify(path);
        at += (1 + next(3)) * MINUTE;
        const userId = signedIn && identified ? `user-${i}` : undefined;
        sent.push({ call, messageId: `m-${n++}`, anonymousId, userId, at, path, event, properties, visit });
      });
      // A one-step visit: the identify comes after it, alone in its visitor's session (it counts nowhere).
      if (signedIn && !identified) identify(steps[0]?.[1] ?? '/');
    }
  }
  return sent;
}

/** What analytics.js would send as the call's context: the page it is made on, the visit's referrer and campaign. */
function contextOf(m: Sent) {
  const url = `${SHOP}${m.path}${m.visit.query}`;
  return {
    ip: m.visit.ip,
    userAgent: m.visit.userAgent,
    page: { path: m.path, url, ...(m.visit.referrer === undefined ? {} : { referrer: m.visit.referrer }), title: m.path },
    ...(m.visit.campaign === undefined ? {} : { campaign: m.visit.campaign }),
  };
}

async function send(server: ServerProcess, messages: readonly Sent[]): Promise<void> {
  const analytics = new Analytics({ writeKey: server.writeKey, host: server.url, flushAt: 100, flushInterval: 200 });
  const failures: unknown[] = [];
  analytics.on('error', (err) => failures.push(err));
  for (const m of messages) {
    const common = { anonymousId: m.anonymousId, messageId: m.messageId, timestamp: new Date(m.at), context: contextOf(m) };
    const who = m.userId === undefined ? common : { ...common, userId: m.userId };
    if (m.call === 'page') analytics.page({ ...who, name: m.path, properties: { path: m.path, url: `${SHOP}${m.path}` } });
    else if (m.call === 'track') analytics.track({ ...who, event: m.event as string, properties: m.properties });
    else analytics.identify({ ...who, userId: m.userId as string, traits: { plan: 'trial' } });
  }
  await analytics.closeAndFlush({ timeout: 30_000 });
  expect(failures).toEqual([]);
}

// ---- The plain computation ----------------------------------------------------------------

/** A sent message as the definitions see it. */
interface Fact {
  messageId: string;
  visitor: string;
  at: number;
  /** identify counts nowhere. */
  kind: 'pageview' | 'event' | 'other';
  page: string;
  name: string | undefined;
  properties: Record<string, string>;
  bot: boolean;
  country: string;
  source: string;
  referrer: string | null;
}

const hostOf = (url: string) => new URL(url).hostname.replace(/^www\./, '');

function factOf(m: Sent): Fact {
  const ownHost = hostOf(SHOP);
  const referrerHost = m.visit.referrer === undefined ? undefined : hostOf(m.visit.referrer);
  const external = referrerHost !== undefined && referrerHost !== ownHost;
  const urlSource = new URLSearchParams(m.visit.query).get('utm_source') ?? undefined;
  const referrer = external ? new URL(m.visit.referrer as string) : undefined;
  return {
    messageId: m.messageId,
    visitor: m.userId ?? m.anonymousId,
    at: m.at,
    kind: m.call === 'page' ? 'pageview' : m.call === 'track' ? 'event' : 'other',
    page: m.path,
    name: m.event,
    properties: m.properties,
    bot: m.visit.userAgent === GOOGLEBOT,
    country: COUNTRY_OF_IP[m.visit.ip] ?? NONE,
    source: m.visit.campaign?.source ?? urlSource ?? (external ? (referrerHost as string) : 'Direct'),
    referrer: referrer ? `${referrer.protocol}//${referrer.host}${referrer.pathname}` : null,
  };
}

interface Range {
  fromMs: number;
  toMs: number;
}

/** `7d` in UTC (the site's zone): today and the 6 days before; its previous period the 7 days before that. */
function sevenDays(now: number): { current: Range; previous: Range } {
  const tomorrow = Math.floor(now / DAY) * DAY + DAY;
  return { current: { fromMs: tomorrow - 7 * DAY, toMs: tomorrow }, previous: { fromMs: tomorrow - 14 * DAY, toMs: tomorrow - 7 * DAY } };
}

/** A row of a query answer. */
interface Row {
  dimensions: string[];
  metrics: number[];
}

/** The query API's order without order_by: the first metric descending, ties by the dimension ascending. */
const defaultOrder = (a: Row, b: Row) =>
  (b.metrics[0] ?? 0) - (a.metrics[0] ?? 0) || ((a.dimensions[0] ?? '') < (b.dimensions[0] ?? '') ? -1 : 1);

const round = (x: number, digits: number) => Math.round(x * 10 ** digits) / 10 ** digits;
const percent = (part: number, whole: number) => (whole === 0 ? 0 : round((100 * part) / whole, 2));

/** Sessions: a visitor's counted events with gaps of at most 30 minutes, in time order. */
function sessionsOf(facts: readonly Fact[]): Fact[][] {
  const byVisitor = new Map<string, Fact[]>();
  for (const f of facts) byVisitor.set(f.visitor, [...(byVisitor.get(f.visitor) ?? []), f]);
  const sessions: Fact[][] = [];
  for (const list of byVisitor.values()) {
    list.sort((a, b) => a.at - b.at);
    let current: Fact[] = [];
    for (const f of list) {
      const last = current[current.length - 1];
      if (last !== undefined && f.at - last.at > SESSION_GAP) {
        sessions.push(current);
        current = [];
      }
      current.push(f);
    }
    sessions.push(current);
  }
  return sessions;
}

/** The human page views and custom events of a range: every figure counts these. */
const counted = (facts: readonly Fact[], r: Range) =>
  facts.filter((f) => !f.bot && f.kind !== 'other' && f.at >= r.fromMs && f.at < r.toMs);

/** visitors, visits, pageviews, bounce_rate, events of the matching events (docs/query.md "Metrics"). */
function summary(facts: readonly Fact[], r: Range, matches: (f: Fact) => boolean = () => true) {
  const inRange = counted(facts, r);
  const matching = inRange.filter(matches);
  const visits = sessionsOf(inRange).filter((s) => s.some(matches));
  const bounces = visits.filter((s) => s.filter((f) => f.kind === 'pageview').length <= 1).length;
  return {
    visitors: new Set(matching.map((f) => f.visitor)).size,
    visits: visits.length,
    pageviews: matching.filter((f) => f.kind === 'pageview').length,
    bounce_rate: percent(bounces, visits.length),
    events: matching.filter((f) => f.kind === 'event').length,
    clicks: matching.filter((f) => f.name === 'Product Clicked' && f.properties['product_id'] !== undefined).length,
  };
}

const GOALS = [
  { name: 'Pro signup', event: 'Signed Up', props: { plan: 'pro' } },
  { name: 'Pricing', page: '/pricing*' },
] as const;
type GoalSpec = (typeof GOALS)[number];

function completes(goal: GoalSpec, f: Fact): boolean {
  if ('page' in goal) return f.kind === 'pageview' && matchesPagePattern(goal.page, f.page);
  return f.kind === 'event' && f.name === goal.event && Object.entries(goal.props).every(([k, v]) => f.properties[k] === v);
}

/** [converting visitors, conversions, conversion_rate] of a goal. */
function goalFigures(facts: readonly Fact[], r: Range, goal: GoalSpec): [number, number, number] {
  const inRange = counted(facts, r);
  const completions = inRange.filter((f) => completes(goal, f));
  const converters = new Set(completions.map((f) => f.visitor)).size;
  return [converters, completions.length, percent(converters, new Set(inRange.map((f) => f.visitor)).size)];
}

function funnel(facts: readonly Fact[], r: Range) {
  const rows = facts
    .filter((f) => f.kind !== 'other')
    .map(
      (f) =>
        ({
          site_id: 's',
          message_id: f.messageId,
          ts: f.at,
          kind: f.kind,
          visitor: f.visitor,
          page: f.page,
          name: f.name ?? null,
          bot: f.bot,
        }) as EventRow,
    );
  const steps = [{ page: '/' }, { page: '/pricing' }, { event: 'Signed Up' }];
  const visitors = modelFunnel(rows, { siteId: 's', ...r, steps, windowMs: null });
  const entered = visitors[0] ?? 0;
  return visitors.map((v, k) => ({ visitors: v, conversion_rate: percent(v, entered), dropoff: k === 0 ? 0 : (visitors[k - 1] ?? 0) - v }));
}

/**
 * Percent change for counts (null from 0), the difference in points for rates. The percent has one
 * decimal: docs/query.md names no precision, but its example answer (7.9, -2.5) shows one.
 */
function change(metric: string, now: number, before: number): number | null {
  if (metric === 'bounce_rate') return round(now - before, 2);
  return before === 0 ? null : round((100 * (now - before)) / before, 1);
}

// ---- The test -----------------------------------------------------------------------------

describe.each(['external', 'embedded'] as const)('query API acceptance through the Segment SDK (%s)', (mode) => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  it('answers filtered summaries, goals, a funnel, a comparison and countries exactly', { timeout: 120_000 }, async () => {
    const geo = openGeoDatabase();
    for (const [ip, country] of Object.entries(COUNTRY_OF_IP)) expect(geo(ip).country ?? null, ip).toBe(country);

    const env: Record<string, string> = { TALLY_PG_SCHEMA: uniqueName('qacc'), TALLY_REDIS_PREFIX: uniqueName('qacc') };
    if (mode === 'external') {
      Object.assign(env, { REDIS_URL, DATABASE_URL });
      cleanups.push(() => dropTestData(testConfig('external', env)));
    } else {
      const dir = await mkdtemp(join(tmpdir(), 'tally-qacc-'));
      env['DATA_DIR'] = dir;
      cleanups.push(() => rm(dir, { recursive: true, force: true }));
    }
    const server = await startServerProcess(env);
    cleanups.push(() => stopServerProcess(server, 'SIGKILL'));
    const call = async (method: 'GET' | 'POST', path: string, body?: unknown) => {
      const res = await fetch(server.url + path, {
        method,
        headers: { authorization: `Bearer ${server.secretKey}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      const answer = await res.json();
      expect(res.status, JSON.stringify(answer)).toBe(method === 'POST' && path === '/v1/goals' ? 201 : 200);
      return answer;
    };
    const query = (body: Record<string, unknown>) => call('POST', '/v1/stats/query', { date_range: '7d', ...body });

    const sent = dataSet(Date.now());
    // The last messages go out with a re-sent slice (an SDK retrying): the slice is counted once.
    const held = sent.slice(-40);
    await send(server, sent.slice(0, -40));
    await send(server, [...sent.filter((_, i) => i % 25 === 0), ...held]);
    const facts = sent.map(factOf);
    expect(new Set(facts.map((f) => f.messageId)).size).toBe(facts.length);

    const total = facts.filter((f) => f.kind !== 'other').length;
    const stored = async () => {
      const [pageviews, events] = (await query({ date_range: 'all', metrics: ['pageviews', 'events'], include: { bots: true } })).results[0]
        .metrics;
      expect(pageviews + events).toBe(total);
    };
    await eventually(stored, 30_000, 250);

    const { current, previous } = sevenDays(Date.now());
    const all = summary(facts, current);
    // The data set holds what each check is about.
    expect(all.visitors).toBeGreaterThan(80);
    expect(facts.filter((f) => f.bot && f.at >= current.fromMs).length).toBeGreaterThan(0);
    expect(summary(facts, previous).visitors).toBeGreaterThan(20);

    // A summary filtered on the source, and one on the referrer.
    const figures = ['visitors', 'pageviews', 'visits', 'bounce_rate'] as const;
    const pickFigures = (s: ReturnType<typeof summary>) => figures.map((m) => s[m]);
    const google = summary(facts, current, (f) => f.source === 'google.com');
    expect(google.visits).toBeGreaterThan(5);
    expect((await query({ metrics: figures, filters: ['is', 'source', ['google.com']] })).results).toEqual([
      { dimensions: [], metrics: pickFigures(google) },
    ]);
    const hackerNews = summary(facts, current, (f) => f.referrer?.includes('ycombinator') === true);
    expect((await query({ metrics: figures, filters: ['contains', 'referrer', ['ycombinator']] })).results).toEqual([
      { dimensions: [], metrics: pickFigures(hackerNews) },
    ]);
    const campaigns = summary(facts, current, (f) => f.source === 'newsletter' || f.source === 'producthunt');
    expect((await query({ metrics: figures, filters: ['is', 'source', ['newsletter', 'producthunt']] })).results).toEqual([
      { dimensions: [], metrics: pickFigures(campaigns) },
    ]);
    // The GET summary with the compact filter: the same figures (its bounce rate a share), bots counted apart.
    const googleBots = facts.filter((f) => f.bot && f.kind !== 'other' && f.source === 'google.com' && f.at >= current.fromMs).length;
    expect(await call('GET', '/v1/stats/summary?period=7d&filters=source%3D%3Dgoogle.com')).toMatchObject({
      visitors: google.visitors,
      pageviews: google.pageviews,
      events: google.events,
      clicks: google.clicks,
      bounceRate: google.bounce_rate / 100,
      bots: googleBots,
    });

    // Goals, defined after the events: one on an event's property, one on a page pattern.
    for (const goal of GOALS) await call('POST', '/v1/goals', goal);
    const pro = GOALS[0];
    expect(goalFigures(facts, current, pro)[1]).toBeGreaterThan(3);
    expect((await query({ metrics: ['visitors', 'conversions', 'conversion_rate'], filters: ['is', 'goal', [pro.name]] })).results).toEqual(
      [{ dimensions: [], metrics: goalFigures(facts, current, pro) }],
    );
    const byGoal = GOALS.map((goal): Row => ({ dimensions: [goal.name], metrics: goalFigures(facts, current, goal) }))
      .filter((row) => row.metrics.some((m) => m !== 0))
      .sort(defaultOrder);
    expect((await query({ metrics: ['visitors', 'conversions', 'conversion_rate'], dimensions: ['goal'] })).results).toEqual(byGoal);

    // A funnel over visits (sessions do not bound it).
    const steps = funnel(facts, current);
    expect(steps[2]?.visitors).toBeGreaterThan(3);
    expect(
      await call('POST', '/v1/stats/funnel', { date_range: '7d', steps: [{ page: '/' }, { page: '/pricing' }, { event: 'Signed Up' }] }),
    ).toEqual({ steps });

    // The 7 days against the 7 before them.
    const compared = ['visitors', 'visits', 'pageviews', 'bounce_rate', 'events'] as const;
    const before = summary(facts, previous);
    expect((await query({ metrics: compared, include: { comparison: 'previous_period' } })).results).toEqual([
      {
        dimensions: [],
        metrics: compared.map((m) => all[m]),
        comparison: { metrics: compared.map((m) => before[m]), change: compared.map((m) => change(m, all[m], before[m])) },
      },
    ]);

    // Countries, from context.ip; the private address places no one.
    const byCountry = new Map<string, Fact[]>();
    for (const f of counted(facts, current)) byCountry.set(f.country, [...(byCountry.get(f.country) ?? []), f]);
    const countries = [...byCountry]
      .map(
        ([country, list]): Row => ({
          dimensions: [country],
          metrics: [new Set(list.map((f) => f.visitor)).size, list.filter((f) => f.kind === 'pageview').length],
        }),
      )
      .sort(defaultOrder);
    expect(countries.map((row) => row.dimensions[0])).toContain(NONE);
    expect((await query({ metrics: ['visitors', 'pageviews'], dimensions: ['country'] })).results).toEqual(countries);

    // Nothing arrived after the checks began (the re-sent slice stayed counted once).
    await stored();
    expect(await stopServerProcess(server)).toBe(0);
  });
});
