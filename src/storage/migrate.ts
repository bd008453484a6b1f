import { readdir, readFile } from 'node:fs/promises';
import { TallyError } from '../errors.js';
import type { Db, Queryable } from './db.js';

// Append-only numbered SQL files in migrations/ (NNNN_name.sql). Each runs in its own transaction
// behind a transaction-scoped advisory lock, and re-checks what is applied once it holds the lock,
// so two processes starting at once apply every file exactly once. A database that records a
// migration these files do not have was migrated by a newer Tally: starting on it is refused.

const MIGRATIONS_DIR = new URL('../../migrations/', import.meta.url);
const LOCK_KEY = 7_463_2001; // any constant shared by every Tally process

export interface Migration {
  id: number;
  name: string;
  sql: string;
}

export async function loadMigrations(): Promise<Migration[]> {
  const files = (await readdir(MIGRATIONS_DIR)).filter((f) => /^\d{4}_[a-z0-9_]+\.sql$/.test(f)).sort();
  return Promise.all(
    files.map(async (file) => ({
      id: Number(file.slice(0, 4)),
      name: file.slice(5, -4),
      sql: await readFile(new URL(file, MIGRATIONS_DIR), 'utf8'),
    })),
  );
}

/**
 * A migration the database records and these files do not hold was applied by a newer Tally
 * (or another branch): this code does not know the tables it left, so it must not run on them.
 */
async function refuseNewerDatabase(tx: Queryable, schema: string, migrations: readonly Migration[]): Promise<void> {
  const known = new Set(migrations.map((m) => fileName(m)));
  const recorded = await tx.query<{ id: number; name: string }>(`SELECT id, name FROM ${schema}.tally_migrations ORDER BY id`);
  const unknown = recorded.rows.map(fileName).filter((name) => !known.has(name));
  if (unknown.length > 0) {
    throw new TallyError(
      'unavailable',
      `The database is newer than this Tally version: it records migration ${unknown.join(', ')}, which this version does not have. Run the Tally version that migrated it, or a newer one.`,
    );
  }
}

const fileName = (m: Pick<Migration, 'id' | 'name'>) => `${String(m.id).padStart(4, '0')}_${m.name}`;

export async function migrate(db: Db, schema: string): Promise<number[]> {
  const migrations = await loadMigrations();
  await db.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [LOCK_KEY]);
    await tx.exec(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
    await tx.exec(`CREATE TABLE IF NOT EXISTS ${schema}.tally_migrations (
      id int PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
    await refuseNewerDatabase(tx, schema, migrations);
  });
  const applied: number[] = [];
  for (const migration of migrations) {
    const ran = await db.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock($1)', [LOCK_KEY]);
      const done = await tx.query('SELECT 1 FROM tally_migrations WHERE id = $1', [migration.id]);
      if (done.rows.length > 0) return false;
      await tx.exec(migration.sql);
      await tx.query('INSERT INTO tally_migrations (id, name) VALUES ($1, $2)', [migration.id, migration.name]);
      return true;
    });
    if (ran) applied.push(migration.id);
  }
  return applied;
}

/** True when every migration file has been applied (readiness). */
export async function migrationsApplied(db: Db): Promise<boolean> {
  const migrations = await loadMigrations();
  const result = await db.query<{ n: number }>('SELECT count(*)::int8 AS n FROM tally_migrations');
  return (result.rows[0]?.n ?? 0) >= migrations.length;
}
