import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.js';

describe('loadConfig', () => {
  it('defaults to the embedded mode on port 8080', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({ mode: 'embedded', port: 8080, dataDir: './data', pgSchema: 'public', redisPrefix: 'tally' });
    expect(Object.isFrozen(config)).toBe(true);
  });

  it('gives a client TALLY_REQUEST_TIMEOUT_MS (default 10 s) to send a whole request', () => {
    expect(loadConfig({}).requestTimeoutMs).toBe(10_000);
    expect(loadConfig({ TALLY_REQUEST_TIMEOUT_MS: '2500' }).requestTimeoutMs).toBe(2500);
    expect(() => loadConfig({ TALLY_REQUEST_TIMEOUT_MS: '0' })).toThrow(/TALLY_REQUEST_TIMEOUT_MS must be between 100 and 600000/);
    expect(() => loadConfig({ TALLY_REQUEST_TIMEOUT_MS: '10s' })).toThrow(/whole number/);
  });

  it('keeps the event store in DATA_DIR/events unless TALLY_EVENTS_DIR names a folder (a temporary one for an in-memory DATA_DIR)', () => {
    expect(loadConfig({}).eventsDir).toBe('data/events');
    expect(loadConfig({ DATA_DIR: '/var/lib/tally' }).eventsDir).toBe('/var/lib/tally/events');
    expect(loadConfig({ DATA_DIR: '/var/lib/tally', TALLY_EVENTS_DIR: '/mnt/shared/events' }).eventsDir).toBe('/mnt/shared/events');
    expect(loadConfig({ DATA_DIR: 'memory://' }).eventsDir).toBeUndefined();
  });

  it('uses Redis and PostgreSQL when both URLs are set', () => {
    const config = loadConfig({ REDIS_URL: 'redis://127.0.0.1:6379', DATABASE_URL: 'postgres://u@h/db', PORT: '9000' });
    expect(config).toMatchObject({ mode: 'external', port: 9000, httpProcesses: 1 });
  });

  it('runs the HTTP API in TALLY_HTTP_PROCESSES processes in external mode', () => {
    const config = loadConfig({ REDIS_URL: 'redis://x', DATABASE_URL: 'postgres://x/y', TALLY_HTTP_PROCESSES: '4' });
    expect(config.httpProcesses).toBe(4);
  });

  it('takes a Redis Cluster from REDIS_CLUSTER_NODES', () => {
    const config = loadConfig({ REDIS_CLUSTER_NODES: 'a:7000, b:7001', DATABASE_URL: 'postgres://u@h/db' });
    expect(config.redisClusterNodes).toEqual([
      { host: 'a', port: 7000 },
      { host: 'b', port: 7001 },
    ]);
  });

  it('trusts X-Forwarded-For from proxies on private networks unless TALLY_TRUST_PROXY says otherwise', () => {
    expect(loadConfig({}).trustProxy).toEqual(['loopback', 'linklocal', 'uniquelocal']);
    expect(loadConfig({ TALLY_TRUST_PROXY: 'true' }).trustProxy).toBe(true);
    expect(loadConfig({ TALLY_TRUST_PROXY: 'false' }).trustProxy).toBe(false);
    expect(loadConfig({ TALLY_TRUST_PROXY: '2' }).trustProxy).toBe(2);
    expect(loadConfig({ TALLY_TRUST_PROXY: '10.0.0.0/8, 192.0.2.1, ::1/128, loopback' }).trustProxy).toEqual([
      '10.0.0.0/8',
      '192.0.2.1',
      '::1/128',
      'loopback',
    ]);
  });

  it('refuses an evicting Redis unless TALLY_ALLOW_EVICTING_REDIS is true', () => {
    expect(loadConfig({}).allowEvictingRedis).toBe(false);
    expect(loadConfig({ TALLY_ALLOW_EVICTING_REDIS: 'true' }).allowEvictingRedis).toBe(true);
    expect(loadConfig({ TALLY_ALLOW_EVICTING_REDIS: 'false' }).allowEvictingRedis).toBe(false);
  });

  it.each([
    [{ REDIS_URL: 'redis://x' }, /both DATABASE_URL and REDIS_URL/],
    [{ DATABASE_URL: 'postgres://x/y' }, /both DATABASE_URL and REDIS_URL/],
    [{ PORT: 'eighty' }, /PORT must be a whole number/],
    [{ PORT: '70000' }, /PORT must be between 0 and 65535/],
    [{ REDIS_URL: 'http://x', DATABASE_URL: 'postgres://x/y' }, /REDIS_URL must start with redis:\/\//],
    [{ REDIS_URL: 'redis://x', DATABASE_URL: 'not a url' }, /DATABASE_URL is not a valid URL/],
    [{ REDIS_CLUSTER_NODES: 'nohost', DATABASE_URL: 'postgres://x/y' }, /host:port/],
    [{ TALLY_PG_SCHEMA: 'Robert"; DROP' }, /TALLY_PG_SCHEMA/],
    [{ TALLY_REDIS_PREFIX: 'a b' }, /TALLY_REDIS_PREFIX/],
    [{ ADMIN_TOKEN: 'short' }, /ADMIN_TOKEN must be at least 16/],
    [{ TALLY_STREAM_SHARDS: '0' }, /TALLY_STREAM_SHARDS must be between 1 and 256/],
    [{ TALLY_HTTP_PROCESSES: '2' }, /TALLY_HTTP_PROCESSES above 1 needs REDIS_URL and DATABASE_URL/],
    [
      { TALLY_HTTP_PROCESSES: '0', REDIS_URL: 'redis://x', DATABASE_URL: 'postgres://x/y' },
      /TALLY_HTTP_PROCESSES must be between 1 and 64/,
    ],
    [{ TALLY_TRUST_PROXY: '0' }, /TALLY_TRUST_PROXY as a hop count must be between 1 and 32/],
    [{ TALLY_TRUST_PROXY: 'yes' }, /TALLY_TRUST_PROXY must be true, false, a hop count.*"yes"/],
    [{ TALLY_TRUST_PROXY: '10.0.0.0/33' }, /"10.0.0.0\/33" is none of them/],
    [{ TALLY_TRUST_PROXY: '10.0.0.1,' }, /"" is none of them/],
    [{ TALLY_ALLOW_EVICTING_REDIS: 'yes' }, /TALLY_ALLOW_EVICTING_REDIS must be true or false, got "yes"/],
  ])('rejects %j with one clear sentence', (env, message) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(message);
  });
});
