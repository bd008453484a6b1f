import { hash, randomBytes } from 'node:crypto';
import { isbot } from 'isbot';
import { UAParser } from 'ua-parser-js';
import type { CollectedMessage } from '../collect/message.js';
import { clickedProduct } from './aggregate.js';
import type { GeoLookup } from './geo.js';

// What the processor learns from a message before counting it: its kind, its visitor, and the
// dimensions it is counted under. Done here, not in the collector, to keep ingestion cheap.

export const PAGE_ENGAGED = 'Page Engaged';
/** Longest dimension value kept (longer page paths, referrers … are cut). */
export const MAX_VALUE_LENGTH = 300;
/** Daily salts live this long, then they are gone (Plausible's rule: no visitor is followed past a day). */
export const SALT_TTL_SECONDS = 48 * 3600;
/** One engagement counts at most an hour (a tab left open is not reading). */
export const MAX_ENGAGED_MS = 3_600_000;

export type EventKind = 'pageview' | 'event' | 'engagement' | 'other';

export interface Enriched {
  kind: EventKind;
  /** Event time, ms (skew-corrected by the collector). */
  at: number;
  /** userId, else anonymousId, else a daily-salted hash of site + IP + user agent. */
  visitor: string;
  /**
   * The signed-in user (userId), whom per-user counters and the user ranking count. An
   * anonymousId names a browser or device, as the hash does: a visitor, not a user.
   */
  user: string | undefined;
  bot: boolean;
  /** Host of the page, without `www.` (as Plausible keeps it). */
  hostname: string | undefined;
  page: string | undefined;
  /** Host of the referrer, without `www.`; none when it is the page's own host (a link inside the site refers no one). */
  referrer: string | undefined;
  /** The referrer as scheme, host and path (its query and fragment dropped: they carry search terms and tokens); set with `referrer`. */
  referrerUrl: string | undefined;
  /** utm_source, else the referrer's host, else 'Direct'. */
  source: string;
  utm: Utm;
  browser: string;
  os: string;
  device: string;
  /** Track event name (not for Page Engaged). */
  event: string | undefined;
  product: string | undefined;
  /** A track event's revenue (see revenueOf). */
  revenue: number | undefined;
  engagedMs: number;
  /** Custom properties as text (see propsOf for what is kept). */
  props: Readonly<Record<string, string>>;
  /** ISO 3166-1 alpha-2, from the client's IP (which goes no further than the lookup). */
  country: string | undefined;
  region: string | undefined;
}

/** Campaign fields: context.campaign (Segment) first, each missing one from the page URL's utm_* query. */
export interface Utm {
  source: string | undefined;
  medium: string | undefined;
  campaign: string | undefined;
  term: string | undefined;
  content: string | undefined;
}

/** A source for visits with neither a utm_source nor a referrer from another host. */
export const DIRECT = 'Direct';
/** Custom properties kept per event (Plausible's limit); later ones are dropped. */
export const MAX_PROPS = 30;
/** A property whose name is longer is dropped (a cut name could merge two properties). */
export const MAX_PROP_KEY_LENGTH = 300;
/** A property's value is cut to this many characters. */
export const MAX_PROP_VALUE_LENGTH = 2000;
/** Revenue of at least this size is refused (DOUBLE keeps cents exact below it). */
export const MAX_REVENUE = 1e13;

/**
 * Properties a page view carries as columns or as page context (Segment's page properties, and
 * what Plausible's route adds), and a track event's revenue: not custom properties.
 */
const PAGE_PROPERTIES = new Set(['url', 'path', 'referrer', 'search', 'title', 'keywords', 'name']);
const EVENT_PROPERTIES = new Set(['revenue']);

const str = (value: unknown): string | undefined => (typeof value === 'string' && value !== '' ? value : undefined);
const obj = (value: unknown): Record<string, unknown> =>
  value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
const cut = (value: string | undefined) => (value === undefined ? undefined : value.slice(0, MAX_VALUE_LENGTH));

function parseUrl(value: string | undefined): URL | undefined {
  if (value === undefined) return undefined;
  try {
    return new URL(value);
  } catch {
    return undefined;
  }
}

const hostOf = (url: URL | undefined) => url?.hostname.replace(/^www\./, '') || undefined;

/** The referrer without its query and fragment, cut like every value. */
function referrerUrlOf(url: URL): string | undefined {
  return cut(`${url.protocol}//${url.host}${url.pathname}`);
}

function utmOf(campaign: Record<string, unknown>, pageUrl: URL | undefined): Utm {
  const field = (segmentName: string, param: string) =>
    cut(str(campaign[segmentName]) ?? str(pageUrl?.searchParams.get(param) ?? undefined));
  return {
    source: field('source', 'utm_source'),
    medium: field('medium', 'utm_medium'),
    campaign: field('name', 'utm_campaign'),
    term: field('term', 'utm_term'),
    content: field('content', 'utm_content'),
  };
}

const DECIMAL = /^\s*-?\d+(\.\d+)?\s*$/;

/**
 * `properties.revenue` of a track event: a number, a decimal string, or Plausible's
 * `{amount, currency}` (the amount taken, the currency not converted: a site reports in one).
 * Anything else, or a magnitude of MAX_REVENUE or more, is no revenue.
 */
export function revenueOf(value: unknown): number | undefined {
  const amount = value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as { amount?: unknown }).amount : value;
  let n: number | undefined;
  if (typeof amount === 'number') n = amount;
  else if (typeof amount === 'string' && DECIMAL.test(amount)) n = Number(amount);
  return n !== undefined && Number.isFinite(n) && Math.abs(n) < MAX_REVENUE ? n : undefined;
}

/**
 * Custom properties (Segment's properties, Plausible's props) as text: strings as they are,
 * numbers and booleans as JSON writes them; null, objects and arrays are no property. Names of
 * 1..MAX_PROP_KEY_LENGTH characters, values cut to MAX_PROP_VALUE_LENGTH, the first MAX_PROPS
 * in the message's order. What the event already carries as a column is left out.
 */
export function propsOf(properties: Record<string, unknown>, kind: EventKind): Record<string, string> {
  const props: Record<string, string> = {};
  if (kind !== 'pageview' && kind !== 'event') return props;
  const taken = kind === 'pageview' ? PAGE_PROPERTIES : EVENT_PROPERTIES;
  let n = 0;
  for (const [key, value] of Object.entries(properties)) {
    if (n >= MAX_PROPS) break;
    if (key === '' || key.length > MAX_PROP_KEY_LENGTH || taken.has(key)) continue;
    let text: string;
    if (typeof value === 'string') text = value.slice(0, MAX_PROP_VALUE_LENGTH);
    else if (typeof value === 'number' || typeof value === 'boolean') text = String(value);
    else continue;
    props[key] = text;
    n += 1;
  }
  return props;
}

interface Agent {
  browser: string;
  os: string;
  device: string;
  bot: boolean;
}

/** User-agent parsing is the costly step; the same few agents repeat, so they are cached. */
function createAgentCache(max = 5000) {
  const cache = new Map<string, Agent>();
  return (ua: string): Agent => {
    let agent = cache.get(ua);
    if (agent) return agent;
    const parsed = UAParser(ua);
    agent = {
      browser: parsed.browser.name ?? 'Unknown',
      os: parsed.os.name ?? 'Unknown',
      // ua-parser names mobile, tablet, … and leaves desktops without a type.
      device: parsed.device.type ?? (ua === '' ? 'Unknown' : 'desktop'),
      bot: isbot(ua),
    };
    if (cache.size >= max) cache.clear();
    cache.set(ua, agent);
    return agent;
  };
}

/** Salts shared by every processor (the real-time layer holds them); cached per UTC day. */
export type SaltSource = (day: string) => Promise<string>;

export function createSaltSource(
  getOrSet: (key: string, value: string, ttlSeconds: number) => Promise<string>,
  keyOf: (day: string) => string,
): SaltSource {
  const cached = new Map<string, string>();
  return async (day) => {
    const hit = cached.get(day);
    if (hit) return hit;
    const salt = await getOrSet(keyOf(day), randomBytes(16).toString('hex'), SALT_TTL_SECONDS);
    if (cached.size > 2) cached.clear();
    cached.set(day, salt);
    return salt;
  };
}

export function hashVisitor(salt: string, siteId: string, ip: string, ua: string): string {
  return '~' + hash('sha256', `${salt}\n${siteId}\n${ip}\n${ua}`, 'hex').slice(0, 16);
}

const saltDay = (m: CollectedMessage) => m.receivedAt.slice(0, 10);

/** `geo` places the client's IP (context.ip); the address goes no further than the lookup. */
export function createEnricher(salts: SaltSource, geo: GeoLookup) {
  const agentOf = createAgentCache();

  function enrichOne(siteId: string, m: CollectedMessage, saltOf: Map<string, string>): Enriched {
    const context = m.context;
    const page = obj(context['page']);
    const ua = str(context['userAgent']) ?? '';
    const agent = agentOf(ua);
    const user = m.userId;
    const visitor = user ?? m.anonymousId ?? hashVisitor(saltOf.get(saltDay(m)) ?? '', siteId, str(context['ip']) ?? '', ua);

    const pageUrl = parseUrl(str(page['url']) ?? str(m.properties['url']));
    let kind: EventKind = 'other';
    if (m.type === 'page' || m.type === 'screen') kind = 'pageview';
    else if (m.type === 'track') kind = m.event === PAGE_ENGAGED ? 'engagement' : 'event';

    let path = str(page['path']) ?? str(m.properties['path']) ?? pageUrl?.pathname;
    if (m.type === 'screen') path ??= m.name;
    const referrerUrl = parseUrl(str(page['referrer']) ?? str(m.properties['referrer']));
    const referrerHost = hostOf(referrerUrl);
    const referred = referrerUrl !== undefined && referrerHost !== undefined && referrerHost !== hostOf(pageUrl);
    const referrer = referred ? cut(referrerHost) : undefined;
    const utm = utmOf(obj(context['campaign']), pageUrl);
    const engaged = m.properties['engaged_ms'];
    const place = geo(str(context['ip']) ?? '');

    return {
      kind,
      at: Date.parse(m.timestamp),
      visitor,
      user,
      // Crawlers render pages; server-side SDKs (whose agents isbot also flags) send no page context.
      bot: agent.bot && Object.keys(page).length > 0,
      hostname: cut(hostOf(pageUrl)),
      page: cut(path),
      referrer,
      referrerUrl: referred ? referrerUrlOf(referrerUrl) : undefined,
      source: utm.source ?? referrer ?? DIRECT,
      utm,
      browser: agent.browser,
      os: agent.os,
      device: agent.device,
      event: kind === 'event' ? m.event : undefined,
      product: clickedProduct(m),
      revenue: kind === 'event' ? revenueOf(m.properties['revenue']) : undefined,
      engagedMs:
        kind === 'engagement' && typeof engaged === 'number' && engaged > 0 && Number.isFinite(engaged)
          ? Math.min(MAX_ENGAGED_MS, Math.round(engaged))
          : 0,
      props: propsOf(m.properties, kind),
      country: place.country,
      region: place.region,
    };
  }

  /** Enriches a site's messages; the salts of anonymous visitors are fetched once per day seen. */
  return async function enrich(siteId: string, messages: readonly CollectedMessage[]): Promise<Enriched[]> {
    const saltOf = new Map<string, string>();
    for (const m of messages) {
      if (m.userId === undefined && m.anonymousId === undefined && !saltOf.has(saltDay(m))) {
        saltOf.set(saltDay(m), await salts(saltDay(m)));
      }
    }
    return messages.map((m) => enrichOne(siteId, m, saltOf));
  };
}

export type Enrich = ReturnType<typeof createEnricher>;
