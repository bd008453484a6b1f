import { afterAll, describe, expect, it } from 'vitest';
import { loadMigrations, migrate, migrationsApplied } from '../src/storage/migrate.js';
import { connectPostgres } from '../src/storage/postgres.js';
import { DATABASE_URL, uniqueName } from './helpers.js';

describe('migrations', () => {
  const schema = uniqueName('m');
  const pools = [0, 1, 2].map(() => connectPostgres({ connectionString: DATABASE_URL, schema, max: 2 }));
  afterAll(async () => {
    await pools[0]!.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    for (const pool of pools) await pool.close();
  });

  it('are numbered files, each applied once even when three processes migrate at once', async () => {
    const files = await loadMigrations();
    expect(files.map((m) => m.id)).toEqual([...files.map((m) => m.id)].sort((a, b) => a - b));
    expect(new Set(files.map((m) => m.id)).size).toBe(files.length);
    const results = await Promise.all(pools.map((pool) => migrate(pool, schema)));
    expect(results.flat().sort((a, b) => a - b)).toEqual(files.map((m) => m.id));
    const applied = await pools[0]!.query<{ id: number }>('SELECT id FROM tally_migrations ORDER BY id');
    expect(applied.rows.map((r) => r.id)).toEqual(files.map((m) => m.id));
    expect(await migrationsApplied(pools[1]!)).toBe(true);
    expect(await migrate(pools[2]!, schema)).toEqual([]);
  });
});
