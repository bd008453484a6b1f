import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { durableName, type Figure, figureSuffix, parseDurableName, parseFigure } from '../src/counters/counter-names.js';

// Figure suffixes and durable counter names: one codec, written and read back in one file.

const res = fc.constantFrom('m' as const, 'h' as const, 'd' as const);
const bucket = fc.integer({ min: -1e9, max: 4e9 }).map((n) => n * 60);
const word = fc.stringMatching(/^[a-z_]{1,12}$/);
const figure: fc.Arbitrary<Figure> = fc.oneof(
  fc.record({
    kind: fc.constantFrom('user' as const, 'userEvents' as const, 'session' as const, 'product' as const, 'productUsers' as const),
    id: fc.string(),
  }),
  fc.record({ kind: fc.constant('totals' as const), res, bucket }),
  fc.record({ kind: fc.constant('ranking' as const), res, bucket, dim: word, metric: word }),
  fc.record({ kind: fc.constant('unique' as const), res, bucket }),
  fc.record({ kind: fc.constant('unique' as const), res, bucket, dim: word, value: fc.string() }),
  fc.constant({ kind: 'live' as const }),
);

describe('counter names', () => {
  it('reads back every figure it writes, and every durable name', () => {
    fc.assert(
      fc.property(figure, fc.string(), (f, field) => {
        const suffix = figureSuffix(f);
        expect(suffix).not.toContain('|');
        expect(parseFigure(suffix)).toEqual(f);
        expect(parseDurableName(durableName(suffix, field))).toEqual({ suffix, figure: f, field });
      }),
      { seed: 7, numRuns: 2000 },
    );
  });

  it('names the suffixes the stores hold today as before', () => {
    expect(figureSuffix({ kind: 'user', id: 'a:b|c' })).toBe('u:a%3Ab%7Cc');
    expect(figureSuffix({ kind: 'totals', res: 'm', bucket: 60 })).toBe('t:m:60');
    expect(figureSuffix({ kind: 'ranking', res: 'h', bucket: 3600, dim: 'page', metric: 'pv' })).toBe('r:h:3600:page:pv');
    expect(figureSuffix({ kind: 'unique', res: 'd', bucket: 0, dim: 'page', value: '/a:b' })).toBe('h:d:0:page:/a%3Ab');
    expect(figureSuffix({ kind: 'session', id: 'v' })).toBe('vs:v');
  });

  it('reads nothing from names that name no figure', () => {
    for (const bad of [
      '',
      'x',
      'u',
      'u:a:b',
      't:m',
      't:x:60',
      't:m:6.5',
      't:m:60:1',
      'r:m:60:page',
      'r:m:60:Page:pv',
      'h:m:60:page',
      'q:1',
      'live:1',
    ]) {
      expect(parseFigure(bad)).toBeNull();
    }
    expect(parseDurableName('t:m:60')).toBeNull();
    expect(parseDurableName('nonsense|pv')).toBeNull();
  });
});
