// The one interface Tally's SQL goes through, so the same statements run on a PostgreSQL server
// (src/storage/postgres.ts) and on embedded PGlite (src/storage/pglite.ts).

export interface QueryResult<R> {
  rows: R[];
  /** Rows inserted, updated or deleted by the statement (0 for a SELECT on PGlite). */
  rowCount: number;
}

export interface Queryable {
  query<R = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<QueryResult<R>>;
  /** Runs a script of several statements without parameters (migrations). */
  exec(sql: string): Promise<void>;
}

export interface Db extends Queryable {
  readonly kind: 'postgres' | 'pglite';
  /** Runs fn in one transaction: committed when fn resolves, rolled back when it throws. */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}
