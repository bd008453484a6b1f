import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import Type from 'typebox';
import type { Config } from '../config.js';
import { TallyError } from '../errors.js';
import type { Auth } from '../http/auth.js';
import { MAX_ID_LENGTH } from '../collect/message.js';
import { isStorableText } from '../storage/storable-text.js';
import { safeEqual } from './site-keys.js';
import type { SiteRepository } from './site-repository.js';
import { issueUserToken } from './user-token.js';

const CreatedSite = Type.Object({ id: Type.String(), name: Type.String(), writeKey: Type.String(), secretKey: Type.String() });

export function registerSiteRoutes(app: FastifyInstance, deps: { config: Config; sites: SiteRepository; auth: Auth }): void {
  const routes = app.withTypeProvider<TypeBoxTypeProvider>();
  routes.post(
    '/v1/sites',
    {
      bodyLimit: 4096,
      schema: {
        body: Type.Object({ name: Type.String({ minLength: 1, maxLength: 100, pattern: '^[^\\s].*$' }) }, { examples: [{ name: 'shop.example' }] }),
        response: { 201: CreatedSite },
      },
    },
    async (request, reply) => {
      const header = request.headers.authorization ?? '';
      const token = header.toLowerCase().startsWith('bearer ') ? header.slice(7).trim() : '';
      if (!deps.config.adminToken) throw new TallyError('forbidden', 'Set ADMIN_TOKEN to create sites over HTTP.');
      if (!token) throw new TallyError('unauthorized', 'Send ADMIN_TOKEN as a Bearer token.');
      if (!safeEqual(token, deps.config.adminToken)) throw new TallyError('unauthorized', 'That admin token is not valid.');
      const name = request.body.name.trim();
      if (!isStorableText(name)) throw new TallyError('invalid_request', 'name must not contain NUL characters or unpaired UTF-16 surrogates.', '/name');
      const created = await deps.sites.create(name);
      return reply.status(201).send(created);
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
