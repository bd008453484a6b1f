import { part, unpart } from '../storage/keys.js';

// The names of every analytics figure, in one place. A figure's suffix names it in the
// real-time layer (the key {s:<site>}:<suffix>); a durable counter name "<suffix>|<field>"
// names one of its fields in PostgreSQL (the counters and rollups tables, through the flush).
// Ids are escaped with part(), so a suffix holds no '|' and splits at its first one.
//   u:<user>                           hash: pageviews, clicks, products (distinct clicked)
//   ue:<user>                          hash: one field per track event name
//   p:<product>                        hash: clicks, users (distinct users who clicked)
//   pu:<product>                       hash: one field per user, their clicks on the product
//   t:<res>:<bucket>                   hash of a time bucket's totals (buckets.ts: TOTALS)
//   r:<res>:<bucket>:<dim>:<metric>    ranking: dimension value -> count
//   h:<res>:<bucket>                   HyperLogLog of the bucket's visitors
//   h:<res>:<bucket>:<dim>:<value>     HyperLogLog of one dimension value's visitors
//   vs:<visitor>                       a visitor's session state
//   live                               the live set (visitor -> last seen ms)
// <res> is m (minute), h (hour) or d (day); <bucket> its start in epoch seconds.

export type Res = 'm' | 'h' | 'd';
export const RES_SECONDS: Readonly<Record<Res, number>> = { m: 60, h: 3600, d: 86_400 };

export type Figure =
  | { kind: 'user' | 'userEvents' | 'session'; id: string }
  | { kind: 'product' | 'productUsers'; id: string }
  | { kind: 'totals'; res: Res; bucket: number }
  | { kind: 'ranking'; res: Res; bucket: number; dim: string; metric: string }
  | { kind: 'unique'; res: Res; bucket: number; dim?: string; value?: string }
  | { kind: 'live' };

const ID_PREFIX = { user: 'u', userEvents: 'ue', product: 'p', productUsers: 'pu', session: 'vs' } as const;
const ID_KIND = Object.fromEntries(Object.entries(ID_PREFIX).map(([kind, prefix]) => [prefix, kind])) as Record<
  string,
  keyof typeof ID_PREFIX
>;

/** The suffix of a figure. */
export function figureSuffix(f: Figure): string {
  switch (f.kind) {
    case 'totals':
      return `t:${f.res}:${f.bucket}`;
    case 'ranking':
      return `r:${f.res}:${f.bucket}:${f.dim}:${f.metric}`;
    case 'unique':
      return f.dim === undefined ? `h:${f.res}:${f.bucket}` : `h:${f.res}:${f.bucket}:${f.dim}:${part(f.value ?? '')}`;
    case 'live':
      return 'live';
    default:
      return `${ID_PREFIX[f.kind]}:${part(f.id)}`;
  }
}

const isRes = (s: string | undefined): s is Res => s === 'm' || s === 'h' || s === 'd';
/** Bucket starts are whole epoch seconds written by figureSuffix. */
const bucketOfText = (s: string | undefined) => (s !== undefined && /^-?\d+$/.test(s) ? Number(s) : null);
/** Dimension and metric names are plain words (they are written unescaped). */
const isWord = (s: string | undefined): s is string => s !== undefined && /^[a-z_]+$/.test(s);

/** The figure a suffix names, or null when it names none. */
export function parseFigure(suffix: string): Figure | null {
  if (suffix === 'live') return { kind: 'live' };
  const parts = suffix.split(':');
  const [head, a, b, c, d] = parts;
  if (head === undefined) return null;
  const idKind = ID_KIND[head];
  if (idKind) return parts.length === 2 && a !== undefined ? { kind: idKind, id: unpart(a) } : null;
  if (!isRes(a)) return null;
  const bucket = bucketOfText(b);
  if (bucket === null) return null;
  if (head === 't' && parts.length === 3) return { kind: 'totals', res: a, bucket };
  if (head === 'r' && parts.length === 5 && isWord(c) && isWord(d)) return { kind: 'ranking', res: a, bucket, dim: c, metric: d };
  if (head === 'h' && parts.length === 3) return { kind: 'unique', res: a, bucket };
  if (head === 'h' && parts.length === 5 && isWord(c) && d !== undefined)
    return { kind: 'unique', res: a, bucket, dim: c, value: unpart(d) };
  return null;
}

/**
 * Told of stored names that name no figure this code knows (written by another version, or
 * corrupted): they are skipped, and the caller counts and logs them.
 */
export type UnknownNames = (where: string, names: readonly string[]) => void;

/** A durable counter name: one field of a figure. */
export function durableName(suffix: string, field: string): string {
  return `${suffix}|${field}`;
}

/** The figure and field a durable counter name stands for, or null when it names none. */
export function parseDurableName(name: string): { suffix: string; figure: Figure; field: string } | null {
  const bar = name.indexOf('|');
  if (bar < 0) return null;
  const suffix = name.slice(0, bar);
  const figure = parseFigure(suffix);
  return figure ? { suffix, figure, field: name.slice(bar + 1) } : null;
}
