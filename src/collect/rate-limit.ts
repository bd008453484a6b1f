import { TallyError } from '../errors.js';

/**
 * Requests per second per site, as a token bucket in this process (burst: one second's worth).
 * Each collector process enforces its own share; 0 disables the limit.
 */
export function createRateLimiter(perSecond: number, now: () => number = Date.now) {
  const buckets = new Map<string, { tokens: number; at: number }>();
  return function take(siteId: string): void {
    if (perSecond <= 0) return;
    const t = now();
    const bucket = buckets.get(siteId) ?? { tokens: perSecond, at: t };
    bucket.tokens = Math.min(perSecond, bucket.tokens + ((t - bucket.at) / 1000) * perSecond);
    bucket.at = t;
    if (bucket.tokens < 1) {
      buckets.set(siteId, bucket);
      const wait = Math.max(1, Math.ceil((1 - bucket.tokens) / perSecond));
      throw new TallyError('rate_limited', `More than ${perSecond} requests a second for this site.`, undefined, wait);
    }
    bucket.tokens -= 1;
    buckets.set(siteId, bucket);
  };
}
