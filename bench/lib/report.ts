// Printing results: one aligned table (Markdown, so it pastes into notes as is) and the few
// number formats benchmarks share.

export type Row = Record<string, string>;

/** A Markdown table of rows, columns in the order given, padded so it also reads as plain text. */
export function table(columns: readonly string[], rows: readonly Row[]): string {
  const width = columns.map((c) => Math.max(c.length, ...rows.map((r) => (r[c] ?? '').length)));
  const line = (cells: readonly string[]) =>
    '| ' + cells.map((cell, i) => (i === 0 ? cell.padEnd(width[i] ?? 0) : cell.padStart(width[i] ?? 0))).join(' | ') + ' |';
  const rule = '|' + width.map((w, i) => (i === 0 ? '-'.repeat(w + 2) : '-'.repeat(w + 1) + ':')).join('|') + '|';
  return [line(columns), rule, ...rows.map((r) => line(columns.map((c) => r[c] ?? '')))].join('\n');
}

export const int = (n: number) => Math.round(n).toLocaleString('en-US');
export const ms = (n: number) => (n < 10 ? n.toFixed(2) : n.toFixed(1)) + ' ms';
export const mb = (n: number) => n.toFixed(0) + ' MB';
/** "12.3×" — how many times a is b (a throughput ratio), or "—" without a b. */
export const times = (a: number, b: number | undefined) => (b ? (a / b).toFixed(1) + '×' : '—');
