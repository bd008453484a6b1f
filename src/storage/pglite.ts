import { mkdir } from 'node:fs/promises';
import { PGlite, types } from '@electric-sql/pglite';
import { type Db, type Prepared, type Queryable, type QueryResult, textOf } from './db.js';

/** DATA_DIR value that keeps the embedded database in memory (tests, demos). */
export const IN_MEMORY = 'memory://';

export interface PgliteOptions {
  /**
   * An in-memory database starts as a copy of this image of a fresh cluster (PGlite's dumpDataDir)
   * instead of running initdb, which takes seconds of CPU: for a process that opens many (tests).
   * A database on disk always starts from its directory.
   */
  template?: Blob;
}

/**
 * Embedded PostgreSQL. PGlite serves one connection, so every statement and transaction goes
 * through one queue: a transaction holds the queue until it ends.
 */
export async function openPglite(dataDir: string, schema: string, options: PgliteOptions = {}): Promise<Db> {
  if (dataDir !== IN_MEMORY) await mkdir(dataDir, { recursive: true });
  const db = await PGlite.create(dataDir === IN_MEMORY ? undefined : dataDir, {
    parsers: { [types.INT8]: (value: string) => Number(value) },
    ...(dataDir === IN_MEMORY && options.template ? { loadDataDir: options.template } : {}),
  });
  await db.exec(`CREATE SCHEMA IF NOT EXISTS ${schema}; SET search_path = ${schema};`);

  let queue: Promise<unknown> = Promise.resolve();
  const serialise = <T>(fn: () => Promise<T>): Promise<T> => {
    const next = queue.then(fn, fn);
    queue = next.catch(() => undefined);
    return next;
  };

  const run = async <R>(target: Pick<PGlite, 'query'>, sql: string | Prepared, params?: readonly unknown[]) => {
    const result = await target.query<R>(textOf(sql), params as unknown[] | undefined);
    return { rows: result.rows, rowCount: result.affectedRows ?? 0 } satisfies QueryResult<R>;
  };

  return {
    kind: 'pglite',
    query: (sql, params) => serialise(() => run(db, sql, params)),
    exec: (sql) => serialise(async () => void (await db.exec(sql))),
    transaction: (fn) =>
      serialise(() =>
        db.transaction(async (tx) => {
          const scoped: Queryable = {
            query: (sql, params) => run(tx, sql, params),
            exec: async (sql) => void (await tx.exec(sql)),
          };
          return fn(scoped);
        }),
      ),
    close: () => serialise(() => db.close()),
  };
}
