import { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createKeys, type Keys } from '../src/storage/keys.js';
import { createMemoryRealtime } from '../src/storage/memory/realtime-memory.js';
import type { AggregateOp, Realtime } from '../src/storage/realtime.js';
import { createRedisRealtime } from '../src/storage/redis/realtime-redis.js';
import { eventually, REDIS_URL, uniqueName } from './helpers.js';
import { startTestCluster, type TestCluster } from './redis-cluster.js';

// One contract, two implementations: what the Lua scripts do in Redis, the in-process layer
// does too. A behaviour added to one is added here and to the other.

// The cluster case runs every script on three masters: a script whose keys spanned two hash
// slots would fail there with CROSSSLOT.
let cluster: TestCluster | undefined;
beforeAll(async () => {
  cluster = await startTestCluster();
});

const implementations: [string, () => Realtime][] = [
  ['redis', () => createRedisRealtime(new Redis(REDIS_URL))],
  ['redis cluster', () => createRedisRealtime(cluster!.client())],
  ['memory', () => createMemoryRealtime()],
];

const opened: Realtime[] = [];
afterAll(async () => {
  for (const rt of opened) await rt.close();
  await cluster?.stop();
});

describe.each(implementations)('real-time layer contract: %s', (_name, create) => {
  let rt: Realtime;
  let keys: Keys;

  beforeEach(() => {
    rt = create();
    opened.push(rt);
    keys = createKeys(uniqueName('rt'));
  });

  describe('streams', () => {
    it('delivers each entry once to the group, and acknowledged entries leave the backlog', async () => {
      const stream = keys.stream(0);
      await rt.ensureGroup(stream, 'g');
      await rt.ensureGroup(stream, 'g'); // idempotent
      const a = await rt.enqueue(stream, 'a', 100);
      const b = await rt.enqueue(stream, 'b', 100);
      expect(a).not.toBeNull();
      expect(b).not.toBeNull();
      const reader = rt.openReader(stream, 'g');
      const first = await reader.read('c1', 10, 100);
      expect(first.map((e) => e.payload)).toEqual(['a', 'b']);
      expect(await reader.read('c1', 10, 50)).toEqual([]);
      expect(await rt.streamLength(stream)).toBe(2);
      await rt.ackEntries(stream, 'g', first.map((e) => e.id));
      expect(await rt.streamLength(stream)).toBe(0);
      await reader.close();
    });

    it('refuses to enqueue beyond the backlog limit', async () => {
      const stream = keys.stream(1);
      expect(await rt.enqueue(stream, 'a', 2)).not.toBeNull();
      expect(await rt.enqueue(stream, 'b', 2)).not.toBeNull();
      expect(await rt.enqueue(stream, 'c', 2)).toBeNull();
      expect(await rt.streamLength(stream)).toBe(2);
    });

    it('wakes a blocked reader when an entry arrives', async () => {
      const stream = keys.stream(2);
      await rt.ensureGroup(stream, 'g');
      const reader = rt.openReader(stream, 'g');
      const pending = reader.read('c1', 10, 5000);
      // The sleep is the thing under test: the reader must be blocked (nothing to read) before
      // the entry arrives, and no state of the reader shows that it is.
      await new Promise((resolve) => setTimeout(resolve, 50));
      await rt.enqueue(stream, 'late', 100);
      const started = Date.now();
      const entries = await pending;
      expect(entries.map((e) => e.payload)).toEqual(['late']);
      expect(Date.now() - started).toBeLessThan(4000);
      await reader.close();
    });

    it("gives a consumer back its own unacknowledged entries, not others'", async () => {
      const stream = keys.stream(4);
      await rt.ensureGroup(stream, 'g');
      await rt.enqueue(stream, 'mine', 100);
      await rt.enqueue(stream, 'theirs', 100);
      const reader = rt.openReader(stream, 'g');
      expect((await reader.read('me', 1, 100)).map((e) => e.payload)).toEqual(['mine']);
      expect((await reader.read('other', 1, 100)).map((e) => e.payload)).toEqual(['theirs']);
      const own = await reader.readOwnPending('me', 10);
      expect(own.map((e) => e.payload)).toEqual(['mine']);
      await rt.ackEntries(stream, 'g', own.map((e) => e.id));
      expect(await reader.readOwnPending('me', 10)).toEqual([]);
      await reader.close();
    });

    it('lets another consumer claim entries left unacknowledged', async () => {
      const stream = keys.stream(3);
      await rt.ensureGroup(stream, 'g');
      await rt.enqueue(stream, 'x', 100);
      const reader = rt.openReader(stream, 'g');
      expect(await reader.read('dead', 10, 100)).toHaveLength(1);
      expect(await rt.claimStale(stream, 'g', 'alive', 60_000, 10)).toEqual([]);
      // Claimable once idle for 10 ms.
      const claimed = await eventually(async () => {
        const entries = await rt.claimStale(stream, 'g', 'alive', 10, 10);
        expect(entries.map((e) => e.payload)).toEqual(['x']);
        return entries;
      }, 5_000, 5);
      await rt.ackEntries(stream, 'g', claimed.map((e) => e.id));
      expect(await rt.streamLength(stream)).toBe(0);
      await reader.close();
    });
  });

  describe('applyAggregate', () => {
    it('runs onFirst only when a counter field was 0 before (exact distinct counts)', async () => {
      const site = keys.site('s2');
      const buffer = keys.analyticsBuffer('s2');
      const pair = (user: string, by: number): AggregateOp => ({
        op: 'count',
        key: `${site}:pu:p1`,
        field: user,
        by,
        durable: { buffer, name: `pu:p1|${user}` },
        onFirst: [{ op: 'count', key: `${site}:p:p1`, field: 'users', by: 1, durable: { buffer, name: 'p:p1|users' } }],
      });
      let id = 0;
      const apply = (ops: AggregateOp[]) => rt.applyAggregate({ dedupeTtlSeconds: 60, dedupeKeys: [keys.dedupe('s2', String(id++))], ops, packed: [] });
      await apply([pair('u1', 3), pair('u2', 1)]);
      await apply([pair('u1', 1)]);
      expect(await rt.hgetall(`${site}:pu:p1`)).toEqual({ u1: 4, u2: 1 });
      expect(await rt.hget(`${site}:p:p1`, 'users')).toBe(2);
      const taken = await rt.takeBatch(buffer, 0);
      expect(Object.fromEntries(taken!.fields.map((f, i) => [f, taken!.deltas[i]]))).toEqual({ 'pu:p1|u1': 4, 'pu:p1|u2': 1, 'p:p1|users': 2 });
    });

    it('trims sorted sets by score and sets expiries', async () => {
      const site = keys.site('s3');
      await rt.applyAggregate({
        dedupeTtlSeconds: 60,
        dedupeKeys: [keys.dedupe('s3', 'e1')],
        packed: [],
        ops: [
          { op: 'zmax', key: `${site}:live`, member: 'v1', score: 1000 },
          { op: 'zmax', key: `${site}:live`, member: 'v2', score: 2000 },
          { op: 'zremrangebyscore', key: `${site}:live`, max: 1000 },
          { op: 'expire', key: `${site}:live`, seconds: 1 },
        ],
      });
      expect(await rt.zcount(`${site}:live`, 0, 10_000)).toBe(1);
      await eventually(async () => expect(await rt.zcount(`${site}:live`, 0, 10_000)).toBe(0), 5_000, 20);
    });

    it('runs summed ops only when every event is new, else names the duplicates and writes nothing', async () => {
      const site = keys.site('a1');
      const buffer = keys.rollupBuffer('a1');
      // The count's twin goes through the pending hash, the ranking's (and a second 't|pv') packed.
      const ops: AggregateOp[] = [
        { op: 'count', key: `${site}:t`, field: 'pv', by: 3, durable: { buffer, name: 't|pv' } },
        { op: 'zincrby', key: `${site}:r`, member: '/home', by: 2 },
      ];
      const packed = [{ buffer, names: ['r|/home', 't|pv'], deltas: [2, 10] }];
      const seen = (id: string) => keys.dedupe('a1', id);
      const apply = (dedupeKeys: string[]) => rt.applyAggregate({ dedupeTtlSeconds: 60, dedupeKeys, ops, packed });
      expect(await apply([seen('1'), seen('2')])).toEqual([]);
      // 2 was counted; 3 repeats inside the batch: both named, nothing applied.
      expect(await apply([seen('2'), seen('3'), seen('3')])).toEqual([0, 2]);
      expect(await rt.hget(`${site}:t`, 'pv')).toBe(3);
      expect(await apply([seen('3')])).toEqual([]);
      expect(await rt.hget(`${site}:t`, 'pv')).toBe(6);
      expect(await rt.zrevrangeWithScores(`${site}:r`, 0, -1)).toEqual([{ member: '/home', score: 4 }]);
      // The hash's and the packed items' deltas, summed per name; packed ones stay out of readBuffered.
      expect((await rt.readBuffered(buffer, 't|pv')).pending).toBe(6);
      const taken = await rt.takeBatch(buffer, 0);
      const asObject = (batch: typeof taken) => Object.fromEntries(batch!.fields.map((f, i) => [f, batch!.deltas[i]]));
      expect(asObject(taken)).toEqual({ 't|pv': 26, 'r|/home': 4 });
      // Packed deltas that arrive while a batch is in flight wait for the next one; a take before
      // the finish names the batch in flight again, unchanged.
      expect(await apply([seen('4')])).toEqual([]);
      expect(await rt.takeBatch(buffer, 0)).toEqual(taken);
      await rt.finishBatch(buffer, taken!.seq);
      const next = await rt.takeBatch(buffer, 0);
      expect(next!.seq).toBe(taken!.seq + 1);
      expect(asObject(next)).toEqual({ 't|pv': 13, 'r|/home': 2 });
      await rt.finishBatch(buffer, next!.seq);
      expect(await rt.takeBatch(buffer, 0)).toBeNull();
    });

    it('takes a buffer that holds only packed deltas', async () => {
      const buffer = keys.rollupBuffer('a5');
      const packed = [{ buffer, names: ['t|pv'], deltas: [5] }];
      await rt.applyAggregate({ dedupeTtlSeconds: 60, dedupeKeys: [keys.dedupe('a5', '1')], ops: [], packed });
      await rt.applyAggregate({ dedupeTtlSeconds: 60, dedupeKeys: [keys.dedupe('a5', '2')], ops: [], packed });
      const taken = await rt.takeBatch(buffer, 7);
      expect(taken).toEqual({ seq: 8, fields: ['t|pv'], deltas: [10], more: false });
      await rt.finishBatch(buffer, 8);
      expect(await rt.takeBatch(buffer, 0)).toBeNull();
    });

    it('takes packed deltas up to a size bound, oldest first and at least one item; the rest waits', async () => {
      const buffer = keys.rollupBuffer('a6');
      const item = (i: number) => ({ buffer, names: [`r|${i}`, 't|pv'], deltas: [i, 1] });
      const size = JSON.stringify([item(1).names, item(1).deltas]).length;
      for (let i = 1; i <= 5; i++) {
        await rt.applyAggregate({ dedupeTtlSeconds: 60, dedupeKeys: [keys.dedupe('a6', String(i))], ops: [], packed: [item(i)] });
      }
      await rt.addDeltas(buffer, ['t|se'], [7]);
      const asObject = (batch: Awaited<ReturnType<Realtime['takeBatch']>>) =>
        Object.fromEntries(batch!.fields.map((f, i) => [f, batch!.deltas[i]]));
      // Two items fit (a third would pass the bound by one byte); the pending hash goes whole.
      const first = await rt.takeBatch(buffer, 0, 3 * size - 1);
      expect(first).toMatchObject({ seq: 1, more: true });
      expect(asObject(first)).toEqual({ 'r|1': 1, 'r|2': 2, 't|pv': 2, 't|se': 7 });
      // Not finished: the same batch again, still telling that it was cut.
      expect(await rt.takeBatch(buffer, 0, 3 * size - 1)).toEqual(first);
      await rt.finishBatch(buffer, 1);
      // A bound smaller than one item still takes one.
      const second = await rt.takeBatch(buffer, 0, 1);
      expect(second).toMatchObject({ seq: 2, more: true });
      expect(asObject(second)).toEqual({ 'r|3': 3, 't|pv': 1 });
      await rt.finishBatch(buffer, 2);
      // The rest fits exactly.
      const third = await rt.takeBatch(buffer, 0, 2 * size);
      expect(third).toMatchObject({ seq: 3, more: false });
      expect(asObject(third)).toEqual({ 'r|4': 4, 'r|5': 5, 't|pv': 2 });
      await rt.finishBatch(buffer, 3);
      expect(await rt.takeBatch(buffer, 0, 1)).toBeNull();
    });

    it('marks a HyperLogLog dirty only when it changed, keeps the latest live time, and runs sessions', async () => {
      const site = keys.site('a2');
      const uniques = keys.uniquesBuffer('a2');
      const rollups = keys.rollupBuffer('a2');
      const totals = (n: number) => ({ key: `${site}:t:${n}`, name: `t:${n}` });
      let id = 0;
      const apply = (ops: AggregateOp[]) => rt.applyAggregate({ dedupeTtlSeconds: 60, dedupeKeys: [keys.dedupe('a2', String(id++))], ops, packed: [] });
      await apply([
        { op: 'pfadd', key: `${site}:h`, members: ['a', 'b'], dirty: { buffer: uniques, name: 'h' } },
        { op: 'zmax', key: `${site}:live`, member: 'a', score: 500 },
      ]);
      await apply([
        { op: 'pfadd', key: `${site}:h`, members: ['a'], dirty: { buffer: uniques, name: 'h' } },
        { op: 'zmax', key: `${site}:live`, member: 'a', score: 100 },
      ]);
      expect(await rt.pfcount([`${site}:h`])).toBe(2);
      expect((await rt.readBuffered(uniques, 'h')).pending).toBe(1);
      expect(await rt.zcount(`${site}:live`, 500, 500)).toBe(1);
      const minute = 60_000;
      const session = (views: [number, number][]): AggregateOp => ({
        op: 'session',
        key: `${site}:vs:ann`,
        buffer: rollups,
        gapMs: 30 * minute,
        ttlSeconds: 600,
        views: views.map(([at, bucket]) => ({ at, totals: [totals(bucket)] })),
      });
      // First view: a session and a bounce; the second, 10 minutes later (next bucket): no bounce any more.
      await apply([session([[0, 1], [10 * minute, 2]])]);
      // A third view of the same session changes nothing; one 31 minutes after the last starts a new session.
      await apply([session([[20 * minute, 2], [51 * minute, 3]])]);
      expect(await rt.hgetall(`${site}:t:1`)).toEqual({ se: 1, bo: 1 });
      expect(await rt.hgetall(`${site}:t:2`)).toEqual({ bo: -1 });
      expect(await rt.hgetall(`${site}:t:3`)).toEqual({ se: 1, bo: 1 });
      expect((await rt.readBuffered(rollups, 't:2|bo')).pending).toBe(-1);
    });
  });

  describe('stats reads and restore', () => {
    it('ranks the sum of several sorted sets', async () => {
      const site = keys.site('a3');
      await rt.applyAggregate({
        dedupeTtlSeconds: 60,
        dedupeKeys: [keys.dedupe('a3', 'x')],
        packed: [],
        ops: [
          { op: 'zincrby', key: `${site}:r1`, member: 'a', by: 5 },
          { op: 'zincrby', key: `${site}:r1`, member: 'b', by: 1 },
          { op: 'zincrby', key: `${site}:r2`, member: 'b', by: 7 },
          { op: 'zincrby', key: `${site}:r2`, member: 'c', by: 2 },
        ],
      });
      const scratch = `${site}:tmp`;
      expect(await rt.rankUnion([`${site}:r1`, `${site}:r2`], 2, scratch)).toEqual([
        { member: 'b', score: 8 },
        { member: 'a', score: 5 },
      ]);
      expect(await rt.rankUnion([`${site}:r1`, `${site}:r2`], 0, scratch)).toHaveLength(3);
      expect(await rt.rankUnion([`${site}:r2`], 1, scratch)).toEqual([{ member: 'b', score: 7 }]);
      expect(await rt.rankUnion([], 1, scratch)).toEqual([]);
    });

    it('dumps HyperLogLogs and restores hashes, sorted sets and HyperLogLogs whole', async () => {
      const site = keys.site('a4');
      await rt.applyAggregate({
        dedupeTtlSeconds: 60,
        dedupeKeys: [keys.dedupe('a4', 'x')],
        packed: [],
        ops: [{ op: 'pfadd', key: `${site}:h`, members: ['u1', 'u2', 'u3'] }],
      });
      const [dump, missing] = await rt.dumpUniques([`${site}:h`, `${site}:nothing`]);
      expect(missing).toBeNull();
      await rt.restore([
        { kind: 'unique', key: `${site}:h2`, dump: dump!, ttlSeconds: 100 },
        { kind: 'hash', key: `${site}:t`, values: { pv: 4, ev: 2 } },
        { kind: 'zset', key: `${site}:r`, values: { '/a': 3, '/b': 9 }, ttlSeconds: 100 },
      ]);
      expect(await rt.pfcount([`${site}:h2`])).toBe(3);
      expect(await rt.hgetall(`${site}:t`)).toEqual({ pv: 4, ev: 2 });
      expect(await rt.zrevrangeWithScores(`${site}:r`, 0, -1)).toEqual([
        { member: '/b', score: 9 },
        { member: '/a', score: 3 },
      ]);
      await rt.restore([{ kind: 'hash', key: `${site}:t`, values: { pv: 1 } }]);
      expect(await rt.hgetall(`${site}:t`)).toEqual({ pv: 1 });
    });

    it('gets or sets a shared value once', async () => {
      const key = keys.salt('2024-01-01');
      expect(await rt.getOrSet(key, 'first', 60)).toBe('first');
      expect(await rt.getOrSet(key, 'second', 60)).toBe('first');
    });
  });

  describe('counter buffers', () => {
    it('takes pending deltas atomically, replays a batch left in flight, and numbers batches past minSeq', async () => {
      const buffer = keys.inboxBuffer('s4', 0);
      expect(await rt.takeBatch(buffer, 0)).toBeNull();
      await rt.addDeltas(buffer, ['u1', 'u2'], [3, -1]);
      await rt.addDeltas(buffer, ['u1'], [2]);
      const first = await rt.takeBatch(buffer, 41);
      expect(first).toEqual({ seq: 42, fields: expect.arrayContaining(['u1', 'u2']), deltas: expect.any(Array), more: false });
      expect(Object.fromEntries(first!.fields.map((f, i) => [f, first!.deltas[i]]))).toEqual({ u1: 5, u2: -1 });
      // Deltas arriving while a batch is in flight wait for the next batch.
      await rt.addDeltas(buffer, ['u1'], [7]);
      expect(await rt.readBuffered(buffer, 'u1')).toEqual({ pending: 7, inflight: 5, inflightSeq: 42, doneSeq: 0 });
      // Not finished (a crash): the same batch comes back.
      expect(await rt.takeBatch(buffer, 0)).toEqual(first);
      await rt.finishBatch(buffer, 42);
      expect(await rt.readBuffered(buffer, 'u1')).toEqual({ pending: 7, inflight: 0, inflightSeq: 0, doneSeq: 42 });
      const second = await rt.takeBatch(buffer, 0);
      expect(second).toEqual({ seq: 43, fields: ['u1'], deltas: [7], more: false });
      await rt.finishBatch(buffer, 42); // stale finish: ignored
      expect((await rt.readBuffered(buffer, 'u1')).inflightSeq).toBe(43);
    });

    it('takes a large batch whole (Redis pages through it)', async () => {
      const buffer = keys.inboxBuffer('s6', 1);
      const fields = Array.from({ length: 5000 }, (_, i) => `f${i}`);
      await rt.addDeltas(buffer, fields, fields.map((_, i) => i + 1));
      const taken = await rt.takeBatch(buffer, 0);
      expect(taken!.fields).toHaveLength(5000);
      const byField = new Map(taken!.fields.map((f, i) => [f, taken!.deltas[i]]));
      expect(byField.get('f0')).toBe(1);
      expect(byField.get('f4999')).toBe(5000);
      expect(taken!.deltas.reduce((a, b) => a + b, 0)).toBe((5000 * 5001) / 2);
    });

    it('restores hashes with hset', async () => {
      const key = `${keys.site('s5')}:u:9`;
      await rt.hset(key, { clicks: 12, pageviews: 3 });
      expect(await rt.hgetall(key)).toEqual({ clicks: 12, pageviews: 3 });
      expect(await rt.hget(key, 'missing')).toBe(0);
    });
  });

  describe('inbox counters', () => {
    const m1 = 'aaaaaaaaaaaaaaaa';
    const m2 = 'bbbbbbbbbbbbbbbb';

    it('adds a change\'s delta only while its intent is there, bumping a version that only grows', async () => {
      const inbox = keys.inbox('site', 0);
      await rt.beginInboxChange(inbox, m1, ['u1', 'u:2'], 1_000);
      const busy = await rt.readInboxState(inbox, 'u1');
      expect(busy).toMatchObject({ intents: 1, oldestIntentMs: 1_000, version: 0, pending: 0 });
      expect(await rt.listTouched(inbox, 1_000, 10)).toEqual(expect.arrayContaining(['u1', 'u:2']));
      const done = await rt.finishInboxChange(inbox, m1, [{ userId: 'u1', delta: 2 }, { userId: 'u:2', delta: 0 }], 1_500);
      expect(done[0]).toMatchObject({ applied: true, version: 1_500_000, pending: 2, inflight: 0 });
      expect(done[1]).toMatchObject({ applied: true, version: 0, pending: 0 });
      await rt.beginInboxChange(inbox, m2, ['u1'], 2_000);
      const next = await rt.finishInboxChange(inbox, m2, [{ userId: 'u1', delta: -1 }], 2_000);
      expect(next[0]).toMatchObject({ applied: true, version: 1_500_001, pending: 1 });
      // Finishing twice (or without an intent) adds nothing and marks the user for another check.
      const again = await rt.finishInboxChange(inbox, m2, [{ userId: 'u1', delta: -1 }], 9_000);
      expect(again[0]).toMatchObject({ applied: false, version: 1_500_001, pending: 1 });
      expect(await rt.listTouched(inbox, 8_999, 10)).not.toContain('u1');
      expect(await rt.listTouched(inbox, 9_000, 10)).toContain('u1');
      expect(await rt.readInboxState(inbox, 'u1')).toMatchObject({ intents: 0, oldestIntentMs: 0 });
    });

    it('shows a batch in flight with its sequence numbers, like readBuffered', async () => {
      const inbox = keys.inbox('site', 1);
      await rt.beginInboxChange(inbox, m1, ['u'], 1);
      await rt.finishInboxChange(inbox, m1, [{ userId: 'u', delta: 3 }], 1);
      const batch = await rt.takeBatch(inbox.buffer, 0);
      expect(batch?.seq).toBe(1);
      expect(await rt.readInboxState(inbox, 'u')).toMatchObject({ pending: 0, inflight: 3, inflightSeq: 1, doneSeq: 0 });
      await rt.beginInboxChange(inbox, m2, ['u'], 2);
      const during = await rt.finishInboxChange(inbox, m2, [{ userId: 'u', delta: 1 }], 2);
      expect(during[0]).toMatchObject({ pending: 1, inflight: 3, inflightSeq: 1, doneSeq: 0 });
      await rt.finishBatch(inbox.buffer, 1);
      expect(await rt.readInboxState(inbox, 'u')).toMatchObject({ pending: 1, inflight: 0, inflightSeq: 0, doneSeq: 1 });
    });

    it('drops only stale intents of the user, and a late finish of a dropped one adds nothing', async () => {
      const inbox = keys.inbox('site', 2);
      await rt.beginInboxChange(inbox, m1, ['u', 'v'], 1_000);
      await rt.beginInboxChange(inbox, m2, ['u'], 5_000);
      expect(await rt.dropStaleIntents(inbox, 'u', 2_000)).toBe(1);
      expect(await rt.readInboxState(inbox, 'u')).toMatchObject({ intents: 1, oldestIntentMs: 5_000 });
      expect(await rt.readInboxState(inbox, 'v')).toMatchObject({ intents: 1 });
      const late = await rt.finishInboxChange(inbox, m1, [{ userId: 'u', delta: 1 }], 6_000);
      expect(late[0]).toMatchObject({ applied: false, pending: 0 });
    });

    it('repairs only at the version the drift was measured at', async () => {
      const inbox = keys.inbox('site', 3);
      expect(await rt.repairInboxCount(inbox, 'u', 2, 0, 7_000)).toBe(true);
      expect(await rt.readInboxState(inbox, 'u')).toMatchObject({ pending: 2, version: 7_000_000 });
      expect(await rt.repairInboxCount(inbox, 'u', 2, 0, 7_001)).toBe(false);
      expect(await rt.repairInboxCount(inbox, 'u', -1, 7_000_000, 7_002)).toBe(true);
      expect(await rt.readInboxState(inbox, 'u')).toMatchObject({ pending: 1, version: 7_000_001 });
    });

    it('keeps a total composed from a durable count, moved by deltas, unchanged by a flush, dropped by a repair', async () => {
      const inbox = keys.inbox('site', 5);
      expect(await rt.readInboxTotal(inbox, 'u')).toEqual({ version: 0, total: null });
      expect(await rt.readInboxState(inbox, 'u')).toMatchObject({ total: null });
      await rt.beginInboxChange(inbox, m1, ['u'], 1);
      const first = await rt.finishInboxChange(inbox, m1, [{ userId: 'u', delta: 2 }], 1);
      expect(first[0]).toMatchObject({ pending: 2, total: null });
      // PostgreSQL showed 4 as of batch 0: 4 + 2 pending.
      expect(await rt.readInboxTotal(inbox, 'u', { durable: 4, lastSeq: 0 })).toEqual({ version: 1_000, total: 6 });
      expect(await rt.takeBatch(inbox.buffer, 0)).toMatchObject({ seq: 1 });
      await rt.beginInboxChange(inbox, m2, ['u'], 2);
      const second = await rt.finishInboxChange(inbox, m2, [{ userId: 'u', delta: -1 }], 2);
      expect(second[0]).toMatchObject({ pending: -1, inflight: 2, total: 5 });
      await rt.finishBatch(inbox.buffer, 1);
      expect(await rt.readInboxState(inbox, 'u')).toMatchObject({ total: 5, doneSeq: 1 });
      expect(await rt.repairInboxCount(inbox, 'u', 1, 1_001, 3)).toBe(true);
      expect(await rt.readInboxTotal(inbox, 'u')).toEqual({ version: 1_002, total: null });
      // A snapshot older than the last finished batch may miss it: nothing is composed.
      expect(await rt.readInboxTotal(inbox, 'u', { durable: 4, lastSeq: 0 })).toEqual({ version: 1_002, total: null });
      // As of batch 1 PostgreSQL held 6: 6 + 0 pending (the repair's +1 and -1 left 0).
      expect(await rt.readInboxTotal(inbox, 'u', { durable: 6, lastSeq: 1 })).toEqual({ version: 1_002, total: 6 });
    });

    it('composes a missing total at finish from the durable count the statement read, counting a batch it did not hold', async () => {
      const inbox = keys.inbox('site', 6);
      await rt.beginInboxChange(inbox, m1, ['u'], 1);
      await rt.finishInboxChange(inbox, m1, [{ userId: 'u', delta: 3 }], 1);
      await rt.takeBatch(inbox.buffer, 0);
      await rt.beginInboxChange(inbox, m2, ['u'], 2);
      // The statement read 10 as of batch 0: batch 1 (3) is in flight, not in PostgreSQL.
      const done = await rt.finishInboxChange(inbox, m2, [{ userId: 'u', delta: 1, durable: { durable: 10, lastSeq: 0 } }], 2);
      expect(done[0]).toMatchObject({ pending: 1, inflight: 3, total: 14 });
    });

    it('publishes the new version of a changed user on the channel given', async () => {
      const inbox = keys.inbox('site', 7);
      const channel = keys.channel('contract-inbox');
      const heard: string[] = [];
      const unsubscribe = await rt.subscribe(channel, (message) => heard.push(message));
      await rt.beginInboxChange(inbox, m1, ['u', 'v'], 5);
      await rt.finishInboxChange(inbox, m1, [{ userId: 'u', delta: 1, channel }, { userId: 'v', delta: 0, channel }], 5);
      await eventually(async () => expect(heard).toEqual(['5000']), 5_000, 10);
      await unsubscribe();
      expect(heard).toEqual(['5000']);
    });

    it('untouches users unless they changed after the check began', async () => {
      const inbox = keys.inbox('site', 4);
      await rt.beginInboxChange(inbox, m1, ['a', 'b'], 100);
      await rt.beginInboxChange(inbox, m2, ['b'], 300);
      expect(await rt.listTouched(inbox, 1_000, 1)).toEqual(['a']);
      await rt.untouch(inbox, ['a', 'b'], 200);
      expect(await rt.listTouched(inbox, 1_000, 10)).toEqual(['b']);
    });
  });

  describe('coordination', () => {
    it('grants a lock to one holder until it is released', async () => {
      const lock = keys.lock('x');
      expect(await rt.tryLock(lock, 'a', 10_000)).toBe(true);
      expect(await rt.tryLock(lock, 'b', 10_000)).toBe(false);
      await rt.unlock(lock, 'b'); // not the holder: no effect
      expect(await rt.tryLock(lock, 'b', 10_000)).toBe(false);
      await rt.unlock(lock, 'a');
      expect(await rt.tryLock(lock, 'b', 10_000)).toBe(true);
    });

    it('delivers published messages to subscribers until they unsubscribe', async () => {
      const channel = keys.channel('test');
      const got: string[] = [];
      const unsubscribe = await rt.subscribe(channel, (m) => got.push(m));
      await rt.publish(channel, 'one');
      await eventually(async () => expect(got).toEqual(['one']), 5_000, 10);
      await unsubscribe();
      await rt.publish(channel, 'two');
      // The sleep is the thing under test: nothing arrives in a window after unsubscribing (an
      // absence cannot be polled for).
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(got).toEqual(['one']);
    });
  });
});
