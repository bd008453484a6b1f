import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import Type from 'typebox';
import { MAX_ID_LENGTH } from '../collect/message.js';
import type { Config } from '../config.js';
import { TallyError } from '../errors.js';
import type { Auth } from '../http/auth.js';
import { isStorableText } from '../storage/storable-text.js';
import { safeEqual } from './site-keys.js';
import type { SiteRepository } from './site-repository.js';
import { issueUserToken } from './user-token.js';

// A domain as Plausible's tracker sends it (data-domain): a host name, maybe with a path; never
// a comma, which separates several sites in one event.
const Domain = Type.String({ minLength: 1, maxLength: 253, pattern: '^[^\\s,]+$' });
const Domains = Type.Array(Domain, { maxItems: 50 });
const MAX_ADMIN_BODY = 16 * 1024;

const CreatedSite = Type.Object({
  id: Type.String(),
  name: Type.String(),
  writeKey: Type.String(),
  secretKey: Type.String(),
  domains: Type.Array(Type.String()),
});
const ChangedSite = Type.Object({ id: Type.String(), name: Type.String(), domains: Type.Array(Type.String()) });

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
          { name: Type.String({ minLength: 1, maxLength: 100, pattern: '^[^\\s].*$' }), domains: Type.Optional(Domains) },
          { examples: [{ name: 'shop.example' }, { name: 'shop.example', domains: ['www.shop.example'] }] },
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
      const created = await deps.sites.create(name, request.body.domains);
      return reply.status(201).send(created);
    },
  );

  // Changes what a site answers to. Only `domains` for now: the site's time zone (API.md) is a
  // later issue's, and a `timezone` sent meanwhile is refused rather than silently dropped.
  routes.patch(
    '/v1/sites/:id',
    {
      bodyLimit: MAX_ADMIN_BODY,
      schema: {
        params: Type.Object({ id: Type.String({ minLength: 1, maxLength: 100 }) }),
        body: Type.Object({ domains: Domains, timezone: Type.Optional(Type.Unknown()) }),
        response: { 200: ChangedSite },
      },
    },
    async (request) => {
      const { id } = request.params;
      // The admin token may change any site; a secret key only its own.
      if (!bearerIsAdmin(request)) {
        const own = await deps.auth.secret(request);
        if (own.id !== id) throw new TallyError('forbidden', "A site's secret key can change only that site.");
      }
      if (request.body.timezone !== undefined)
        throw new TallyError('invalid_request', "A site's time zone cannot be changed yet.", '/timezone');
      const site = await deps.sites.byId(id);
      if (!site) throw new TallyError('not_found', `No site has the id "${id}".`);
      const domains = await deps.sites.setDomains(site.id, request.body.domains);
      return { id: site.id, name: site.name, domains };
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
