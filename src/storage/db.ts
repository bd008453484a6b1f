// The one interface Tally's SQL goes through, so the same statements run on a PostgreSQL server
// (src/storage/postgres.ts) and on embedded PGlite (src/storage/pglite.ts).

export interface QueryResult<R> {
  rows: R[];
  /** Rows inserted, updated or deleted by the statement (0 for a SELECT on PGlite). */
  rowCount: number;
}

/**
 * A statement run at a high rate: on a PostgreSQL server each connection parses and plans it once
 * and reuses the plan (a named prepared statement). The inbox's batch statement took about as
 * long to plan as to run. The name must belong to this text alone. PGlite runs the text.
 */
export interface Prepared {
  readonly name: string;
  readonly text: string;
}

export const prepared = (name: string, text: string): Prepared => ({ name, text });

/** The text of a statement, prepared or not. */
export const textOf = (sql: string | Prepared): string => (typeof sql === 'string' ? sql : sql.text);

export interface Queryable {
  query<R = Record<string, unknown>>(sql: string | Prepared, params?: readonly unknown[]): Promise<QueryResult<R>>;
  /** Runs a script of several statements without parameters (migrations). */
  exec(sql: string): Promise<void>;
}

export interface Db extends Queryable {
  readonly kind: 'postgres' | 'pglite';
  /** Runs fn in one transaction: committed when fn resolves, rolled back when it throws. */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}
