import { Cluster, type Redis } from 'ioredis';
import type { Logger } from 'pino';
import { ConfigError } from '../../config.js';
import type { RedisClient } from './client.js';

// Pending counter deltas live only in Redis until the flusher has written them to PostgreSQL, and
// dedupe keys, sessions and unprocessed events only in Redis at all. A Redis that may evict keys
// (any maxmemory-policy but noeviction) drops them under memory pressure and nothing notices: the
// counts are silently wrong. So Tally refuses to start against one unless told otherwise.

/** A check that cannot finish in this time (Redis unreachable) is skipped with a warning. */
const CHECK_TIMEOUT_MS = 10_000;

function withTimeout<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not answer within ${CHECK_TIMEOUT_MS / 1000} s`)), CHECK_TIMEOUT_MS);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function nodeName(node: Redis): string {
  return `${node.options.host ?? '127.0.0.1'}:${node.options.port ?? 6379}`;
}

async function readPolicy(node: Redis): Promise<string> {
  const reply = (await withTimeout(node.config('GET', 'maxmemory-policy'), 'CONFIG GET')) as unknown;
  const values = Array.isArray(reply) ? reply.map(String) : [];
  const at = values.indexOf('maxmemory-policy');
  const policy = at >= 0 ? values[at + 1] : undefined;
  if (policy === undefined) throw new Error(`unexpected CONFIG GET reply ${JSON.stringify(reply)}`);
  return policy;
}

/**
 * Reads maxmemory-policy on the Redis (every master of a Cluster) and throws a ConfigError when
 * one may evict, unless `allow` (TALLY_ALLOW_EVICTING_REDIS), which only logs a warning. A Redis
 * that refuses CONFIG GET (managed services often disable it) is trusted with a warning.
 */
export async function checkRedisEviction(client: RedisClient, allow: boolean, log: Logger): Promise<void> {
  let nodes: Redis[];
  if (client instanceof Cluster) {
    try {
      // The masters are known once the client has the slot map, which its first command waits for.
      await withTimeout(client.ping(), 'the Redis Cluster');
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'could not check Redis maxmemory-policy (it must be noeviction, or counts can be lost)');
      return;
    }
    nodes = client.nodes('master');
  } else {
    nodes = [client];
  }
  const evicting: string[] = [];
  for (const node of nodes) {
    let policy: string;
    try {
      policy = await readPolicy(node);
    } catch (err) {
      log.warn(
        { redis: nodeName(node), err: (err as Error).message },
        'could not read Redis maxmemory-policy (CONFIG GET refused or failed); it must be noeviction, or counts can be lost',
      );
      continue;
    }
    if (policy !== 'noeviction') evicting.push(`${nodeName(node)} has maxmemory-policy ${policy}`);
  }
  if (evicting.length === 0) return;
  if (allow) {
    log.warn(
      { redis: evicting },
      'Redis may evict keys and TALLY_ALLOW_EVICTING_REDIS=true: evicted pending counter deltas are lost silently',
    );
    return;
  }
  throw new ConfigError(
    `Redis may evict keys (${evicting.join('; ')}). Pending counter deltas live only in Redis until they are flushed, so an evicting Redis loses counts silently. Set maxmemory-policy to noeviction, or set TALLY_ALLOW_EVICTING_REDIS=true to start anyway.`,
  );
}
