import { randomUUID } from 'node:crypto';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import Type, { type Static } from 'typebox';
import { TallyError } from '../errors.js';
import { jsonDeeperThan, MAX_JSON_DEPTH, tooDeep } from '../http/json-body.js';
import type { SiteRepository } from '../sites/site-repository.js';
import { inflateBody } from './inflate-body.js';
import type { CollectedMessage } from './message.js';
import { MAX_MESSAGE_BYTES, MAX_NAME_LENGTH, refuseUnstorable } from './message.js';
import { type CollectDeps, requestFacts } from './segment-routes.js';

// Plausible's Events API, POST /api/event, so Plausible's tracker works unchanged. The tracker
// posts short keys (n, u, d, r, p, $ = revenue; engagement: e = engaged ms, sd = scroll depth), the API docs
// long ones (name, url, domain, referrer, props, revenue): both are accepted. `domain` names the site
// (comma-separated: several sites): its name, or one of its `domains` (docs/collect.md).
// Plausible sends no visitor id: the processor derives one from a daily-salted hash of site +
// IP + user agent. Answered 202, as Plausible does, also for a domain no site answers to: a
// tracker left on a page must not see errors; the metric shows such events instead.

const MAX_URL_LENGTH = 2000;
const MAX_DOMAINS = 10;
const MAX_PROPS = 30;

const Url = Type.String({ minLength: 1, maxLength: MAX_URL_LENGTH });
const Props = Type.Record(
  Type.String({ maxLength: 300 }),
  Type.Union([Type.String({ maxLength: 2000 }), Type.Number(), Type.Boolean(), Type.Null()]),
  {
    maxProperties: MAX_PROPS,
  },
);
const Referrer = Type.Union([Type.String({ maxLength: MAX_URL_LENGTH }), Type.Null()]);
const Name = Type.String({ minLength: 1, maxLength: MAX_NAME_LENGTH });
/** Plausible's revenue of a custom event (`$` in the tracker); the processor reads the amount (src/process/enrich.ts). */
const Revenue = Type.Object({
  amount: Type.Union([Type.Number(), Type.String({ minLength: 1, maxLength: 64 })]),
  currency: Type.Optional(Type.String({ maxLength: 16 })),
});

const PlausibleEvent = Type.Object(
  {
    name: Type.Optional(Name),
    n: Type.Optional(Name),
    url: Type.Optional(Url),
    u: Type.Optional(Url),
    domain: Type.Optional(Type.String({ minLength: 1, maxLength: 1000 })),
    d: Type.Optional(Type.String({ minLength: 1, maxLength: 1000 })),
    referrer: Type.Optional(Referrer),
    r: Type.Optional(Referrer),
    props: Type.Optional(Props),
    p: Type.Optional(Type.Union([Props, Type.String({ maxLength: 8000 })])),
    e: Type.Optional(Type.Integer({ minimum: 0 })),
    sd: Type.Optional(Type.Integer({ minimum: 0, maximum: 100 })),
    revenue: Type.Optional(Revenue),
    $: Type.Optional(Revenue),
  },
  { additionalProperties: true },
);
type PlausibleEvent = Static<typeof PlausibleEvent>;

const invalid = (path: string, message: string) => new TallyError('invalid_event', message, path);

function propsOf(body: PlausibleEvent): Record<string, unknown> {
  if (body.props) return body.props;
  if (typeof body.p !== 'string') return body.p ?? {};
  // Older trackers send props as a JSON string: its depth is bounded as a body's is.
  if (jsonDeeperThan(body.p, MAX_JSON_DEPTH)) throw invalid('/p', tooDeep().message);
  try {
    const parsed: unknown = JSON.parse(body.p);
    if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) return parsed as Record<string, unknown>;
  } catch {
    // reported below
  }
  throw invalid('/p', 'p must be an object of properties.');
}

/** The Segment-spec message a Plausible event stands for. */
export function plausibleMessage(
  body: PlausibleEvent,
  facts: { receivedAt: number; ip: string; userAgent: string | undefined },
): CollectedMessage {
  const name = body.name ?? body.n;
  if (name === undefined) throw invalid('/name', 'name is required.');
  const href = body.url ?? body.u;
  if (href === undefined) throw invalid('/url', 'url is required.');
  let url: URL;
  try {
    url = new URL(href);
  } catch {
    throw invalid(body.url !== undefined ? '/url' : '/u', 'url must be an absolute URL.');
  }
  const referrer = body.referrer ?? body.r ?? '';
  const at = new Date(facts.receivedAt).toISOString();
  const context: Record<string, unknown> = {
    ip: facts.ip,
    page: { url: href, path: url.pathname, referrer, search: url.search },
    library: { name: 'plausible' },
  };
  if (facts.userAgent) context['userAgent'] = facts.userAgent;
  const message: CollectedMessage = {
    type: 'track',
    messageId: `pl-${randomUUID()}`,
    properties: propsOf(body),
    traits: {},
    context,
    timestamp: at,
    receivedAt: at,
  };
  if (name === 'pageview') {
    message.type = 'page';
    message.properties = { ...message.properties, url: href, path: url.pathname };
  } else if (name === 'engagement') {
    message.event = 'Page Engaged';
    message.properties = { engaged_ms: body.e ?? 0, scroll_depth: body.sd ?? 0, path: url.pathname };
  } else {
    message.event = name;
    const revenue = body.revenue ?? body.$;
    if (revenue) message.properties = { ...message.properties, revenue };
  }
  refuseUnstorable(JSON.stringify(message), '');
  return message;
}

export interface PlausibleDeps extends CollectDeps {
  sites: SiteRepository;
  /** Counts events for a domain no site answers to (once per such domain in an event). */
  unknownDomain: { inc(n: number): void };
}

export function registerPlausibleRoute(app: FastifyInstance, deps: PlausibleDeps): void {
  app.withTypeProvider<TypeBoxTypeProvider>().post(
    '/api/event',
    {
      bodyLimit: MAX_MESSAGE_BYTES,
      preParsing: inflateBody,
      config: { validationCode: 'invalid_event' },
      schema: { body: PlausibleEvent },
    },
    async (request, reply) => {
      const body = request.body;
      const domains = (body.domain ?? body.d ?? '')
        .split(',')
        .map((d) => d.trim())
        .filter((d) => d !== '');
      if (domains.length === 0) throw invalid('/domain', 'domain is required.');
      if (domains.length > MAX_DOMAINS) throw invalid('/domain', `domain names at most ${MAX_DOMAINS} sites.`);
      const message = plausibleMessage(body, requestFacts(request));
      const found = await Promise.all(domains.map((d) => deps.sites.byDomain(d)));
      const sites = [...new Map(found.filter((s) => s !== null).map((s) => [s.id, s])).values()];
      const unknown = found.filter((s) => s === null).length;
      if (unknown > 0) deps.unknownDomain.inc(unknown);
      for (const site of sites) deps.rateLimit(site.id);
      // Each site gets its own copy: the same message id in two sites is two events.
      await Promise.all(sites.map((site) => deps.ingest(site.id, [{ ...message, messageId: `${message.messageId}-${site.id}` }])));
      return reply.status(202).type('text/plain; charset=utf-8').send('ok');
    },
  );
}
