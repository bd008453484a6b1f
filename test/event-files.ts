import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BOOLEAN, DOUBLE, DuckDBInstance, type DuckDBValue, VARCHAR } from '@duckdb/node-api';
import { EVENT_COLUMNS, type EventRow, type EventScan, type EventSql } from '../src/events/event-row.js';

// Real Parquet files with exactly the event store's columns, and a DuckDB that reads them, for
// tests of the queries over events until they run over the store itself. Each write is one file
// per site; the snapshot names every file of the site (the queries bound time themselves).

export interface EventFiles {
  scan: EventScan;
  sql: EventSql;
  /** Writes the rows as one more Parquet file. */
  write(rows: readonly EventRow[]): Promise<void>;
  /** Forgets every file (the next test starts from none). */
  clear(): Promise<void>;
  close(): Promise<void>;
}

/** A full row from the fields a test cares about. */
export function eventRow(fields: Partial<EventRow> & Pick<EventRow, 'site_id' | 'message_id' | 'ts' | 'visitor'>): EventRow {
  return {
    type: 'page',
    kind: 'pageview',
    name: null,
    session: `${fields.visitor}-s`,
    user_id: null,
    hostname: 'shop.example',
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
    device: 'Desktop',
    country: null,
    region: null,
    product: null,
    revenue: null,
    engaged_ms: 0,
    props: {},
    bot: false,
    ...fields,
  };
}

export async function openEventFiles(): Promise<EventFiles> {
  const dir = await mkdtemp(join(tmpdir(), 'tally-events-'));
  const instance = await DuckDBInstance.create(':memory:', { threads: '2' });
  const connection = await instance.connect();
  const files = new Map<string, string[]>();
  let written = 0;
  const columns = Object.entries(EVENT_COLUMNS);
  // JSON has no timestamp: ts travels as epoch ms and is typed on the way into the file.
  const jsonColumns = columns.map(([name, type]) => `${name}: '${name === 'ts' ? 'BIGINT' : type}'`).join(', ');
  const select = columns.map(([name, type]) => (name === 'ts' ? `epoch_ms(ts)::${type} AS ts` : name)).join(', ');
  return {
    scan: {
      async snapshot(siteId) {
        return { files: [...(files.get(siteId) ?? [])], release() {} };
      },
    },
    sql: {
      async all(sql, params = []) {
        // Bound as the store's engine binds them: every number a DOUBLE, so the SQL must cast.
        const statement = await connection.prepare(sql);
        params.forEach((value, i) => {
          statement.bindValue(
            i + 1,
            value as DuckDBValue,
            typeof value === 'number' ? DOUBLE : typeof value === 'boolean' ? BOOLEAN : VARCHAR,
          );
        });
        return (await statement.runAndReadAll()).getRowObjectsJS() as Record<string, unknown>[];
      },
    },
    async write(rows) {
      const bySite = new Map<string, EventRow[]>();
      for (const row of rows) bySite.set(row.site_id, [...(bySite.get(row.site_id) ?? []), row]);
      for (const [site, siteRows] of bySite) {
        written += 1;
        const json = join(dir, `${written}.json`);
        const parquet = join(dir, `${written}.parquet`);
        await writeFile(json, siteRows.map((r) => JSON.stringify(r)).join('\n'));
        await connection.run(
          `COPY (SELECT ${select} FROM read_json('${json}', format = 'newline_delimited', columns = {${jsonColumns}})) TO '${parquet}' (FORMAT parquet)`,
        );
        await rm(json);
        files.set(site, [...(files.get(site) ?? []), parquet]);
      }
    },
    async clear() {
      files.clear();
    },
    async close() {
      connection.closeSync();
      instance.closeSync();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
