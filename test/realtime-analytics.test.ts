import { beforeEach, describe, expect, it } from 'vitest';
import type { AggregateOp } from '../src/storage/analytics-realtime.js';
import { HyperLogLog } from '../src/storage/hyperloglog.js';
import { createKeys, type Keys } from '../src/storage/keys.js';
import type { Realtime } from '../src/storage/realtime.js';
import { eventually, uniqueName } from './helpers.js';
import { deltasOf, realtimeLayers } from './realtime-layers.js';

// The analytics step and the hot figures' reads (src/storage/analytics-realtime.ts), for every
// implementation. test/realtime-differential.test.ts runs random steps against all of them.

describe.each(realtimeLayers())('analytics: %s', (_name, open) => {
  let rt: Realtime;
  let keys: Keys;
  let id = 0;
  beforeEach(async () => {
    keys = createKeys(uniqueName('rt'));
    rt = await open(keys);
  });
  const apply = (siteId: string, ops: AggregateOp[], packed: Parameters<Realtime['analytics']['apply']>[0]['packed'] = []) =>
    rt.analytics.apply({ dedupeTtlSeconds: 60, dedupeKeys: [keys.dedupe(siteId, String(id++))], ops, packed });

  it('runs onFirst only when a counter field was 0 before (exact distinct counts)', async () => {
    const buffer = keys.analyticsBuffer('s2');
    const pair = (user: string, by: number): AggregateOp => ({
      op: 'count',
      key: keys.siteKey('s2', 'pu:p1'),
      field: user,
      by,
      durable: { buffer, name: `pu:p1|${user}` },
      onFirst: [{ op: 'count', key: keys.siteKey('s2', 'p:p1'), field: 'users', by: 1, durable: { buffer, name: 'p:p1|users' } }],
    });
    await apply('s2', [pair('u1', 3), pair('u2', 1)]);
    await apply('s2', [pair('u1', 1)]);
    expect(await rt.analytics.counters('s2', 'pu:p1')).toEqual({ u1: 4, u2: 1 });
    expect(await rt.analytics.counters('s2', 'p:p1')).toEqual({ users: 2 });
    expect(deltasOf(await rt.buffers.take(buffer, 0))).toEqual({ 'pu:p1|u1': 4, 'pu:p1|u2': 1, 'p:p1|users': 2 });
  });

  it('keeps the latest live time, trims by time, and lets figures expire', async () => {
    const live = keys.siteKey('s3', 'live');
    await apply('s3', [
      { op: 'zmax', key: live, member: 'v1', score: 1000 },
      { op: 'zmax', key: live, member: 'v2', score: 2000 },
      { op: 'zmax', key: live, member: 'v2', score: 1500 },
      { op: 'zremrangebyscore', key: live, max: 1000 },
      { op: 'expire', key: live, seconds: 1 },
    ]);
    expect(await rt.analytics.liveSince('s3', 0)).toBe(1);
    expect(await rt.analytics.liveSince('s3', 2000)).toBe(1);
    expect(await rt.analytics.liveSince('s3', 2001)).toBe(0);
    await eventually(async () => expect(await rt.analytics.liveSince('s3', 0)).toBe(0), 5_000);
  });

  it('runs summed ops only when every event is new, else names the duplicates and writes nothing', async () => {
    const buffer = keys.rollupBuffer('a1');
    const ops: AggregateOp[] = [
      { op: 'count', key: keys.siteKey('a1', 't'), field: 'pv', by: 3, durable: { buffer, name: 't|pv' } },
      { op: 'zincrby', key: keys.siteKey('a1', 'r'), member: '/home', by: 2 },
    ];
    const packed = [{ buffer, names: ['r|/home', 't|pv'], deltas: [2, 10] }];
    const seen = (n: string) => keys.dedupe('a1', n);
    const step = (dedupeKeys: string[]) => rt.analytics.apply({ dedupeTtlSeconds: 60, dedupeKeys, ops, packed });
    expect(await step([seen('1'), seen('2')])).toEqual([]);
    // 2 was counted; 3 repeats inside the batch: both named, nothing applied.
    expect(await step([seen('2'), seen('3'), seen('3')])).toEqual([0, 2]);
    expect(await rt.analytics.counters('a1', 't')).toEqual({ pv: 3 });
    expect(await step([seen('3')])).toEqual([]);
    expect(await rt.analytics.counters('a1', 't')).toEqual({ pv: 6 });
    expect(await rt.analytics.rank('a1', ['r'], 0)).toEqual([{ member: '/home', score: 4 }]);
    expect(deltasOf(await rt.buffers.take(buffer, 0))).toEqual({ 't|pv': 26, 'r|/home': 4 });
  });

  it('refuses a step that moves a counter by a fraction, writing nothing', async () => {
    const buffer = keys.analyticsBuffer('f1');
    const step = { dedupeTtlSeconds: 60, dedupeKeys: [keys.dedupe('f1', 'x')], packed: [] };
    await expect(
      rt.analytics.apply({
        ...step,
        ops: [{ op: 'count', key: keys.siteKey('f1', 'u:a'), field: 'clicks', by: 1.5, durable: { buffer, name: 'u:a|clicks' } }],
      }),
    ).rejects.toThrow(/whole numbers/);
    expect(await rt.analytics.counters('f1', 'u:a')).toEqual({});
    // Its event was not marked as seen: the same event, counted right, goes in.
    expect(await rt.analytics.apply({ ...step, ops: [{ op: 'count', key: keys.siteKey('f1', 'u:a'), field: 'clicks', by: 1 }] })).toEqual(
      [],
    );
    expect(await rt.analytics.counters('f1', 'u:a')).toEqual({ clicks: 1 });
  });

  it('marks a HyperLogLog dirty only when it changed, and runs sessions', async () => {
    const uniques = keys.uniquesBuffer('a2');
    const rollups = keys.rollupBuffer('a2');
    const h = keys.siteKey('a2', 'h:m:0');
    await apply('a2', [{ op: 'pfadd', key: h, members: ['a', 'b'], dirty: { buffer: uniques, name: 'h:m:0' } }]);
    await apply('a2', [{ op: 'pfadd', key: h, members: ['a'], dirty: { buffer: uniques, name: 'h:m:0' } }]);
    expect(await rt.analytics.countUniques('a2', ['h:m:0'])).toBe(2);
    expect(deltasOf(await rt.buffers.take(uniques, 0))).toEqual({ 'h:m:0': 1 });
    const minute = 60_000;
    const totals = (n: number) => ({ key: keys.siteKey('a2', `t:m:${n}`), name: `t:m:${n}` });
    const session = (views: [number, number][]): AggregateOp => ({
      op: 'session',
      key: keys.siteKey('a2', 'vs:ann'),
      buffer: rollups,
      gapMs: 30 * minute,
      ttlSeconds: 600,
      views: views.map(([at, bucket]) => ({ at, totals: [totals(bucket)] })),
    });
    // First view: a session and a bounce; the second, 10 minutes later (next bucket): no bounce any more.
    await apply('a2', [
      session([
        [0, 1],
        [10 * minute, 2],
      ]),
    ]);
    // A third view of the same session changes nothing; one 31 minutes after the last starts a new session.
    await apply('a2', [
      session([
        [20 * minute, 2],
        [51 * minute, 3],
      ]),
    ]);
    expect(await rt.analytics.counters('a2', 't:m:1')).toEqual({ se: 1, bo: 1 });
    expect(await rt.analytics.counters('a2', 't:m:2')).toEqual({ bo: -1 });
    expect(await rt.analytics.counters('a2', 't:m:3')).toEqual({ se: 1, bo: 1 });
    expect(deltasOf(await rt.buffers.take(rollups, 0))).toEqual({
      't:m:1|se': 1,
      't:m:1|bo': 1,
      't:m:2|bo': -1,
      't:m:3|se': 1,
      't:m:3|bo': 1,
    });
  });

  it("ranks the sum of several rankings, equal scores by the members' bytes", async () => {
    await apply('a3', [
      { op: 'zincrby', key: keys.siteKey('a3', 'r1'), member: 'a', by: 5 },
      { op: 'zincrby', key: keys.siteKey('a3', 'r1'), member: 'b', by: 1 },
      { op: 'zincrby', key: keys.siteKey('a3', 'r2'), member: 'b', by: 7 },
      { op: 'zincrby', key: keys.siteKey('a3', 'r2'), member: 'c', by: 2 },
      // U+FF5E sorts after U+1F600 in UTF-16 but before it in UTF-8.
      { op: 'zincrby', key: keys.siteKey('a3', 'r2'), member: '\u{ff5e}', by: 2 },
      { op: 'zincrby', key: keys.siteKey('a3', 'r2'), member: '\u{1f600}', by: 2 },
    ]);
    expect(await rt.analytics.rank('a3', ['r1', 'r2'], 2)).toEqual([
      { member: 'b', score: 8 },
      { member: 'a', score: 5 },
    ]);
    expect((await rt.analytics.rank('a3', ['r1', 'r2'], 0)).map((r) => r.member)).toEqual(['b', 'a', '\u{1f600}', '\u{ff5e}', 'c']);
    expect(await rt.analytics.rank('a3', ['r2'], 1)).toEqual([{ member: 'b', score: 7 }]);
    expect(await rt.analytics.rank('a3', [], 1)).toEqual([]);
  });

  it('copies HyperLogLogs as bytes the other implementation restores, and restores figures whole', async () => {
    await apply('a4', [{ op: 'pfadd', key: keys.siteKey('a4', 'h:d:0'), members: ['u1', 'u2', 'u3'] }]);
    const [copy, missing] = await rt.analytics.copyUniques('a4', ['h:d:0', 'h:d:1']);
    expect(missing).toBeNull();
    expect(copy?.visitors).toBe(3);
    expect(copy?.hll.subarray(0, 4).toString('latin1')).toBe('HYLL');
    await rt.analytics.restore('a4', [
      { kind: 'unique', suffix: 'h:d:2', hll: copy?.hll as Buffer, ttlSeconds: 100 },
      { kind: 'counters', suffix: 't:d:0', values: { pv: 4, ev: 2 } },
      { kind: 'ranking', suffix: 'r:d:0:page:pv', values: { '/a': 3, '/b': 9 }, ttlSeconds: 100 },
    ]);
    expect(await rt.analytics.countUniques('a4', ['h:d:2'])).toBe(3);
    expect(await rt.analytics.countUniques('a4', ['h:d:0', 'h:d:2'])).toBe(3);
    expect(await rt.analytics.counters('a4', 't:d:0')).toEqual({ pv: 4, ev: 2 });
    expect(await rt.analytics.rank('a4', ['r:d:0:page:pv'], 0)).toEqual([
      { member: '/b', score: 9 },
      { member: '/a', score: 3 },
    ]);
    await rt.analytics.restore('a4', [{ kind: 'counters', suffix: 't:d:0', values: { pv: 1 } }]);
    expect(await rt.analytics.counters('a4', 't:d:0')).toEqual({ pv: 1 });
  });

  it('counts HyperLogLogs together with sketches sent along (buckets only PostgreSQL holds)', async () => {
    await apply('a5', [{ op: 'pfadd', key: keys.siteKey('a5', 'h:d:0'), members: ['u1', 'u2'] }]);
    const sketch = (members: string[]) => {
      const hll = new HyperLogLog();
      for (const m of members) hll.add(m);
      return hll.toBytes();
    };
    expect(await rt.analytics.countUniques('a5', ['h:d:0'], [sketch(['u2', 'u3'])])).toBe(3);
    expect(await rt.analytics.countUniques('a5', ['h:d:0', 'h:d:9'], [sketch(['u4']), sketch(['u1', 'u5'])])).toBe(4);
    expect(await rt.analytics.countUniques('a5', [], [sketch(['u7'])])).toBe(1);
    expect(await rt.analytics.countUniques('a5', ['h:d:0'], [])).toBe(2);
    // A copy taken from the layer itself is a sketch like any other.
    const [copy] = await rt.analytics.copyUniques('a5', ['h:d:0']);
    expect(await rt.analytics.countUniques('a5', ['h:d:9'], [copy?.hll as Buffer, sketch(['u9'])])).toBe(3);
    // Bytes that are not a HyperLogLog are refused, and the sources stay as they were.
    await expect(rt.analytics.countUniques('a5', ['h:d:0'], [Buffer.from('HYLL-not-really')])).rejects.toThrow();
    expect(await rt.analytics.countUniques('a5', ['h:d:0'])).toBe(2);
    expect((await rt.analytics.copyUniques('a5', ['h:d:0']))[0]?.hll.equals(copy?.hll as Buffer)).toBe(true);
  });
});
