import { TallyError } from '../errors.js';

// The compact filter form of the GET stats routes (API.md): `country==DE|FR;page=~/blog;source!=Direct`.
// `==` is, `!=` is not, `=~` contains, `!~` contains not; `;` joins conditions with and; `|`
// separates a condition's values (any of them). A backslash takes the next character as it is
// (`\;`, `\|`, `\\`). The result is the query API's filter form, validated by the same parser.

const OPERATORS: readonly [string, string][] = [
  ['==', 'is'],
  ['!=', 'is_not'],
  ['=~', 'contains'],
  ['!~', 'contains_not'],
];

/** Splits on `separator` outside backslash escapes, keeping the escapes in the pieces. */
function splitEscaped(text: string, separator: string): string[] {
  const out: string[] = [];
  let current = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if (c === '\\' && i + 1 < text.length) {
      current += c + text[i + 1];
      i += 1;
    } else if (c === separator) {
      out.push(current);
      current = '';
    } else current += c;
  }
  out.push(current);
  return out;
}

const unescaped = (text: string) => text.replace(/\\([\s\S])/g, '$1');

/** The compact form as ["and", [[op, dimension, [values…]], …]]; a 400 at /filters when it is not one. */
export function parseCompactFilters(text: string): unknown[] {
  const conditions = splitEscaped(text, ';')
    .filter((part) => part !== '')
    .map((part, i) => {
      let at = -1;
      let op = '';
      for (const [symbol, name] of OPERATORS) {
        const found = part.indexOf(symbol);
        if (found > 0 && (at < 0 || found < at)) {
          at = found;
          op = name;
        }
      }
      if (at < 0) {
        throw new TallyError(
          'invalid_request',
          `Condition ${i + 1} of filters ("${part.slice(0, 60)}") needs an operator: == (is), != (is not), =~ (contains) or !~ (contains not), e.g. country==DE|FR.`,
          '/filters',
        );
      }
      const values = splitEscaped(part.slice(at + 2), '|').map(unescaped);
      return [op, unescaped(part.slice(0, at)), values];
    });
  if (conditions.length === 0) throw new TallyError('invalid_request', 'filters holds no condition (e.g. country==DE).', '/filters');
  return ['and', conditions];
}
