import { mkdir, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { EventEngine } from './engine.js';
import { sqlPath } from './engine.js';
import { DERIVED_COLUMNS, EVENT_COLUMNS, type EventRow } from './event-row.js';
import { publish } from './fs-atomic.js';
import { partitionPath, segmentName, tempName } from './layout.js';

// Writes one batch of a (site, day) as a new segment: the rows go to DuckDB as newline-delimited
// JSON (JSON.stringify is native; appending value by value through the appender costs several
// times more CPU per event), DuckDB writes them sorted by ts to a temp Parquet file, and the file
// is flushed to the disk before its name appears (a kill -9 leaves a temp file, never a partial
// segment).

/** read_json's column list: the file's types, ts as epoch milliseconds (converted in the SELECT). */
const JSON_COLUMNS = `{${Object.entries(EVENT_COLUMNS)
  .map(([name, type]) => `${name}: '${name === 'ts' ? 'BIGINT' : type}'`)
  .join(', ')}}`;

const SELECT_COLUMNS = [
  ...Object.keys(EVENT_COLUMNS).map((name) =>
    name === 'ts' ? 'epoch_ms(ts)::TIMESTAMP_MS AS ts' : name === 'props' ? "nullif(props, '{}') AS props" : name,
  ),
  ...Object.entries(DERIVED_COLUMNS).map(([name, sql]) => `${sql} AS ${name}`),
].join(', ');

export interface SegmentOptions {
  /** The rows may repeat message_ids already in the partition (written for redelivered entries). */
  dirty: boolean;
  /**
   * performance.now() past which another processor may have claimed the batch's entries: a
   * segment named after it is marked dirty (its rows may be written by that processor too).
   */
  claimableAt?: number;
}

export async function writeSegment(
  engine: EventEngine,
  root: string,
  siteId: string,
  day: string,
  rows: readonly EventRow[],
  options: SegmentOptions,
): Promise<string> {
  const dir = partitionPath(root, siteId, day);
  await mkdir(dir, { recursive: true });
  const json = join(dir, tempName('.json'));
  const parquet = join(dir, tempName('.parquet'));
  await writeFile(json, rows.map((r) => JSON.stringify(r)).join('\n'));
  try {
    await engine.withConnection((connection) =>
      connection.run(
        `COPY (SELECT ${SELECT_COLUMNS}
               FROM read_json(${sqlPath(json)}, format = 'newline_delimited', columns = ${JSON_COLUMNS})
               ORDER BY ts)
         TO ${sqlPath(parquet)} (FORMAT parquet, COMPRESSION zstd)`,
      ),
    );
  } finally {
    await unlink(json);
  }
  const late = options.claimableAt !== undefined && performance.now() > options.claimableAt;
  const name = segmentName(Date.now(), options.dirty || late);
  await publish(parquet, join(dir, name), dir);
  return name;
}
