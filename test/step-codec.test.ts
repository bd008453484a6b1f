import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { AggregateBatch, AggregateOp } from '../src/storage/analytics-realtime.js';
import { createKeys } from '../src/storage/keys.js';
import { decodeStep, encodeStep } from '../src/storage/redis/step-codec.js';

// The analytics step's wire format for lua/apply-aggregate.lua: what is encoded reads back, and
// every key travels once.

const keys = createKeys('codec');
const buffer = fc.constantFrom(keys.analyticsBuffer('s'), keys.rollupBuffer('s'), keys.uniquesBuffer('s'));
const key = fc.string({ minLength: 1, maxLength: 8 }).map((s) => keys.siteKey('s', s));
const small = fc.integer({ min: -1000, max: 1000 });
const leaf: fc.Arbitrary<AggregateOp> = fc.oneof(
  fc.record({ op: fc.constant('count' as const), key, field: fc.string(), by: small }),
  fc.record({ op: fc.constant('count' as const), key, field: fc.string(), by: small, durable: fc.record({ buffer, name: fc.string() }) }),
  fc.record({ op: fc.constant('pfadd' as const), key, members: fc.array(fc.string(), { minLength: 1 }) }),
  fc.record({
    op: fc.constant('pfadd' as const),
    key,
    members: fc.array(fc.string(), { minLength: 1 }),
    dirty: fc.record({ buffer, name: fc.string() }),
  }),
  fc.record({ op: fc.constant('zincrby' as const), key, member: fc.string(), by: small }),
  fc.record({ op: fc.constant('zmax' as const), key, member: fc.string(), score: fc.nat() }),
  fc.record({ op: fc.constant('zremrangebyscore' as const), key, max: fc.nat() }),
  fc.record({ op: fc.constant('expire' as const), key, seconds: fc.nat() }),
  fc.record({
    op: fc.constant('session' as const),
    key,
    buffer,
    gapMs: fc.nat(),
    ttlSeconds: fc.nat(),
    views: fc.array(fc.record({ at: fc.nat(), totals: fc.array(fc.record({ key, name: fc.string() }), { maxLength: 3 }) }), {
      maxLength: 3,
    }),
  }),
);
const op: fc.Arbitrary<AggregateOp> = fc.oneof(
  { weight: 5, arbitrary: leaf },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant('count' as const),
      key,
      field: fc.string(),
      by: small,
      onFirst: fc.array(leaf, { minLength: 1, maxLength: 3 }),
    }),
  },
);
const batch: fc.Arbitrary<AggregateBatch> = fc.record({
  dedupeTtlSeconds: fc.nat(),
  dedupeKeys: fc.array(key, { maxLength: 5 }),
  ops: fc.array(op, { maxLength: 8 }),
  packed: fc.array(fc.record({ buffer, names: fc.array(fc.string(), { maxLength: 4 }), deltas: fc.array(small, { maxLength: 4 }) }), {
    maxLength: 3,
  }),
});

/** What the script is meant to receive: the step with keys resolved, as far as it travels. */
function expected(b: AggregateBatch) {
  const ops = (list: readonly AggregateOp[]): unknown[] =>
    list.map((o) => {
      switch (o.op) {
        case 'count':
          return {
            op: o.op,
            key: o.key,
            fields: [o.field, o.by, o.durable?.buffer.pending ?? null, o.durable?.name ?? '', o.onFirst ? ops(o.onFirst) : null],
          };
        case 'pfadd':
          return { op: o.op, key: o.key, fields: [o.members, o.dirty?.buffer.pending ?? null, o.dirty?.name ?? ''] };
        case 'zincrby':
        case 'zmax':
          return { op: o.op, key: o.key, fields: [o.member, o.op === 'zmax' ? o.score : o.by] };
        case 'zremrangebyscore':
          return { op: o.op, key: o.key, fields: [o.max] };
        case 'expire':
          return { op: o.op, key: o.key, fields: [o.seconds] };
        case 'session':
          return {
            op: o.op,
            key: o.key,
            fields: [o.buffer.pending, o.gapMs, o.ttlSeconds, o.views.map((v) => [v.at, ...v.totals.flatMap((t) => [t.key, t.name])])],
          };
      }
    });
  return {
    dedupeTtlSeconds: b.dedupeTtlSeconds,
    dedupeKeys: b.dedupeKeys,
    ops: ops(b.ops),
    packed: b.packed.filter((p) => p.names.length > 0).map((p) => ({ list: p.buffer.pendingPacked, names: p.names, deltas: p.deltas })),
  };
}

describe('analytics step codec', () => {
  it('reads back what it encodes, each key once', () => {
    fc.assert(
      fc.property(batch, (b) => {
        const encoded = encodeStep(b);
        expect(new Set(encoded.keys).size).toBe(encoded.keys.length);
        expect(decodeStep(encoded)).toEqual(expected(b));
      }),
      { seed: 11, numRuns: 1000 },
    );
  });

  it('refuses to read a step that names a key it does not carry', () => {
    const encoded = encodeStep({ dedupeTtlSeconds: 1, dedupeKeys: [], ops: [{ op: 'expire', key: 'k', seconds: 1 }], packed: [] });
    expect(() => decodeStep({ ...encoded, keys: [] })).toThrow(/not in KEYS/);
  });
});
