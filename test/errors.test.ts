import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { errorCatalogue } from '../src/errors.js';

// The catalogue is the one source of error codes: the docs list each of them with its status,
// and every code API.md requires is in it.

const docs = readFileSync(new URL('../docs/errors.md', import.meta.url), 'utf8');
const REQUIRED_BY_API = {
  invalid_json: 400,
  invalid_event: 400,
  payload_too_large: 413,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  rate_limited: 429,
  overloaded: 503,
};

describe('error catalogue', () => {
  it.each(Object.entries(errorCatalogue))('docs/errors.md lists %s with its status', (code, entry) => {
    expect(docs).toMatch(new RegExp(`\\| \`${code}\` \\| ${entry.status} \\|`));
  });

  it('docs list no code the catalogue lacks', () => {
    const documented = [...docs.matchAll(/^\| `([a-z_]+)` \|/gm)].map((m) => m[1]);
    expect(documented.sort()).toEqual(Object.keys(errorCatalogue).sort());
  });

  it.each(Object.entries(REQUIRED_BY_API))('has API.md code %s with status %i', (code, status) => {
    expect(errorCatalogue[code as keyof typeof errorCatalogue]?.status).toBe(status);
  });

  it('uses snake_case codes and sentence messages', () => {
    for (const [code, entry] of Object.entries(errorCatalogue)) {
      expect(code).toMatch(/^[a-z]+(_[a-z]+)*$/);
      expect(entry.message).toMatch(/^[A-Z].*\.$/);
    }
  });
});
