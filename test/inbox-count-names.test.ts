import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { bufferField, COUNT_KINDS, countName, parseBufferField, parseCountName, userPrefix } from '../src/storage/inbox-count-names.js';
import { propertyParams } from './helpers.js';

// The names of a user's counts and the buffer fields built from them: what is written reads back,
// a field starts with its user's prefix only, and other formats are refused, not misread.

describe('inbox count names', () => {
  const text = fc.string({ unit: 'grapheme', maxLength: 12 });

  it('reads back every name and buffer field it writes', () => {
    fc.assert(
      fc.property(fc.constantFrom(...COUNT_KINDS), text, text, text, (kind, tenant, category, userId) => {
        const name = countName(kind, tenant, category);
        expect(parseCountName(name)).toEqual({ kind, tenant, category });
        const field = bufferField(userId, name);
        expect(field.startsWith(userPrefix(userId))).toBe(true);
        expect(parseBufferField(field)).toEqual({ kind, tenant, category, userId });
      }),
      propertyParams(500, 10_000),
    );
  });

  it("never takes a field of another user for one of this user's", () => {
    fc.assert(
      fc.property(text, text, (a, b) => {
        fc.pre(a !== b);
        expect(bufferField(b, countName('unread', '', '')).startsWith(userPrefix(a))).toBe(false);
      }),
      propertyParams(500, 10_000),
    );
  });

  it('refuses fields of another format (a delta from before migration 0014) and bad names', () => {
    for (const field of [
      'user-1',
      '["u"]',
      '["u","x","",""]',
      '["u","u","",1]',
      '[1,"u","",""]',
      '["u","u",""',
      '["u","toString","",""]',
    ]) {
      expect(parseBufferField(field), field).toBeNull();
    }
    expect(parseCountName('"u",""]')).toBeNull();
    expect(parseCountName('"q","",""]')).toBeNull();
  });
});
