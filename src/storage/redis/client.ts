import { readFileSync } from 'node:fs';
import { Cluster, Redis } from 'ioredis';

// The Redis connection and the Lua scripts. Each atomic operation is one file in lua/, loaded
// once with defineCommand (EVALSHA, falling back to EVAL after a script flush) and called from
// the one module of src/storage/redis/ that owns it.

export type RedisClient = Redis | Cluster;

export const SCRIPTS = [
  'enqueue',
  'ack-entries',
  'dead-letter',
  'take-batch',
  'finish-batch',
  'release-lock',
  'apply-aggregate',
  'rank-union',
  'count-uniques-with',
  'inbox-begin',
  'inbox-finish',
  'inbox-state',
  'inbox-counts',
  'inbox-keep',
  'inbox-drop-stale',
  'inbox-repair',
  'inbox-untouch',
  'assign-sessions',
] as const;
export type ScriptName = (typeof SCRIPTS)[number];

const LUA_DIR = new URL('../../../lua/', import.meta.url);

type ScriptFn = (numKeys: number, ...args: (string | number | Buffer)[]) => Promise<unknown>;

function commandName(script: ScriptName): string {
  return 'tally_' + script.replace(/-/g, '_');
}

export interface RedisConnectOptions {
  url?: string | undefined;
  clusterNodes?: readonly { host: string; port: number }[] | undefined;
}

// While Redis is unreachable a command waits through two reconnection attempts, then fails:
// the collector answers 503 unavailable within seconds instead of holding requests open.
const FAIL_FAST = { maxRetriesPerRequest: 2, connectTimeout: 2000 };

export function connectRedis(options: RedisConnectOptions): RedisClient {
  if (options.clusterNodes) {
    return new Cluster([...options.clusterNodes], {
      enableAutoPipelining: true,
      // ioredis groups an auto-pipeline by its commands' first argument, which for a script
      // with a variable key count is the count, not a key: two scripts bound for different
      // nodes could share a pipeline and fail. Scripts are sent on their own.
      autoPipeliningIgnoredCommands: SCRIPTS.map(commandName),
      scaleReads: 'master',
      redisOptions: FAIL_FAST,
    });
  }
  return new Redis(options.url ?? 'redis://127.0.0.1:6379', { enableAutoPipelining: true, ...FAIL_FAST });
}

/** Calls a script: its KEYS, then its ARGV. */
export type CallScript = (script: ScriptName, keys: readonly string[], args?: readonly (string | number | Buffer)[]) => Promise<unknown>;

/** Defines every script on the client once; returns the way to call them. */
export function defineScripts(client: RedisClient): CallScript {
  for (const script of SCRIPTS) {
    const lua = readFileSync(new URL(`${script}.lua`, LUA_DIR), 'utf8');
    client.defineCommand(commandName(script), { lua });
  }
  const commands = client as unknown as Record<string, ScriptFn>;
  return (script, keys, args = []) => {
    const command = commands[commandName(script)];
    if (!command) throw new Error(`script ${script} is not defined on this client`);
    return command.call(client, keys.length, ...keys, ...args);
  };
}

/** A connection of its own (blocking reads, subscriptions), to the same Redis or Cluster. */
export function duplicate(client: RedisClient): RedisClient {
  return client instanceof Cluster ? client.duplicate() : client.duplicate();
}

/** Flat [member, score, member, score, …] replies as pairs. */
export function pairs(flat: readonly string[]): { member: string; score: number }[] {
  const out: { member: string; score: number }[] = [];
  for (let i = 0; i < flat.length; i += 2) out.push({ member: flat[i] as string, score: Number(flat[i + 1]) });
  return out;
}
