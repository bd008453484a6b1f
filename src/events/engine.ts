import {
  BOOLEAN,
  DOUBLE,
  type DuckDBConnection,
  DuckDBInstance,
  type DuckDBType,
  type DuckDBValue,
  LIST,
  listValue,
  SQLNULL,
  StatementType,
  VARCHAR,
} from '@duckdb/node-api';
import type { EventSql } from './event-row.js';

// The process's one DuckDB: an in-memory database that reads and writes the store's Parquet
// files. Its threads are limited (the processor, the API and Redis share the machine's cores);
// each operation gets a connection of its own, so queries and writes run side by side.

export interface EventEngine {
  /** Read-only SQL for the query API (only SELECT statements; values bound as parameters). */
  sql: EventSql;
  /** Runs work on a connection of its own (closed after). */
  withConnection<T>(work: (connection: DuckDBConnection) => Promise<T>): Promise<T>;
  close(): void;
}

const scalarType = (value: unknown): DuckDBType =>
  typeof value === 'number' ? DOUBLE : typeof value === 'boolean' ? BOOLEAN : value === null || value === undefined ? SQLNULL : VARCHAR;

/** A bound parameter with its type: numbers as DOUBLE (cast in the SQL where an integer is meant), lists by their first value. */
export function bindValue(value: unknown): { value: DuckDBValue; type: DuckDBType } {
  if (Array.isArray(value)) {
    const type = scalarType(value.find((v) => v !== null && v !== undefined) ?? '');
    return { value: listValue(value as DuckDBValue[]), type: LIST(type) };
  }
  return { value: (value ?? null) as DuckDBValue, type: scalarType(value) };
}

export function bindAll(params: readonly unknown[]): { values: DuckDBValue[]; types: DuckDBType[] } {
  const bound = params.map(bindValue);
  return { values: bound.map((b) => b.value), types: bound.map((b) => b.type) };
}

/** A path (ours, never a user's value) as an SQL string literal, for statements that take no parameter there (COPY … TO). */
export const sqlPath = (path: string) => `'${path.replace(/'/g, "''")}'`;

export async function openEventEngine(options: { threads: number; memoryLimit?: string }): Promise<EventEngine> {
  const instance = await DuckDBInstance.create(':memory:', {
    threads: String(options.threads),
    ...(options.memoryLimit ? { memory_limit: options.memoryLimit } : {}),
  });

  async function withConnection<T>(work: (connection: DuckDBConnection) => Promise<T>): Promise<T> {
    const connection = await instance.connect();
    try {
      return await work(connection);
    } finally {
      connection.closeSync();
    }
  }

  const sql: EventSql = {
    all: (text, params = []) =>
      withConnection(async (connection) => {
        const statement = await connection.prepare(text);
        if (statement.statementType !== StatementType.SELECT) {
          throw new Error('the event store runs SELECT statements only');
        }
        const { values, types } = bindAll(params);
        values.forEach((value, i) => {
          statement.bindValue(i + 1, value, types[i]);
        });
        return (await statement.runAndReadAll()).getRowObjectsJS() as Record<string, unknown>[];
      }),
  };

  return {
    sql,
    withConnection,
    close() {
      instance.closeSync();
    },
  };
}
