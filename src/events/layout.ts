import { randomBytes } from 'node:crypto';
import { join } from 'node:path';

// Where the event store keeps what: one folder per site and UTC day (Hive-style names, so
// ClickHouse, Spark, Trino and DuckDB read the partition keys from the path), and in it:
//   s-<time>-<id>.parquet       a segment, written once by a processor's sink
//   s-<time>-<id>-d.parquet     a segment that may repeat message_ids (see docs/events.md)
//   c-<gen>-<id>.parquet        a compacted file (sorted as compaction.ts says), visible once a manifest names it
//   v-<gen>-<id>.parquet        summaries of a day made one compacted file, beside it: its visits
//   p-<gen>-<id>.parquet          (visits-file.ts), its page views by page (pages-file.ts) and its
//   k-<gen>-<id>.parquet          event figures by custom property key and value (props-file.ts)
//   _manifest-<gen>.json        which compacted files are visible and which segments they replaced
//   _expired                    the day is past the site's retention: readers skip it
//   .tmp-…                      a file being written (never read)

export const DAY_MS = 86_400_000;
const GEN_DIGITS = 10;

export type FileKind = 'segment' | 'compacted' | 'summary' | 'manifest' | 'expired' | 'temp' | 'other';

/** The files a rewrite derives from a day's one compacted file (see compaction.ts), by name prefix. */
export const SUMMARY_PREFIXES = { visits: 'v', pages: 'p', props: 'k' } as const;
export type SummaryKind = keyof typeof SUMMARY_PREFIXES;
export const SUMMARY_KINDS = Object.keys(SUMMARY_PREFIXES) as SummaryKind[];
/** A day's summaries, one file of each kind. */
export type DaySummaries = Readonly<Record<SummaryKind, string>>;

export const EXPIRED_MARK = '_expired';

const SUMMARY_LETTERS = Object.values(SUMMARY_PREFIXES).join('');
const SUMMARY_NAME = new RegExp(`^[${SUMMARY_LETTERS}]-\\d+-[0-9a-f]+\\.parquet$`);
const GENERATION = new RegExp(`^(?:c|[${SUMMARY_LETTERS}]|_manifest)-(\\d+)`);

export function kindOf(name: string): FileKind {
  if (name.startsWith('.tmp-')) return 'temp';
  if (name === EXPIRED_MARK) return 'expired';
  if (/^s-[0-9a-z]+-[0-9a-f]+(-d)?\.parquet$/.test(name)) return 'segment';
  if (/^c-\d+-[0-9a-f]+\.parquet$/.test(name)) return 'compacted';
  if (SUMMARY_NAME.test(name)) return 'summary';
  if (/^_manifest-\d+\.json$/.test(name)) return 'manifest';
  return 'other';
}

const id = () => randomBytes(6).toString('hex');

/** A segment's name; `dirty` when it may repeat message_ids of other files (its time starts a dirty window). */
export function segmentName(atMs: number, dirty: boolean): string {
  return `s-${atMs.toString(36)}-${id()}${dirty ? '-d' : ''}.parquet`;
}

/** The write time and dirty flag a segment's name carries. */
export function segmentInfo(name: string): { atMs: number; dirty: boolean } {
  const [, time = '0', , flag] = name.replace(/\.parquet$/, '').split('-');
  return { atMs: Number.parseInt(time, 36), dirty: flag === 'd' };
}

export const compactedName = (gen: number) => `c-${String(gen).padStart(GEN_DIGITS, '0')}-${id()}.parquet`;
export const summaryName = (kind: SummaryKind, gen: number) =>
  `${SUMMARY_PREFIXES[kind]}-${String(gen).padStart(GEN_DIGITS, '0')}-${id()}.parquet`;
export const manifestName = (gen: number) => `_manifest-${String(gen).padStart(GEN_DIGITS, '0')}.json`;
export const tempName = (suffix: string) => `.tmp-${id()}${suffix}`;

/** Generation of a compacted file, summary or manifest. */
export const genOf = (name: string) => Number(GENERATION.exec(name)?.[1] ?? 0);

export const dayOf = (ms: number) => new Date(ms).toISOString().slice(0, 10);
export const dayStart = (day: string) => Date.parse(`${day}T00:00:00Z`);

/** Site ids are URL-encoded in folder names, so any id is one safe path segment. */
export const siteFolder = (siteId: string) => `site=${encodeURIComponent(siteId)}`;
export const siteOfFolder = (folder: string) => (folder.startsWith('site=') ? decodeURIComponent(folder.slice(5)) : undefined);
export const dayFolder = (day: string) => `day=${day}`;
export const dayOfFolder = (folder: string) => (/^day=\d{4}-\d{2}-\d{2}$/.test(folder) ? folder.slice(4) : undefined);

export const sitePath = (root: string, siteId: string) => join(root, siteFolder(siteId));
export const partitionPath = (root: string, siteId: string, day: string) => join(sitePath(root, siteId), dayFolder(day));
