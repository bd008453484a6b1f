import type { SqlParams } from './event-source.js';

// A page pattern, as goals and funnel steps take it: `*` stands for any run of characters
// (slashes included, as Plausible's goal patterns), everything else is literal. `/pricing`
// matches that page only; `/blog/*` every page under /blog/.

/** Longest page pattern. */
export const MAX_PAGE_PATTERN_LENGTH = 500;

/** The pattern as a LIKE pattern with `\` as its escape. */
export function likePattern(pattern: string): string {
  return pattern.replace(/[\\%_]/g, (c) => `\\${c}`).replace(/\*+/g, '%');
}

/** Page views whose page matches the pattern. */
export function pageViewSql(pattern: string, params: SqlParams): string {
  return `(kind = 'pageview' AND page LIKE ${params.add(likePattern(pattern))} ESCAPE '\\')`;
}
