import type { FastifyRequest } from 'fastify';
import { TallyError } from '../errors.js';
import { SECRET_KEY_PREFIX, WRITE_KEY_PREFIX } from '../sites/site-keys.js';
import type { Site, SiteRepository } from '../sites/site-repository.js';
import { tokenSiteId, USER_TOKEN_PREFIX, verifyUserToken } from '../sites/user-token.js';

// Who is calling. Write keys (public, collect only) come as the HTTP Basic user name with an
// empty password (Segment's convention) or as `writeKey` in the body; secret keys and user
// tokens as `Authorization: Bearer …`.

export type Principal = { site: Site; kind: 'secret' } | { site: Site; kind: 'user'; userId: string };

export interface Auth {
  /** The site of the write key, or 401. */
  writeKey(request: FastifyRequest, bodyKey?: unknown): Promise<Site>;
  /** The site of the secret key, or 401 (403 when a write key or user token is used instead). */
  secret(request: FastifyRequest): Promise<Site>;
  /** A secret key, or a user token: the route must then check the token's user. */
  secretOrUser(request: FastifyRequest): Promise<Principal>;
  /**
   * For stream routes only: as secretOrUser, or, without an Authorization header, a user token
   * given as `?token=` (a browser's EventSource cannot send headers). Only a user token may travel
   * in a URL: it reaches one user's inbox and expires, where a leaked secret key reaches everything.
   */
  streamPrincipal(request: FastifyRequest, queryToken: string | undefined): Promise<Principal>;
}

function credentials(request: FastifyRequest): { scheme: 'basic' | 'bearer'; value: string } | null {
  const header = request.headers.authorization;
  if (!header) return null;
  const [scheme, value] = header.split(' ', 2);
  if (!value) return null;
  if (scheme?.toLowerCase() === 'bearer') return { scheme: 'bearer', value: value.trim() };
  if (scheme?.toLowerCase() === 'basic') {
    const decoded = Buffer.from(value, 'base64').toString('utf8');
    const user = decoded.includes(':') ? decoded.slice(0, decoded.indexOf(':')) : decoded;
    return { scheme: 'basic', value: user };
  }
  return null;
}

const missing = () => new TallyError('unauthorized', 'Send a key: a write key as the Basic user name, or a secret key as a Bearer token.');
const unknownKey = () => new TallyError('unauthorized', 'That key or token is not valid.');

export function createAuth(sites: SiteRepository): Auth {
  async function secretSite(key: string): Promise<Site> {
    if (key.startsWith(WRITE_KEY_PREFIX) && (await sites.byKey('write', key))) {
      throw new TallyError('forbidden', 'A write key can only collect events; use the secret key.');
    }
    const site = await sites.byKey('secret', key);
    if (!site) throw unknownKey();
    return site;
  }

  async function userPrincipal(token: string): Promise<Principal> {
    const siteId = tokenSiteId(token);
    const site = siteId ? await sites.byId(siteId) : null;
    const claims = site ? verifyUserToken(token, site.tokenSigningKey) : null;
    if (!site || !claims || claims.siteId !== site.id) throw unknownKey();
    return { site, kind: 'user', userId: claims.userId };
  }

  async function secretOrUser(request: FastifyRequest): Promise<Principal> {
    const given = credentials(request);
    if (!given) throw missing();
    if (given.value.startsWith(USER_TOKEN_PREFIX)) return userPrincipal(given.value);
    return { site: await secretSite(given.value), kind: 'secret' };
  }

  return {
    async writeKey(request, bodyKey) {
      const given = credentials(request);
      const key = given?.value || (typeof bodyKey === 'string' ? bodyKey : '');
      if (!key) throw missing();
      const site = await sites.byKey('write', key);
      if (site) return site;
      // A secret key may collect too (server-side SDKs are often given it).
      if (key.startsWith(SECRET_KEY_PREFIX)) {
        const secret = await sites.byKey('secret', key);
        if (secret) return secret;
      }
      throw unknownKey();
    },

    async secret(request) {
      const given = credentials(request);
      if (!given) throw missing();
      if (given.value.startsWith(USER_TOKEN_PREFIX)) {
        throw new TallyError('forbidden', 'A user token cannot do this; use the secret key.');
      }
      return secretSite(given.value);
    },

    secretOrUser,

    async streamPrincipal(request, queryToken) {
      if (request.headers.authorization !== undefined || queryToken === undefined) return secretOrUser(request);
      if (!queryToken.startsWith(USER_TOKEN_PREFIX)) {
        throw new TallyError('forbidden', 'Only a user token may be sent in the query string; send keys as a Bearer token.', '/token');
      }
      return userPrincipal(queryToken);
    },
  };
}
