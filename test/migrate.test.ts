import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TallyError } from '../src/errors.js';
import type { Db } from '../src/storage/db.js';
import { loadMigrations, migrate, migrationsApplied } from '../src/storage/migrate.js';
import { IN_MEMORY, openPglite } from '../src/storage/pglite.js';
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

describe.each(['postgres', 'pglite'] as const)('a database newer than the code (%s)', (engine) => {
  const schema = uniqueName('m');
  let db: Db;
  beforeAll(async () => {
    db = engine === 'postgres' ? connectPostgres({ connectionString: DATABASE_URL, schema, max: 1 }) : await openPglite(IN_MEMORY, schema);
  });
  afterAll(async () => {
    await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await db.close();
  });

  it('is refused with a sentence that says so, and nothing is applied', async () => {
    await migrate(db, schema);
    const files = await loadMigrations();
    const last = files[files.length - 1]!;
    // A newer Tally applied a migration these files do not have.
    await db.query('INSERT INTO tally_migrations (id, name) VALUES ($1, $2)', [last.id + 1, 'from_a_newer_tally']);
    await db.query('DELETE FROM tally_migrations WHERE id = $1', [last.id]);
    const refused = migrate(db, schema);
    await expect(refused).rejects.toThrow(TallyError);
    await expect(refused).rejects.toThrow(
      `The database is newer than this Tally version: it records migration ${String(last.id + 1).padStart(4, '0')}_from_a_newer_tally, which this version does not have.`,
    );
    // The refusal came before the loop that would have applied the missing one again.
    const applied = await db.query<{ id: number }>('SELECT id FROM tally_migrations WHERE id = $1', [last.id]);
    expect(applied.rows).toEqual([]);
  });
});
