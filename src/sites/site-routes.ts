import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import Type from 'typebox';
import { MAX_ID_LENGTH } from '../collect/message.js';
import type { Config } from '../config.js';
import { TallyError } from '../errors.js';
import type { Auth } from '../http/auth.js';
import { isStorableText } from '../storage/storable-text.js';
import { zoneName } from '../time/zone.js';
import { safeEqual } from './site-keys.js';
import type { SiteChange, SiteRepository } from './site-repository.js';
import { issueUserToken } from './user-token.js';

// A domain as Plausible's tracker sends it (data-domain): a host name, maybe with a path; never
// a comma, which separates several sites in one event.
const Domain = Type.String({ minLength: 1, maxLength: 253, pattern: '^[^\\s,]+$' });
const Domains = Type.Array(Domain, { maxItems: 50 });
/** An IANA name (checked against the runtime's zone data in the handler). */
const TimeZone = Type.String({ minLength: 1, maxLength: 64, description: 'IANA time zone, e.g. Europe/Berlin; default UTC' });
/** The longest retention: 100 years. */
export const MAX_RETENTION_DAYS = 36_500;
const RetentionDays = Type.Union([Type.Integer({ minimum: 1, maximum: MAX_RETENTION_DAYS }), Type.Null()], {
  description: 'Days raw events are kept; null keeps them forever (the default)',
});
const MAX_ADMIN_BODY = 16 * 1024;

const SiteFields = {
  id: Type.String(),
  name: Type.String(),
  domains: Type.Array(Type.String()),
  timezone: Type.String(),
  retentionDays: Type.Union([Type.Integer(), Type.Null()]),
};
const SiteSettings = Type.Object(SiteFields, {
  examples: [{ id: 's_1f3a', name: 'shop.example', domains: ['www.shop.example'], timezone: 'Europe/Berlin', retentionDays: null }],
});
const CreatedSite = Type.Object({ ...SiteFields, writeKey: Type.String(), secretKey: Type.String() });
const SiteParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 100 }) });

/** The settings of a request body, with the time zone checked and spelled as stored. */
function settingsOf(body: { timezone?: string; retentionDays?: number | null }): Omit<SiteChange, 'domains'> {
  const change: Omit<SiteChange, 'domains'> = {};
  if (body.timezone !== undefined) {
    const timezone = zoneName(body.timezone);
    if (timezone === null) {
      throw new TallyError('invalid_request', 'timezone must be an IANA time zone name, such as Europe/Berlin or UTC.', '/timezone');
    }
    change.timezone = timezone;
  }
  if (body.retentionDays !== undefined) change.retentionDays = body.retentionDays;
  return change;
}

export function registerSiteRoutes(app: FastifyInstance, deps: { config: Config; sites: SiteRepository; auth: Auth }): void {
  const routes = app.withTypeProvider<TypeBoxTypeProvider>();

  /** True for ADMIN_TOKEN as a Bearer token; null when the header holds some other Bearer token. */
  function bearerIsAdmin(request: FastifyRequest): boolean | null {
    const header = request.headers.authorization ?? '';
    const token = header.toLowerCase().startsWith('bearer ') ? header.slice(7).trim() : '';
    if (!token) return false;
    return deps.config.adminToken !== undefined && safeEqual(token, deps.config.adminToken) ? true : null;
  }

  routes.post(
    '/v1/sites',
    {
      bodyLimit: MAX_ADMIN_BODY,
      schema: {
        body: Type.Object(
          {
            name: Type.String({ minLength: 1, maxLength: 100, pattern: '^[^\\s].*$' }),
            domains: Type.Optional(Domains),
            timezone: Type.Optional(TimeZone),
            retentionDays: Type.Optional(RetentionDays),
          },
          {
            examples: [
              { name: 'shop.example' },
              { name: 'shop.example', domains: ['www.shop.example'], timezone: 'Europe/Berlin', retentionDays: 400 },
            ],
          },
        ),
        response: { 201: CreatedSite },
      },
    },
    async (request, reply) => {
      if (!deps.config.adminToken) throw new TallyError('forbidden', 'Set ADMIN_TOKEN to create sites over HTTP.');
      const admin = bearerIsAdmin(request);
      if (admin === false) throw new TallyError('unauthorized', 'Send ADMIN_TOKEN as a Bearer token.');
      if (admin === null) throw new TallyError('unauthorized', 'That admin token is not valid.');
      const name = request.body.name.trim();
      if (!isStorableText(name))
        throw new TallyError('invalid_request', 'name must not contain NUL characters or unpaired UTF-16 surrogates.', '/name');
      const created = await deps.sites.create(name, request.body.domains, settingsOf(request.body));
      return reply.status(201).send(created);
    },
  );

  /** The admin token may read and change any site; a secret key only its own. */
  async function authorizeSite(request: FastifyRequest, id: string): Promise<void> {
    if (bearerIsAdmin(request)) return;
    const own = await deps.auth.secret(request);
    if (own.id !== id) throw new TallyError('forbidden', "A site's secret key can read and change only that site.");
  }

  routes.get('/v1/sites/:id', { schema: { params: SiteParams, response: { 200: SiteSettings } } }, async (request) => {
    await authorizeSite(request, request.params.id);
    const settings = await deps.sites.settings(request.params.id);
    if (!settings) throw new TallyError('not_found', `No site has the id "${request.params.id}".`);
    return settings;
  });

  // Changes a site's settings; what the body leaves out stays as it is.
  routes.patch(
    '/v1/sites/:id',
    {
      bodyLimit: MAX_ADMIN_BODY,
      schema: {
        params: SiteParams,
        body: Type.Object(
          { domains: Type.Optional(Domains), timezone: Type.Optional(TimeZone), retentionDays: Type.Optional(RetentionDays) },
          { examples: [{ timezone: 'Asia/Kolkata' }, { domains: ['www.shop.example'], retentionDays: null }] },
        ),
        response: { 200: SiteSettings },
      },
    },
    async (request) => {
      const { id } = request.params;
      await authorizeSite(request, id);
      const change: SiteChange = settingsOf(request.body);
      if (request.body.domains !== undefined) change.domains = request.body.domains;
      const settings = await deps.sites.update(id, change);
      if (!settings) throw new TallyError('not_found', `No site has the id "${id}".`);
      return settings;
    },
  );

  routes.post(
    '/v1/users/:userId/token',
    {
      schema: {
        params: Type.Object({ userId: Type.String({ minLength: 1, maxLength: MAX_ID_LENGTH }) }),
        response: { 200: Type.Object({ token: Type.String(), expiresAt: Type.String() }) },
      },
    },
    async (request) => {
      const site = await deps.auth.secret(request);
      const { userId } = request.params;
      const issued = issueUserToken(site.id, userId, site.tokenSigningKey, deps.config.userTokenTtlSeconds);
      return { token: issued.token, expiresAt: issued.expiresAt.toISOString() };
    },
  );
}
