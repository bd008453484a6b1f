import { randomBytes } from 'node:crypto';
import { type AnalyticsRealtime, checkStep, type RankedMember } from '../analytics-realtime.js';
import type { Keys } from '../keys.js';
import { type CallScript, pairs, type RedisClient } from './client.js';
import { encodeStep } from './step-codec.js';

// The hot analytics figures in Redis: hashes of counters, sorted sets for rankings and the live
// set, HyperLogLogs, all under the site's hash tag. The step is lua/apply-aggregate.lua.

export function createRedisAnalytics(client: RedisClient, call: CallScript, keys: Keys): AnalyticsRealtime {
  const key = keys.siteKey;
  return {
    async apply(batch) {
      if (batch.dedupeKeys.length === 0 && batch.ops.length === 0 && batch.packed.length === 0) return [];
      checkStep(batch);
      const step = encodeStep(batch);
      return ((await call('apply-aggregate', step.keys, step.args)) as number[]).map(Number);
    },

    async counters(siteId, suffix) {
      const raw = await client.hgetall(key(siteId, suffix));
      const out: Record<string, number> = {};
      for (const [field, value] of Object.entries(raw)) out[field] = Number(value);
      return out;
    },

    async countUniques(siteId, suffixes, sketches = []) {
      const keys = suffixes.map((s) => key(siteId, s));
      if (sketches.length === 0) return keys.length === 0 ? 0 : client.pfcount(...keys);
      const scratch = `tmp:${randomBytes(6).toString('hex')}`;
      const scratchKeys = sketches.map((_, i) => key(siteId, `${scratch}:${i}`));
      return Number(await call('count-uniques-with', [...scratchKeys, ...keys], [sketches.length, ...sketches.map((b) => Buffer.from(b))]));
    },

    async rank(siteId, suffixes, limit): Promise<RankedMember[]> {
      if (suffixes.length === 0) return [];
      const scratch = key(siteId, `tmp:${randomBytes(6).toString('hex')}`);
      return pairs((await call('rank-union', [scratch, ...suffixes.map((s) => key(siteId, s))], [limit])) as string[]);
    },

    liveSince: (siteId, sinceMs) => client.zcount(key(siteId, 'live'), sinceMs, '+inf'),

    async copyUniques(siteId, suffixes) {
      return Promise.all(
        suffixes.map(async (suffix) => {
          const [hll, visitors] = await Promise.all([client.getBuffer(key(siteId, suffix)), client.pfcount(key(siteId, suffix))]);
          return hll ? { hll, visitors } : null;
        }),
      );
    },

    async restore(siteId, items) {
      if (items.length === 0) return;
      const pipeline = client.pipeline();
      for (const item of items) {
        const k = key(siteId, item.suffix);
        pipeline.del(k);
        if (item.kind === 'unique') pipeline.set(k, item.hll);
        else if (Object.keys(item.values).length > 0) {
          if (item.kind === 'counters') pipeline.hset(k, item.values);
          else pipeline.zadd(k, ...Object.entries(item.values).flatMap(([member, score]) => [score, member]));
        }
        if (item.ttlSeconds !== undefined) pipeline.expire(k, item.ttlSeconds);
      }
      const results = (await pipeline.exec()) ?? [];
      const failed = results.find(([err]) => err);
      if (failed) throw failed[0];
    },
  };
}
