import type { Queryable } from '../db.js';

// Where the embedded ingestion queue keeps its entries until they are acknowledged: a table in
// PGlite (migrations/0010). One statement per append and per acknowledged batch.

export interface JournalEntry {
  id: string;
  stream: string;
  payload: string;
}

export interface IngestJournal {
  /** Keeps the entry; resolves with its id once PGlite holds it. */
  append(stream: string, payload: string): Promise<string>;
  remove(ids: readonly string[]): Promise<void>;
  /** Moves entries to another stream (the dead letters). */
  move(ids: readonly string[], stream: string): Promise<void>;
  /** Every entry kept, oldest first (a start after a crash). */
  load(): Promise<JournalEntry[]>;
}

export function pgliteJournal(db: Queryable): IngestJournal {
  return {
    async append(stream, payload) {
      const result = await db.query<{ id: number }>('INSERT INTO ingest_journal (stream, payload) VALUES ($1, $2) RETURNING id', [
        stream,
        payload,
      ]);
      return String(result.rows[0]?.id);
    },
    async remove(ids) {
      if (ids.length > 0) await db.query('DELETE FROM ingest_journal WHERE id = ANY($1::int8[])', [ids]);
    },
    async move(ids, stream) {
      if (ids.length > 0) await db.query('UPDATE ingest_journal SET stream = $2 WHERE id = ANY($1::int8[])', [ids, stream]);
    },
    async load() {
      const result = await db.query<{ id: number; stream: string; payload: string }>(
        'SELECT id, stream, payload FROM ingest_journal ORDER BY id',
      );
      return result.rows.map((r) => ({ id: String(r.id), stream: r.stream, payload: r.payload }));
    },
  };
}
