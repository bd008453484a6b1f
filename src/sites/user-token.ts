import { createHmac } from 'node:crypto';
import { safeEqual } from './site-keys.js';

// A user token lets a browser read and change one user's notifications of one site:
//   base64url(JSON {s: siteId, u: userId, e: expiry epoch seconds}) "." base64url(HMAC-SHA256)
// signed with the site's token signing key. It names its site, so verification needs one lookup.

export interface UserTokenClaims {
  siteId: string;
  userId: string;
  expiresAt: Date;
}

export const USER_TOKEN_PREFIX = 'tut_';

function sign(payload: string, key: string): string {
  return createHmac('sha256', key).update(payload).digest('base64url');
}

export function issueUserToken(siteId: string, userId: string, key: string, ttlSeconds: number, now = Date.now()) {
  const expiresAt = new Date(Math.floor(now / 1000 + ttlSeconds) * 1000);
  const payload = Buffer.from(JSON.stringify({ s: siteId, u: userId, e: expiresAt.getTime() / 1000 })).toString('base64url');
  return { token: `${USER_TOKEN_PREFIX}${payload}.${sign(payload, key)}`, expiresAt };
}

/** The site a token claims, before its signature is checked (to find the signing key). */
export function tokenSiteId(token: string): string | null {
  if (!token.startsWith(USER_TOKEN_PREFIX)) return null;
  const payload = token.slice(USER_TOKEN_PREFIX.length).split('.')[0] ?? '';
  try {
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { s?: unknown };
    return typeof claims.s === 'string' ? claims.s : null;
  } catch {
    return null;
  }
}

export function verifyUserToken(token: string, key: string, now = Date.now()): UserTokenClaims | null {
  if (!token.startsWith(USER_TOKEN_PREFIX)) return null;
  const [payload, signature, extra] = token.slice(USER_TOKEN_PREFIX.length).split('.');
  if (!payload || !signature || extra !== undefined) return null;
  if (!safeEqual(signature, sign(payload, key))) return null;
  try {
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { s?: unknown; u?: unknown; e?: unknown };
    if (typeof claims.s !== 'string' || typeof claims.u !== 'string' || typeof claims.e !== 'number') return null;
    if (claims.e * 1000 <= now) return null;
    return { siteId: claims.s, userId: claims.u, expiresAt: new Date(claims.e * 1000) };
  } catch {
    return null;
  }
}
