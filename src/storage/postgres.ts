import pg from 'pg';
import type { Db, Prepared, Queryable, QueryResult } from './db.js';

// int8 (COUNT(*), SUM, bigint counters) comes back as a JS number: counts stay far below 2^53,
// and numbers keep the API's JSON numeric.
const types = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === 20) return (value: string) => Number(value);
    return pg.types.getTypeParser(oid, format as 'text');
  },
};

export interface PostgresOptions {
  connectionString: string;
  schema: string;
  max?: number;
  onError?: (err: Error) => void;
}

export function connectPostgres(options: PostgresOptions): Db {
  const pool = new pg.Pool({
    connectionString: options.connectionString,
    max: options.max ?? 10,
    // Every connection works in Tally's schema (tests give each file its own).
    options: `-c search_path=${options.schema}`,
    types,
    connectionTimeoutMillis: 5000,
  });
  // An idle client's error (server restart) must not crash the process; the next query reconnects.
  pool.on('error', (err) => options.onError?.(err));

  const run = async <R>(client: pg.Pool | pg.PoolClient, sql: string | Prepared, params?: readonly unknown[]) => {
    const values = params as unknown[] | undefined;
    const result = await (typeof sql === 'string' ? client.query(sql, values) : client.query({ name: sql.name, text: sql.text, values }));
    return { rows: result.rows as R[], rowCount: result.rowCount ?? 0 } satisfies QueryResult<R>;
  };

  return {
    kind: 'postgres',
    query: (sql, params) => run(pool, sql, params),
    exec: async (sql) => {
      await pool.query(sql);
    },
    async transaction(fn) {
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        const tx: Queryable = {
          query: (sql, params) => run(client, sql, params),
          exec: async (sql) => {
            await client.query(sql);
          },
        };
        const result = await fn(tx);
        await client.query('COMMIT');
        return result;
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw err;
      } finally {
        client.release();
      }
    },
    close: () => pool.end(),
  };
}
