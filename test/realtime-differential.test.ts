import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { AggregateOp } from '../src/storage/analytics-realtime.js';
import { HyperLogLog } from '../src/storage/hyperloglog.js';
import { countName } from '../src/storage/inbox-count-names.js';
import { type BufferKeys, createKeys, type Keys } from '../src/storage/keys.js';
import type { Realtime } from '../src/storage/realtime.js';
import type { AssignedSession, SessionFields, SessionVisit } from '../src/storage/sessions.js';
import { uniqueName } from './helpers.js';
import { realtimeLayers } from './realtime-layers.js';

// Two implementations, one behaviour: the same random sequence of operations runs against Redis,
// a Redis Cluster and the embedded default, and every answer is written down; the transcripts
// must be equal. One property per interface. What an interface leaves open is left out of the
// comparison and said where: entry ids (each store numbers its own), and how a backlog is cut
// into batches when a size bound applies (takes here are unbounded).

const SEED = 20261204;
const RUNS = 60;

const layers = realtimeLayers();

/** Runs `script` against every layer (fresh keys each) and expects the same transcript from all. */
async function sameEverywhere(script: (rt: Realtime, keys: Keys, note: (what: unknown) => void) => Promise<void>): Promise<void> {
  const transcripts: [string, unknown[]][] = [];
  for (const [name, open] of layers) {
    const keys = createKeys(uniqueName('diff'));
    const rt = await open(keys);
    const transcript: unknown[] = [];
    await script(rt, keys, (what) => transcript.push(what));
    transcripts.push([name, transcript]);
  }
  const [first, ...rest] = transcripts;
  for (const [name, transcript] of rest) expect({ [name]: transcript }).toEqual({ [name]: first?.[1] });
}

/** An answer or the error it became: both are part of the behaviour. */
async function outcome<T>(fn: () => Promise<T>): Promise<T | { error: string }> {
  try {
    return await fn();
  } catch (err) {
    return { error: (err as Error).message.includes('whole number') ? 'not a whole number' : 'failed' };
  }
}

const sortedDeltas = (batch: { seq: number; fields: string[]; deltas: number[]; more: boolean } | null) =>
  batch && {
    seq: batch.seq,
    more: batch.more,
    deltas: batch.fields.map((f, i) => [f, batch.deltas[i]] as const).sort(([a], [b]) => (a < b ? -1 : 1)),
  };

const name = fc.constantFrom('a', 'b', 'é', '😀', '～', 'a b', 'x:y', '%41');
const delta = fc.integer({ min: -3, max: 5 });

describe('differential: Redis, Redis Cluster and embedded give the same answers', () => {
  it('ingest queue', async () => {
    type Op =
      | { op: 'enqueue'; stream: number; max: number }
      | { op: 'read' | 'own'; stream: number; consumer: number; count: number }
      | { op: 'ack'; stream: number; consumer: number; which: number }
      | { op: 'length'; stream: number };
    const stream = fc.integer({ min: 0, max: 1 });
    const consumer = fc.integer({ min: 0, max: 1 });
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.record({ op: fc.constant('enqueue' as const), stream, max: fc.integer({ min: 1, max: 4 }) }),
      fc.record({ op: fc.constantFrom('read' as const, 'own' as const), stream, consumer, count: fc.integer({ min: 1, max: 3 }) }),
      fc.record({ op: fc.constant('ack' as const), stream, consumer, which: fc.nat(5) }),
      fc.record({ op: fc.constant('length' as const), stream }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 25 }), async (ops) => {
        await sameEverywhere(async (rt, keys, note) => {
          const consumers = await Promise.all(
            [0, 1].flatMap((s) => [0, 1].map((c) => rt.queue.openConsumer(keys.stream(s), 'g', `c${c}`))),
          );
          const of = (s: number, c: number) => consumers[s * 2 + c] as (typeof consumers)[number];
          // Payloads are unique, so they name entries where the stores' ids differ.
          const held = new Map<string, string>();
          let n = 0;
          for (const o of ops) {
            if (o.op === 'enqueue') {
              const payload = `p${n++}`;
              const id = await rt.queue.enqueue(keys.stream(o.stream), payload, o.max);
              note(['enqueue', payload, id !== null]);
              if (id) held.set(payload, id);
            } else if (o.op === 'read' || o.op === 'own') {
              const c = of(o.stream, o.consumer);
              const got = o.op === 'read' ? await c.read(o.count, 0) : await c.readOwnPending(o.count);
              note([o.op, got.map((e) => e.payload)]);
            } else if (o.op === 'ack') {
              const c = of(o.stream, o.consumer);
              const own = await c.readOwnPending(10);
              const entry = own[o.which % Math.max(1, own.length)];
              if (entry) await c.ack([entry.id]);
              note(['ack', entry?.payload ?? null]);
            } else {
              note(['length', await rt.queue.length(keys.stream(o.stream))]);
            }
          }
          for (const [i, c] of consumers.entries()) note(['final', i, (await c.readOwnPending(100)).map((e) => e.payload)]);
          for (const s of [0, 1]) note(['final length', s, await rt.queue.length(keys.stream(s))]);
          for (const c of consumers) await c.close();
        });
      }),
      { seed: SEED, numRuns: RUNS },
    );
  }, 120_000);

  it('analytics step, hot figures and the buffers they fill', async () => {
    type Read =
      | { read: 'counters'; suffix: string }
      | { read: 'rank'; suffixes: string[]; limit: number }
      | { read: 'uniques'; suffixes: string[]; sketches?: string[][] }
      | { read: 'copy'; suffixes: string[] }
      | { read: 'live'; since: number }
      | { read: 'take'; buffer: number; minSeq: number }
      | { read: 'finish'; buffer: number };
    const site = 's';
    const counterSuffix = fc.constantFrom('u:1', 'p:1', 't:m:0', 't:m:60');
    const rankSuffix = fc.constantFrom('r:m:0:page:pv', 'r:m:60:page:pv');
    const uniqueSuffix = fc.constantFrom('h:m:0', 'h:m:60', 'h:d:0');
    const buffers = (keys: Keys) => [keys.analyticsBuffer(site), keys.rollupBuffer(site), keys.uniquesBuffer(site)];
    // Ops are built per layer from a plain description: keys differ by prefix only.
    type OpSpec =
      | { op: 'count'; suffix: string; field: string; by: number; durable: boolean; onFirst: boolean }
      | { op: 'zincrby'; suffix: string; member: string; by: number }
      | { op: 'pfadd'; suffix: string; members: string[]; dirty: boolean }
      | { op: 'zmax'; member: string; score: number }
      | { op: 'zrem'; max: number }
      | { op: 'session'; visitor: string; views: { at: number; bucket: number }[] };
    const opSpec: fc.Arbitrary<OpSpec> = fc.oneof(
      fc.record({
        op: fc.constant('count' as const),
        suffix: counterSuffix,
        field: name,
        // Now and then a fraction: both must refuse the whole step.
        by: fc.oneof({ weight: 9, arbitrary: delta }, { weight: 1, arbitrary: fc.constant(1.5) }),
        durable: fc.boolean(),
        onFirst: fc.boolean(),
      }),
      // Small, often equal scores: ties rank by the members' bytes, which differ from UTF-16 order.
      fc.record({ op: fc.constant('zincrby' as const), suffix: rankSuffix, member: name, by: fc.constantFrom(0, 1, 1, 1, 2) }),
      fc.record({
        op: fc.constant('pfadd' as const),
        suffix: uniqueSuffix,
        members: fc.array(fc.string({ maxLength: 6 }), { minLength: 1, maxLength: 40 }),
        dirty: fc.boolean(),
      }),
      fc.record({ op: fc.constant('zmax' as const), member: name, score: fc.integer({ min: 0, max: 10_000 }) }),
      fc.record({ op: fc.constant('zrem' as const), max: fc.integer({ min: 0, max: 10_000 }) }),
      fc.record({
        op: fc.constant('session' as const),
        visitor: fc.constantFrom('v1', 'v2'),
        // Views within the session gap of each other: a bounce taken back in the same step sums to 0.
        views: fc.array(fc.record({ at: fc.integer({ min: 0, max: 3_600_000 }), bucket: fc.constantFrom(0, 60) }), {
          minLength: 1,
          maxLength: 4,
        }),
      }),
    );
    const stepSpec = fc.record({
      events: fc.array(fc.constantFrom('e1', 'e2', 'e3', 'e4', 'e5', 'e6'), { maxLength: 3 }),
      ops: fc.array(opSpec, { maxLength: 6 }),
      packed: fc.array(fc.record({ buffer: fc.nat(2), names: fc.array(name, { minLength: 1, maxLength: 3 }), by: delta }), {
        maxLength: 2,
      }),
    });
    const readSpec: fc.Arbitrary<Read> = fc.oneof(
      fc.record({ read: fc.constant('counters' as const), suffix: counterSuffix }),
      fc.record({ read: fc.constant('rank' as const), suffixes: fc.uniqueArray(rankSuffix, { maxLength: 2 }), limit: fc.nat(3) }),
      fc.record({ read: fc.constant('uniques' as const), suffixes: fc.uniqueArray(uniqueSuffix, { maxLength: 3 }) }),
      // With sketches sent along (PostgreSQL's copies of buckets the layer no longer holds).
      fc.record({
        read: fc.constant('uniques' as const),
        suffixes: fc.uniqueArray(uniqueSuffix, { maxLength: 3 }),
        sketches: fc.array(fc.array(fc.constantFrom('v1', 'v2', 'v3', 'v9'), { maxLength: 3 }), { minLength: 1, maxLength: 2 }),
      }),
      fc.record({ read: fc.constant('copy' as const), suffixes: fc.uniqueArray(uniqueSuffix, { maxLength: 3 }) }),
      fc.record({ read: fc.constant('live' as const), since: fc.integer({ min: 0, max: 10_000 }) }),
      fc.record({ read: fc.constant('take' as const), buffer: fc.nat(2), minSeq: fc.constantFrom(0, 0, 7) }),
      fc.record({ read: fc.constant('finish' as const), buffer: fc.nat(2) }),
    );
    const action = fc.oneof(
      stepSpec.map((step) => ({ step })),
      readSpec.map((read) => ({ read })),
    );

    await fc.assert(
      fc.asyncProperty(fc.array(action, { minLength: 1, maxLength: 20 }), async (actions) => {
        await sameEverywhere(async (rt, keys, note) => {
          const key = (suffix: string) => keys.siteKey(site, suffix);
          const all = buffers(keys);
          const [users, rollups, uniques] = all as [BufferKeys, BufferKeys, BufferKeys];
          const bufferOf = (i: number) => all[i] as BufferKeys;
          const inFlight = new Map<number, number>();
          const build = (s: OpSpec): AggregateOp => {
            switch (s.op) {
              case 'count':
                return {
                  op: 'count',
                  key: key(s.suffix),
                  field: s.field,
                  by: s.by,
                  ...(s.durable ? { durable: { buffer: users, name: `${s.suffix}|${s.field}` } } : {}),
                  ...(s.onFirst
                    ? { onFirst: [{ op: 'count', key: key('p:1'), field: 'users', by: 1, durable: { buffer: users, name: 'p:1|users' } }] }
                    : {}),
                } as AggregateOp;
              case 'zincrby':
                return { op: 'zincrby', key: key(s.suffix), member: s.member, by: s.by };
              case 'pfadd':
                return {
                  op: 'pfadd',
                  key: key(s.suffix),
                  members: s.members,
                  ...(s.dirty ? { dirty: { buffer: uniques, name: s.suffix } } : {}),
                };
              case 'zmax':
                return { op: 'zmax', key: key('live'), member: s.member, score: s.score };
              case 'zrem':
                return { op: 'zremrangebyscore', key: key('live'), max: s.max };
              case 'session':
                return {
                  op: 'session',
                  key: key(`vs:${s.visitor}`),
                  buffer: rollups,
                  gapMs: 30 * 60_000,
                  ttlSeconds: 3600,
                  views: [...s.views]
                    .sort((a, b) => a.at - b.at)
                    .map((v) => ({ at: v.at, totals: [{ key: key(`t:m:${v.bucket}`), name: `t:m:${v.bucket}` }] })),
                };
            }
          };
          const everything: Read[] = [
            ...['u:1', 'p:1', 't:m:0', 't:m:60'].map((suffix) => ({ read: 'counters' as const, suffix })),
            { read: 'rank', suffixes: ['r:m:0:page:pv', 'r:m:60:page:pv'], limit: 0 },
            { read: 'rank', suffixes: ['r:m:0:page:pv'], limit: 2 },
            { read: 'uniques', suffixes: ['h:m:0', 'h:m:60', 'h:d:0'] },
            { read: 'copy', suffixes: ['h:m:0', 'h:m:60', 'h:d:0'] },
            { read: 'live', since: 0 },
            ...[0, 1, 2].flatMap((buffer) => [
              { read: 'finish' as const, buffer },
              { read: 'take' as const, buffer, minSeq: 0 },
            ]),
          ];
          // The actions, then every figure and buffer once more: no difference stays unseen.
          for (const a of [...actions, ...everything.map((read) => ({ read }))]) {
            if ('step' in a) {
              const { events, ops, packed } = a.step;
              const result = await outcome(() =>
                rt.analytics.apply({
                  dedupeTtlSeconds: 3600,
                  dedupeKeys: events.map((e) => keys.dedupe(site, e)),
                  ops: ops.map(build),
                  packed: packed.map((p) => ({ buffer: bufferOf(p.buffer), names: p.names, deltas: p.names.map(() => p.by) })),
                }),
              );
              note(['apply', result]);
              continue;
            }
            const r = a.read;
            switch (r.read) {
              case 'counters':
                note(['counters', r.suffix, await rt.analytics.counters(site, r.suffix)]);
                break;
              case 'rank':
                note(['rank', await rt.analytics.rank(site, r.suffixes, r.limit)]);
                break;
              case 'uniques':
                note([
                  'uniques',
                  await rt.analytics.countUniques(
                    site,
                    r.suffixes,
                    r.sketches?.map((members) => {
                      const hll = new HyperLogLog();
                      for (const m of members) hll.add(m);
                      return hll.toBytes();
                    }),
                  ),
                ]);
                break;
              case 'copy':
                note([
                  'copy',
                  (await rt.analytics.copyUniques(site, r.suffixes)).map(
                    (c) => c && { visitors: c.visitors, hll: c.hll.toString('base64') },
                  ),
                ]);
                break;
              case 'live':
                note(['live', await rt.analytics.liveSince(site, r.since)]);
                break;
              case 'take': {
                const batch = await rt.buffers.take(bufferOf(r.buffer), r.minSeq);
                if (batch) inFlight.set(r.buffer, batch.seq);
                note(['take', r.buffer, sortedDeltas(batch)]);
                break;
              }
              case 'finish': {
                const seq = inFlight.get(r.buffer);
                if (seq !== undefined) await rt.buffers.finish(bufferOf(r.buffer), seq);
                inFlight.delete(r.buffer);
                note(['finish', r.buffer, seq ?? null]);
                break;
              }
            }
          }
        });
      }),
      { seed: SEED, numRuns: RUNS },
    );
  }, 300_000);

  it('inbox counts', async () => {
    type Vector = [string, number][];
    type Op =
      | { op: 'begin'; change: number; users: string[] }
      | { op: 'finish'; change: number; changes: { user: string; deltas: Vector }[] }
      | { op: 'state' | 'counts'; user: string }
      | { op: 'keep'; user: string; counts: Vector; current: boolean }
      | { op: 'stale' | 'drop'; user: string; before: number }
      | { op: 'repair'; user: string; deltas: Vector; current: boolean }
      | { op: 'touched'; max: number; limit: number }
      | { op: 'untouch'; users: string[]; max: number }
      | { op: 'buffered' | 'take' | 'finishBatch' };
    const user = fc.constantFrom('u1', 'u2', 'ü', 'u:4', 'u"');
    const countNames = [
      countName('unread', '', ''),
      countName('unseen', 't', 'c'),
      countName('total', 'tü', ''),
      countName('unread', '', 'x:y'),
    ];
    const vector = fc.uniqueArray(fc.tuple(fc.constantFrom(...countNames), delta), { maxLength: 3, selector: ([n]) => n });
    const op: fc.Arbitrary<Op> = fc.oneof(
      {
        weight: 3,
        arbitrary: fc.record({
          op: fc.constant('begin' as const),
          change: fc.nat(3),
          users: fc.uniqueArray(user, { minLength: 1, maxLength: 3 }),
        }),
      },
      {
        weight: 3,
        arbitrary: fc.record({
          op: fc.constant('finish' as const),
          change: fc.nat(3),
          changes: fc.uniqueArray(fc.record({ user, deltas: vector }), { minLength: 1, maxLength: 3, selector: (c) => c.user }),
        }),
      },
      fc.record({ op: fc.constantFrom('state' as const, 'counts' as const), user }),
      fc.record({ op: fc.constant('keep' as const), user, counts: vector, current: fc.boolean() }),
      fc.record({ op: fc.constantFrom('stale' as const, 'drop' as const), user, before: fc.nat(40) }),
      fc.record({ op: fc.constant('repair' as const), user, deltas: vector, current: fc.boolean() }),
      fc.record({ op: fc.constant('touched' as const), max: fc.nat(40), limit: fc.integer({ min: 1, max: 4 }) }),
      fc.record({ op: fc.constant('untouch' as const), users: fc.uniqueArray(user, { maxLength: 3 }), max: fc.nat(40) }),
      fc.record({ op: fc.constantFrom('buffered' as const, 'take' as const, 'finishBatch' as const) }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 30 }), async (ops) => {
        await sameEverywhere(async (rt, keys, note) => {
          const inbox = keys.inbox('site', 0);
          const changeId = (n: number) => `change-${n}`.padEnd(16, '-');
          let clock = 0;
          let inFlight: number | null = null;
          const users = ['u1', 'u2', 'ü', 'u:4', 'u"'];
          const everything: Op[] = [
            ...users.flatMap((u) => [
              { op: 'state' as const, user: u },
              { op: 'counts' as const, user: u },
            ]),
            { op: 'stale', user: 'u1', before: 1_000 },
            { op: 'touched', max: 1_000, limit: 10 },
            { op: 'buffered' },
            { op: 'finishBatch' },
            { op: 'take' },
          ];
          // The operations, then every user's state once more: no difference stays unseen.
          for (const o of [...ops, ...everything]) {
            clock += 1;
            switch (o.op) {
              case 'begin':
                await rt.inbox.begin(inbox, changeId(o.change), o.users, clock);
                break;
              case 'finish': {
                const changes = o.changes.map((c) => ({ userId: c.user, deltas: new Map(c.deltas) }));
                note(['finish', await rt.inbox.finish(inbox, changeId(o.change), changes, clock)]);
                break;
              }
              case 'state':
                note(['state', await rt.inbox.readState(inbox, o.user)]);
                break;
              case 'counts':
                note(['counts', await rt.inbox.readCounts(inbox, o.user)]);
                break;
              case 'keep': {
                const { version } = await rt.inbox.readCounts(inbox, o.user);
                note(['keep', await rt.inbox.keepCounts(inbox, o.user, new Map(o.counts), o.current ? version : version + 3)]);
                break;
              }
              case 'stale':
                note(['stale', (await rt.inbox.staleUsers(inbox, o.before)).sort()]);
                break;
              case 'drop':
                note(['drop', await rt.inbox.dropStaleIntents(inbox, o.user, o.before)]);
                break;
              case 'repair': {
                const { version } = await rt.inbox.readState(inbox, o.user);
                note(['repair', await rt.inbox.repair(inbox, o.user, new Map(o.deltas), o.current ? version : version + 7, clock)]);
                break;
              }
              case 'touched':
                note(['touched', await rt.inbox.listTouched(inbox, o.max, o.limit)]);
                break;
              case 'untouch':
                await rt.inbox.untouch(inbox, o.users, o.max);
                break;
              case 'buffered':
                note(['buffered', (await rt.inbox.bufferedUsers(inbox)).sort()]);
                break;
              case 'take': {
                const batch = await rt.buffers.take(inbox.buffer, 0);
                inFlight = batch?.seq ?? inFlight;
                note(['take', sortedDeltas(batch)]);
                break;
              }
              case 'finishBatch':
                if (inFlight !== null) await rt.buffers.finish(inbox.buffer, inFlight);
                inFlight = null;
                break;
            }
          }
        });
      }),
      { seed: SEED, numRuns: RUNS },
    );
  }, 300_000);

  it('coordination', async () => {
    type Op = { op: 'lock' | 'unlock'; lock: number; token: number } | { op: 'share'; key: number; value: number };
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.record({ op: fc.constantFrom('lock' as const, 'unlock' as const), lock: fc.nat(1), token: fc.nat(1) }),
      fc.record({ op: fc.constant('share' as const), key: fc.nat(1), value: fc.nat(3) }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 20 }), async (ops) => {
        await sameEverywhere(async (rt, keys, note) => {
          for (const o of ops) {
            if (o.op === 'share') note(['share', await rt.coordination.getOrSet(keys.salt(`d${o.key}`), `v${o.value}`, 60)]);
            else if (o.op === 'lock') note(['lock', await rt.coordination.tryLock(keys.lock(`l${o.lock}`), `t${o.token}`, 60_000)]);
            else await rt.coordination.unlock(keys.lock(`l${o.lock}`), `t${o.token}`);
          }
        });
      }),
      { seed: SEED, numRuns: RUNS },
    );
  }, 120_000);
  it('sessions', async () => {
    // Two hours either side of a midnight (UTC), in minutes, now and then a millisecond off:
    // gaps of exactly the session gap, and just past it, come up often.
    const midnight = Date.UTC(2026, 11, 4);
    const text = (...values: string[]) => fc.option(fc.constantFrom(...values), { nil: null });
    const fields: fc.Arbitrary<SessionFields> = fc.record({
      entry_page: text('/', '/a', '/é'),
      source: fc.constantFrom('Direct', 'google.com', 'news'),
      referrer: text('https://google.com/', 'https://x.example/a?'),
      referrer_host: text('google.com', 'x.example'),
      utm_source: text('news', '😀'),
      utm_medium: text('email'),
      utm_campaign: text('spring', 'a:b'),
      utm_term: text('shoes'),
      utm_content: text(''),
    });
    type Event = { visitor: string; minute: number; off: number; fields: SessionFields };
    type Action = { assign: { site: string; events: Event[] } } | { redeliver: { which: number; reverse: boolean } };
    const event: fc.Arbitrary<Event> = fc.record({
      visitor: fc.constantFrom('v1', 'v2', 'ü:{x}'),
      minute: fc.integer({ min: -120, max: 120 }),
      off: fc.constantFrom(0, 0, 0, 1, -1),
      fields,
    });
    const action: fc.Arbitrary<Action> = fc.oneof(
      {
        weight: 3,
        arbitrary: fc
          .record({ site: fc.constantFrom('s', 's', 't'), events: fc.array(event, { minLength: 1, maxLength: 8 }) })
          .map((assign) => ({ assign })),
      },
      { weight: 1, arbitrary: fc.record({ which: fc.nat(20), reverse: fc.boolean() }).map((redeliver) => ({ redeliver })) },
    );
    await fc.assert(
      fc.asyncProperty(fc.array(action, { minLength: 1, maxLength: 12 }), async (actions) => {
        await sameEverywhere(async (rt, _keys, note) => {
          const past: { site: string; visits: SessionVisit[]; got: AssignedSession[] }[] = [];
          let n = 0;
          for (const a of actions) {
            if ('assign' in a) {
              const visits = a.assign.events.map((e) => ({
                visitor: e.visitor,
                at: midnight + e.minute * 60_000 + e.off,
                id: `e${n++}`,
                fields: e.fields,
              }));
              const got = await rt.sessions.assign(a.assign.site, visits);
              past.push({ site: a.assign.site, visits, got });
              note(['assign', got]);
            } else {
              const batch = past[a.redeliver.which % Math.max(1, past.length)];
              if (!batch) continue;
              const reorder = <T>(list: T[]) => (a.redeliver.reverse ? [...list].reverse() : list);
              const got = await rt.sessions.assign(batch.site, reorder(batch.visits));
              // Idempotent in every implementation: four hours hold at most 8 sessions a visitor
              // (the number kept), so none was forgotten.
              expect(got).toEqual(reorder(batch.got));
              note(['redeliver', got]);
            }
          }
        });
      }),
      { seed: SEED, numRuns: RUNS },
    );
  }, 300_000);
});
