import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

// Keys are 32 random bytes, so a plain SHA-256 digest stores them safely (no slow hash needed:
// there is nothing to brute-force). The prefixes tell a reader which key leaked where.
export const WRITE_KEY_PREFIX = 'twk_';
export const SECRET_KEY_PREFIX = 'tsk_';

export function generateKey(prefix: string): string {
  return prefix + randomBytes(32).toString('base64url');
}

export function hashKey(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

export function newSiteId(): string {
  return 'site_' + randomBytes(9).toString('base64url').replace(/[-_]/g, 'x');
}

export function safeEqual(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}
