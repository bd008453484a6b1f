import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { flushBuffer } from '../src/counters/flush.js';
import { startFlusher } from '../src/counters/flusher.js';
import { createInbox } from '../src/inbox/inbox.js';
import { checkUser, reconcileAll } from '../src/inbox/reconcile.js';
import { createUnreadCounter, INBOX_SHARDS } from '../src/inbox/unread-counter.js';
import { inboxTargets, unreadSink } from '../src/inbox/unread-flush.js';
import type { Realtime } from '../src/storage/realtime.js';
import { type Mode, openTestContext, propertyParams, type TestContext, uniqueName } from './helpers.js';

// Random sequences of create / batch / read / unread / delete / read-all / flush, with simulated
// crashes (a change dying between its commit and its delta; a flush dying before or after its
// commit), checked against a model after every step: every read exact, even right after a crash
// (its intent stays open, so reads count the rows until a reconcile repairs the total); a repair
// only where a change crashed; durable = rows at the end.

const USERS = ['u0', 'u1', 'u:2'];
const IDS = ['n0', 'n1', 'n2', 'n3', 'n4', 'n5', 'n6'];
const CATEGORIES = ['a', 'b'];

type Op =
  | { op: 'create'; user: string; id: string; category: string }
  | { op: 'batch'; items: { user: string; id: string; category: string }[] }
  | { op: 'read' | 'unread' | 'delete'; id: string }
  | { op: 'readAll'; user: string; category?: string; before?: string }
  | { op: 'flush' | 'flushCrashBeforeCommit' | 'flushCrashAfterCommit' | 'reconcile' }
  | { op: 'crashNextChange' };

const item = fc.record({ user: fc.constantFrom(...USERS), id: fc.constantFrom(...IDS), category: fc.constantFrom(...CATEGORIES) });
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: item.map((i) => ({ op: 'create' as const, ...i })) },
  {
    weight: 1,
    arbitrary: fc
      .uniqueArray(item, { minLength: 1, maxLength: 4, selector: (i) => i.id })
      .map((items) => ({ op: 'batch' as const, items })),
  },
  {
    weight: 3,
    arbitrary: fc.record({ op: fc.constantFrom('read' as const, 'unread' as const, 'delete' as const), id: fc.constantFrom(...IDS) }),
  },
  {
    weight: 1,
    arbitrary: fc.record(
      {
        op: fc.constant('readAll' as const),
        user: fc.constantFrom(...USERS),
        category: fc.constantFrom(...CATEGORIES),
        before: fc.constantFrom(...IDS),
      },
      { requiredKeys: ['op', 'user'] },
    ),
  },
  {
    weight: 2,
    arbitrary: fc
      .constantFrom('flush' as const, 'flushCrashBeforeCommit' as const, 'flushCrashAfterCommit' as const, 'reconcile' as const)
      .map((op) => ({ op })),
  },
  { weight: 1, arbitrary: fc.constant({ op: 'crashNextChange' as const }) },
);

interface Row {
  user: string;
  category: string;
  read: boolean;
  seq: number;
}

/** A real-time layer that can die at chosen points: a thrown error stands for a killed process. */
function crashable(inner: Realtime) {
  const faults = { finishChange: false, finishBatch: false };
  const layer: Realtime = {
    ...inner,
    inbox: {
      ...inner.inbox,
      finish: async (...args) => {
        if (faults.finishChange) {
          faults.finishChange = false;
          throw new Error('crash: change died after its commit');
        }
        return inner.inbox.finish(...args);
      },
    },
    buffers: {
      take: (...args) => inner.buffers.take(...args),
      finish: async (...args) => {
        if (faults.finishBatch) {
          faults.finishBatch = false;
          throw new Error('crash: flusher died after its commit');
        }
        return inner.buffers.finish(...args);
      },
    },
  };
  return { layer, faults };
}

describe.each<[Mode, number]>([
  ['external', 100],
  ['embedded', 60],
])('inbox model (%s)', (mode, numRuns) => {
  let t: TestContext;
  beforeAll(async () => {
    t = await openTestContext(mode);
  });
  afterAll(async () => {
    await t.close();
  });

  it('matches the model under random operations and crashes', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 30 }), async (ops) => {
        const site = await t.ctx.sites.create(uniqueName('m'));
        const { layer, faults } = crashable(t.ctx.realtime);
        const deps = { ...t.ctx, realtime: layer };
        const counter = createUnreadCounter(deps);
        const inbox = createInbox({ db: t.ctx.db, counter });
        const flusher = startFlusher(deps, {
          intervalMs: 1000,
          providers: [inboxTargets({ keys: t.ctx.keys, sites: { list: async () => [site] } })],
          autoStart: false,
        });
        const model = new Map<string, Row>();
        const drifting = new Set<string>();
        let seq = 0;
        const unreadOf = (user: string) => [...model.values()].filter((r) => r.user === user && !r.read).length;
        /** A flush that may die: it had nothing to apply (resolves), or it died (the crash, nothing else). */
        const mayCrash = (flush: Promise<unknown>) =>
          flush.then(
            () => undefined,
            (err: unknown) => expect(String(err)).toMatch(/crash: flusher died (before|after) its commit/),
          );

        for (const op of ops) {
          const crash = faults.finishChange;
          const touched: string[] = [];
          const settle = async (run: () => Promise<unknown>) => {
            try {
              await run();
            } catch (err) {
              if (!(crash && String(err).includes('crash'))) throw err;
            }
          };
          switch (op.op) {
            case 'create': {
              const existing = model.get(op.id);
              await settle(async () => {
                const created = inbox.create(site.id, { id: op.id, userId: op.user, title: 't', category: op.category });
                if (existing && existing.user !== op.user) await expect(created).rejects.toMatchObject({ code: 'conflict' });
                else await created;
              });
              if (!existing) model.set(op.id, { user: op.user, category: op.category, read: false, seq: ++seq });
              touched.push(op.user);
              break;
            }
            case 'batch': {
              const conflict = op.items.some((i) => model.has(i.id) && model.get(i.id)?.user !== i.user);
              await settle(async () => {
                const created = inbox.createMany(
                  site.id,
                  op.items.map((i) => ({ id: i.id, userId: i.user, title: 't', category: i.category })),
                );
                if (conflict) await expect(created).rejects.toMatchObject({ code: 'conflict' });
                else await created;
              });
              if (!conflict) {
                for (const i of op.items)
                  if (!model.has(i.id)) model.set(i.id, { user: i.user, category: i.category, read: false, seq: ++seq });
              }
              touched.push(...op.items.map((i) => i.user));
              break;
            }
            case 'read':
            case 'unread':
            case 'delete': {
              const row = model.get(op.id);
              await settle(async () => {
                const run =
                  op.op === 'read'
                    ? inbox.markRead(site.id, op.id, {})
                    : op.op === 'unread'
                      ? inbox.markUnread(site.id, op.id, {})
                      : inbox.remove(site.id, op.id, {});
                if (!row) await expect(run).rejects.toMatchObject({ code: 'not_found' });
                else await run;
              });
              if (row) {
                touched.push(row.user);
                if (op.op === 'delete') model.delete(op.id);
                else row.read = op.op === 'read';
              }
              break;
            }
            case 'readAll': {
              const mark = op.before === undefined ? undefined : model.get(op.before);
              const missing = op.before !== undefined && (!mark || mark.user !== op.user);
              await settle(async () => {
                const run = inbox.markAllRead(site.id, op.user, { category: op.category, before: op.before });
                if (missing) await expect(run).rejects.toMatchObject({ code: 'not_found' });
                else await run;
              });
              if (!missing) {
                for (const row of model.values()) {
                  if (row.user !== op.user || (op.category && row.category !== op.category) || (mark && row.seq > mark.seq)) continue;
                  row.read = true;
                }
              }
              touched.push(op.user);
              break;
            }
            case 'flush':
              await flusher.flushAll();
              break;
            case 'flushCrashBeforeCommit':
              for (let shard = 0; shard < INBOX_SHARDS; shard++) {
                await mayCrash(
                  flushBuffer(deps, t.ctx.keys.inboxBuffer(site.id, shard), async () => {
                    throw new Error('crash: flusher died before its commit');
                  }),
                );
              }
              break;
            case 'flushCrashAfterCommit':
              for (let shard = 0; shard < INBOX_SHARDS; shard++) {
                faults.finishBatch = true;
                await mayCrash(flushBuffer(deps, t.ctx.keys.inboxBuffer(site.id, shard), unreadSink(site.id)));
              }
              faults.finishBatch = false;
              break;
            case 'reconcile':
              for (const user of USERS) {
                const result = await checkUser({ ...deps, counter }, site.id, user, 0);
                expect(result.status).not.toBe('busy');
                if (result.status === 'repaired') expect(drifting.has(user), `${user} repaired without a crash`).toBe(true);
              }
              drifting.clear();
              break;
            case 'crashNextChange':
              faults.finishChange = true;
              break;
          }
          if (crash && !faults.finishChange) for (const user of touched) drifting.add(user);
          for (const user of USERS) {
            expect((await counter.read(site.id, user)).unread, `${user} after ${JSON.stringify(op)}`).toBe(unreadOf(user));
          }
        }
        // The end: everything flushed and reconciled, the durable copy equals the rows.
        faults.finishChange = false;
        await flusher.flushAll();
        const report = await reconcileAll({ ...deps, counter }, site.id, { staleMs: 0 });
        expect(report.busy).toBe(0);
        await flusher.flushAll();
        for (const user of USERS) {
          expect((await counter.read(site.id, user)).unread).toBe(unreadOf(user));
          const durable = await t.ctx.db.query<{ unread: number }>('SELECT unread FROM unread_counts WHERE site_id = $1 AND user_id = $2', [
            site.id,
            user,
          ]);
          expect(durable.rows[0]?.unread ?? 0).toBe(unreadOf(user));
        }
      }),
      propertyParams(numRuns, 45_000),
    );
  }, 60_000);
});
