import { COUNT_KINDS, type CountKind, parseCountName } from '../storage/inbox-count-names.js';

// What a count read answers: a user's counts (one per cell and kind) summed to
// {unseen, unread, total}, optionally within one tenant, optionally broken down by category or
// tenant. O(number of the user's cells).

export type Counts = Record<CountKind, number>;
export type CountsBy = 'category' | 'tenant';
export type CountsAnswer = Counts & { by?: Record<string, Counts> };

const zero = (): Counts => ({ unseen: 0, unread: 0, total: 0 });

export function summarize(
  counts: ReadonlyMap<string, number>,
  options: { tenant?: string | undefined; by?: CountsBy | undefined } = {},
): CountsAnswer {
  const sum = zero();
  const by = new Map<string, Counts>();
  for (const [name, value] of counts) {
    const count = parseCountName(name);
    if (!count || value === 0 || (options.tenant !== undefined && count.tenant !== options.tenant)) continue;
    sum[count.kind] += value;
    if (options.by) {
      const key = count[options.by];
      let part = by.get(key);
      if (!part) by.set(key, (part = zero()));
      part[count.kind] += value;
    }
  }
  if (!options.by) return sum;
  // Cells whose counts are all zero are left out.
  const entries = [...by]
    .filter(([, part]) => COUNT_KINDS.some((kind) => part[kind] !== 0))
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return { ...sum, by: Object.fromEntries(entries) };
}
