import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { EVENT_COLUMNS, type EventRow, type EventScan, type EventSql } from '../src/events/event-row.js';

// Real Parquet files of event rows (exactly EVENT_COLUMNS) in a temporary folder, and the read
// side the query API takes (EventScan, EventSql) over them with a real DuckDB: what the query
// tests run against, independent of how the event store's writer lays its files out.

export interface EventFiles {
  scan: EventScan;
  sql: EventSql;
  /** Writes the rows as one more Parquet file (one per UTC day of the rows, as the store partitions). */
  add(rows: readonly EventRow[]): Promise<void>;
  /** Removes every file. */
  clear(): Promise<void>;
  /** Snapshots taken and not released yet. */
  open(): number;
  close(): Promise<void>;
}

const JSON_COLUMNS = Object.entries(EVENT_COLUMNS)
  .map(([name, type]) => `${name}: '${name === 'ts' ? 'BIGINT' : type}'`)
  .join(', ');
const SELECT = Object.keys(EVENT_COLUMNS)
  .map((name) => (name === 'ts' ? 'epoch_ms(ts)::TIMESTAMP_MS AS ts' : name))
  .join(', ');

export async function openEventFiles(): Promise<EventFiles> {
  const dir = await mkdtemp(join(tmpdir(), 'tally-events-'));
  const instance = await DuckDBInstance.create(':memory:');
  const connection = await instance.connect();
  let files: { path: string; day: number }[] = [];
  let written = 0;
  let open = 0;
  return {
    scan: {
      async snapshot(_siteId, fromMs, toMs) {
        open += 1;
        let released = false;
        const DAY = 86_400_000;
        return {
          files: files.filter((f) => f.day + DAY > fromMs && f.day < toMs).map((f) => f.path),
          release() {
            if (!released) open -= 1;
            released = true;
          },
        };
      },
    },
    sql: {
      async all(sql, params = []) {
        const reader = await connection.runAndReadAll(sql, params as never);
        return reader.getRowObjects() as Record<string, unknown>[];
      },
    },
    async add(rows) {
      const byDay = new Map<number, EventRow[]>();
      for (const r of rows) {
        const day = Math.floor(r.ts / 86_400_000) * 86_400_000;
        byDay.set(day, [...(byDay.get(day) ?? []), r]);
      }
      for (const [day, dayRows] of byDay) {
        const n = written++;
        const json = join(dir, `${n}.json`);
        const path = join(dir, `${n}.parquet`);
        await writeFile(json, dayRows.map((r) => JSON.stringify(r)).join('\n'));
        await connection.run(
          `COPY (SELECT ${SELECT} FROM read_json('${json}', format = 'newline_delimited', columns = {${JSON_COLUMNS}})) TO '${path}' (FORMAT parquet)`,
        );
        await rm(json);
        files.push({ path, day });
      }
    },
    async clear() {
      await Promise.all(files.map((f) => rm(f.path)));
      files = [];
    },
    open: () => open,
    async close() {
      connection.closeSync();
      instance.closeSync();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** An event row with every column filled by default (a human page view of / on example.com). */
export function eventRow(over: Partial<EventRow> & Pick<EventRow, 'ts' | 'visitor'>): EventRow {
  return {
    site_id: 'site',
    message_id: `${over.visitor}-${over.ts}-${Math.random().toString(36).slice(2)}`,
    type: 'page',
    kind: 'pageview',
    name: null,
    session: `${over.visitor}-s`,
    user_id: null,
    hostname: 'example.com',
    page: '/',
    entry_page: '/',
    source: 'Direct',
    referrer: null,
    referrer_host: null,
    utm_source: null,
    utm_medium: null,
    utm_campaign: null,
    utm_term: null,
    utm_content: null,
    browser: 'Chrome',
    os: 'Linux',
    device: 'desktop',
    country: null,
    region: null,
    product: null,
    revenue: null,
    engaged_ms: 0,
    props: {},
    bot: false,
    ...over,
  };
}
