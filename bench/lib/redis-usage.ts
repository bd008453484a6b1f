import type { Redis } from 'ioredis';

// Redis' own accounting, read before and after a measured phase: CPU seconds (INFO cpu) and,
// per command, calls and microseconds (INFO commandstats; commands run inside scripts count
// under their own names, and EVALSHA's time includes them). Server-wide: other clients of the
// same Redis count too.

export interface RedisUsage {
  cpuSeconds: number;
  commands: Map<string, { calls: number; usec: number }>;
}

export async function redisUsage(redis: Redis): Promise<RedisUsage> {
  const cpu = await redis.info('cpu');
  const field = (name: string) => Number(new RegExp(`${name}:([0-9.]+)`).exec(cpu)?.[1] ?? NaN);
  const commands = new Map<string, { calls: number; usec: number }>();
  for (const m of (await redis.info('commandstats')).matchAll(/cmdstat_([\w|]+):calls=(\d+),usec=(\d+)/g)) {
    commands.set(m[1] as string, { calls: Number(m[2]), usec: Number(m[3]) });
  }
  return { cpuSeconds: field('used_cpu_user') + field('used_cpu_sys'), commands };
}

/** Calls and microseconds of each command between two readings. */
export function commandsBetween(before: RedisUsage, after: RedisUsage): { name: string; calls: number; usec: number }[] {
  return [...after.commands].map(([name, a]) => {
    const b = before.commands.get(name) ?? { calls: 0, usec: 0 };
    return { name, calls: a.calls - b.calls, usec: a.usec - b.usec };
  });
}
