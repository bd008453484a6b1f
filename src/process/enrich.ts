import { createHash, randomBytes } from 'node:crypto';
import { isbot } from 'isbot';
import { UAParser } from 'ua-parser-js';
import type { CollectedMessage } from '../collect/message.js';
import { clickedProduct } from './aggregate.js';

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
  page: string | undefined;
  referrer: string | undefined;
  utmSource: string | undefined;
  browser: string;
  os: string;
  device: string;
  /** Track event name (not for Page Engaged). */
  event: string | undefined;
  product: string | undefined;
  engagedMs: number;
}

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
  return '~' + createHash('sha256').update(`${salt}\n${siteId}\n${ip}\n${ua}`).digest('hex').slice(0, 16);
}

const saltDay = (m: CollectedMessage) => m.receivedAt.slice(0, 10);

export function createEnricher(salts: SaltSource) {
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
    const referrerHost = hostOf(parseUrl(str(page['referrer']) ?? str(m.properties['referrer'])));
    const campaign = obj(context['campaign']);
    const utmSource = str(campaign['source']) ?? str(pageUrl?.searchParams.get('utm_source') ?? undefined);
    const engaged = m.properties['engaged_ms'];

    return {
      kind,
      at: Date.parse(m.timestamp),
      visitor,
      user,
      // Crawlers render pages; server-side SDKs (whose agents isbot also flags) send no page context.
      bot: agent.bot && Object.keys(page).length > 0,
      page: cut(path),
      referrer: cut(referrerHost !== undefined && referrerHost !== hostOf(pageUrl) ? referrerHost : undefined),
      utmSource: cut(utmSource),
      browser: agent.browser,
      os: agent.os,
      device: agent.device,
      event: kind === 'event' ? m.event : undefined,
      product: clickedProduct(m),
      engagedMs:
        kind === 'engagement' && typeof engaged === 'number' && engaged > 0 && Number.isFinite(engaged)
          ? Math.min(MAX_ENGAGED_MS, Math.round(engaged))
          : 0,
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
