import { describe, expect, it } from 'vitest';
import { TallyError } from '../src/errors.js';
import type { Goal } from '../src/goals/goal.js';
import { parseCompactFilters } from '../src/query/compact-filters.js';
import { comparisonRange, parseDateRange } from '../src/query/date-range.js';
import { parseQuery, QUERY_LIMITS } from '../src/query/parse-query.js';

// Every class of bad query is a 400 invalid_request whose path points at the bad part.

const GOALS: Goal[] = [{ id: 'g1', name: 'Signup', event: 'Signed Up', props: {} }];
const NOW = Date.UTC(2026, 0, 20, 12, 34, 56);
const parse = (body: unknown, zone = 'UTC') => parseQuery(body, { siteId: 's', zone, nowMs: NOW, goals: GOALS });
const base = { date_range: '7d', metrics: ['visitors'] };

function pathOf(body: unknown): string | undefined {
  try {
    parse(body);
  } catch (err) {
    expect(err).toBeInstanceOf(TallyError);
    expect((err as TallyError).code).toBe('invalid_request');
    expect((err as TallyError).status).toBe(400);
    return (err as TallyError).path;
  }
  throw new Error('the query was accepted');
}

const many = (n: number, make: (i: number) => unknown) => Array.from({ length: n }, (_, i) => make(i));
const nest = (depth: number): unknown => (depth === 0 ? ['is', 'page', ['/']] : ['not', nest(depth - 1)]);

describe('parseQuery refuses a bad query with the path of the bad part', () => {
  const cases: [string, unknown, string][] = [
    ['not an object', [1], ''],
    ['an unknown field', { ...base, site: 'x' }, '/site'],
    ['no date_range', { metrics: ['visitors'] }, '/date_range'],
    ['an unknown period', { ...base, date_range: '3d' }, '/date_range'],
    ['a range of one end', { ...base, date_range: ['2026-01-01'] }, '/date_range'],
    ['a bad start', { ...base, date_range: ['2026-02-30', '2026-03-01'] }, '/date_range/0'],
    ['a bad end', { ...base, date_range: ['2026-01-01', 'tomorrow'] }, '/date_range/1'],
    ['an end before the start', { ...base, date_range: ['2026-02-01', '2026-01-01'] }, '/date_range/1'],
    ['a range over ten years', { ...base, date_range: ['2000-01-01', '2026-01-01'] }, '/date_range/1'],
    ['no metrics', { date_range: '7d' }, '/metrics'],
    ['empty metrics', { ...base, metrics: [] }, '/metrics'],
    ['an unknown metric', { ...base, metrics: ['visitors', 'sales'] }, '/metrics/1'],
    ['a metric twice', { ...base, metrics: ['visitors', 'visitors'] }, '/metrics/1'],
    ['conversions without a goal', { ...base, metrics: ['visitors', 'conversions'] }, '/metrics/1'],
    [
      'conversion_rate with a goal under or',
      {
        ...base,
        metrics: ['conversion_rate'],
        filters: [
          'or',
          [
            ['is', 'goal', ['Signup']],
            ['is', 'page', ['/']],
          ],
        ],
      },
      '/metrics/0',
    ],
    ['dimensions not a list', { ...base, dimensions: 'page' }, '/dimensions'],
    ['an unknown dimension', { ...base, dimensions: ['page', 'planet'] }, '/dimensions/1'],
    ['an empty property name', { ...base, dimensions: ['props:'] }, '/dimensions/0'],
    ['a dimension twice', { ...base, dimensions: ['page', 'event:page'] }, '/dimensions/1'],
    ['two time dimensions', { ...base, dimensions: ['time:day', 'time:hour'] }, '/dimensions/1'],
    ['too many dimensions', { ...base, dimensions: ['page', 'source', 'country', 'os', 'device', 'browser'] }, '/dimensions'],
    ['a filter that is no list', { ...base, filters: 'page==/' }, '/filters'],
    [
      'an unknown operator',
      {
        ...base,
        filters: [
          'and',
          [
            ['is', 'page', ['/']],
            ['matches', 'page', ['/']],
          ],
        ],
      },
      '/filters/1/1/0',
    ],
    ['an unknown filter dimension', { ...base, filters: ['is', 'planet', ['Mars']] }, '/filters/1'],
    ['a time filter', { ...base, filters: ['is', 'time:day', ['2026-01-01']] }, '/filters/1'],
    ['values not a list', { ...base, filters: ['is', 'page', '/'] }, '/filters/2'],
    ['no values', { ...base, filters: ['is', 'page', []] }, '/filters/2'],
    ['a value not a string', { ...base, filters: ['not', ['is', 'page', ['/', 3]]] }, '/filters/1/2/1'],
    ['a value too long', { ...base, filters: ['is', 'page', ['x'.repeat(QUERY_LIMITS.valueLength + 1)]] }, '/filters/2/0'],
    ['too many values', { ...base, filters: ['is', 'page', many(QUERY_LIMITS.valuesPerCondition + 1, String)] }, '/filters/2'],
    [
      'too many conditions',
      { ...base, filters: ['or', many(QUERY_LIMITS.conditions + 1, () => ['is', 'page', ['/']])] },
      `/filters/1/${QUERY_LIMITS.conditions}`,
    ],
    ['nesting too deep', { ...base, filters: nest(QUERY_LIMITS.depth + 1) }, `/filters${'/1'.repeat(QUERY_LIMITS.depth)}`],
    ['an empty and', { ...base, filters: ['and', []] }, '/filters/1'],
    ['a condition of two parts', { ...base, filters: ['is', 'page'] }, '/filters'],
    ['a goal that does not exist', { ...base, filters: ['is', 'goal', ['Signup', 'Purchase']] }, '/filters/2/1'],
    ['order_by a field not asked for', { ...base, order_by: [['pageviews', 'desc']] }, '/order_by/0/0'],
    ['order_by a bad direction', { ...base, order_by: [['visitors', 'down']] }, '/order_by/0/1'],
    ['order_by not pairs', { ...base, order_by: ['visitors'] }, '/order_by/0'],
    ['a limit over 10,000', { ...base, pagination: { limit: QUERY_LIMITS.limit + 1 } }, '/pagination/limit'],
    ['a limit of 0', { ...base, pagination: { limit: 0 } }, '/pagination/limit'],
    ['a negative offset', { ...base, pagination: { offset: -1 } }, '/pagination/offset'],
    ['a fractional limit', { ...base, pagination: { limit: 1.5 } }, '/pagination/limit'],
    ['an unknown pagination field', { ...base, pagination: { page: 2 } }, '/pagination/page'],
    ['an unknown comparison', { ...base, include: { comparison: 'last_week' } }, '/include/comparison'],
    ['a comparison of all time', { ...base, date_range: 'all', include: { comparison: 'previous_period' } }, '/include/comparison'],
    ['bots not a boolean', { ...base, include: { bots: 'yes' } }, '/include/bots'],
    ['an unknown include', { ...base, include: { imports: true } }, '/include/imports'],
  ];
  it.each(cases)('%s', (_name, body, path) => {
    expect(pathOf(body)).toBe(path);
  });

  it('accepts every limit at its edge', () => {
    const q = parse({
      ...base,
      dimensions: ['page', 'source', 'country', 'os', 'device'],
      filters: [
        'or',
        many(QUERY_LIMITS.conditions, () => [
          'is',
          'page',
          many(QUERY_LIMITS.valuesPerCondition, () => 'x'.repeat(QUERY_LIMITS.valueLength)),
        ]),
      ],
      pagination: { limit: QUERY_LIMITS.limit, offset: QUERY_LIMITS.offset },
    });
    expect(q.dimensions).toHaveLength(5);
    expect(parse({ ...base, filters: nest(QUERY_LIMITS.depth) }).filters).not.toBeNull();
  });

  it("accepts Plausible's names and resolves goals", () => {
    const q = parse({
      ...base,
      metrics: ['conversion_rate'],
      dimensions: ['event:goal', 'visit:source', 'event:props:plan'],
      filters: ['is', 'event:goal', ['Signup']],
    });
    expect(q.dimensions.map((d) => d.name)).toEqual(['goal', 'source', 'props:plan']);
    expect(q.filters).toMatchObject({ op: 'is', goals: [GOALS[0]] });
  });
});

describe('date ranges in the site zone', () => {
  const range = (v: unknown, zone = 'Europe/Berlin') => parseDateRange(v, zone, NOW, '/date_range');
  const iso = (r: { fromMs: number; toMs: number }) => [new Date(r.fromMs).toISOString(), new Date(r.toMs).toISOString()];

  it('resolves named periods to the zone’s days, ending with today', () => {
    expect(iso(range('today'))).toEqual(['2026-01-19T23:00:00.000Z', '2026-01-20T23:00:00.000Z']);
    expect(iso(range('7d'))).toEqual(['2026-01-13T23:00:00.000Z', '2026-01-20T23:00:00.000Z']);
    expect(iso(range('12mo'))).toEqual(['2025-01-31T23:00:00.000Z', '2026-01-31T23:00:00.000Z']);
    expect(iso(range('realtime', 'UTC'))).toEqual(['2026-01-20T12:05:00.000Z', '2026-01-20T12:35:00.000Z']);
    expect(iso(range('24h', 'Asia/Kolkata'))).toEqual(['2026-01-19T13:30:00.000Z', '2026-01-20T13:30:00.000Z']);
  });

  it('reads dates, zone-less times in the zone, and times with offsets; both ends included', () => {
    expect(iso(range(['2026-03-29', '2026-03-29']))).toEqual(['2026-03-28T23:00:00.000Z', '2026-03-29T22:00:00.000Z']);
    expect(iso(range(['2026-01-01T10:00:00', '2026-01-01T11:00:00+00:00']))).toEqual([
      '2026-01-01T09:00:00.000Z',
      '2026-01-01T11:00:00.001Z',
    ]);
  });

  it('compares with as many days before, and the same dates a year before', () => {
    const r = range(['2026-03-29', '2026-03-30']);
    expect(iso(comparisonRange('previous_period', r, 'Europe/Berlin'))).toEqual(['2026-03-26T23:00:00.000Z', '2026-03-28T23:00:00.000Z']);
    expect(iso(comparisonRange('year_over_year', r, 'Europe/Berlin'))).toEqual(['2025-03-28T23:00:00.000Z', '2025-03-30T22:00:00.000Z']);
  });
});

describe('compact filters of the GET routes', () => {
  it('reads is, is not, contains, contains not, value lists and escapes', () => {
    expect(parseCompactFilters('country==DE|FR;page=~/blog;source!=Direct;props:plan!~fr\\;ee\\|x')).toEqual([
      'and',
      [
        ['is', 'country', ['DE', 'FR']],
        ['contains', 'page', ['/blog']],
        ['is_not', 'source', ['Direct']],
        ['contains_not', 'props:plan', ['fr;ee|x']],
      ],
    ]);
    expect(parseCompactFilters('page==/a==b')).toEqual(['and', [['is', 'page', ['/a==b']]]]);
  });

  it('refuses a condition without an operator, and an empty one, at /filters', () => {
    for (const text of ['country=DE', ';;', '==DE']) {
      expect(() => parseCompactFilters(text)).toThrow(expect.objectContaining({ code: 'invalid_request', path: '/filters' }));
    }
  });
});
