import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { flushBuffer } from '../src/counters/flush.js';
import { startFlusher } from '../src/counters/flusher.js';
import { summarize } from '../src/inbox/counts-view.js';
import { createInbox } from '../src/inbox/inbox.js';
import { createPreferences } from '../src/inbox/preferences.js';
import { checkUser, reconcileAll } from '../src/inbox/reconcile.js';
import { createUnreadCounter, INBOX_SHARDS } from '../src/inbox/unread-counter.js';
import { inboxTargets, unreadSink } from '../src/inbox/unread-flush.js';
import type { Realtime } from '../src/storage/realtime.js';
import { type Mode, openTestContext, propertyParams, type TestContext, uniqueName } from './helpers.js';

// Random sequences of create (with tenant, category, muted by a preference, expired) / batch /
// seen / read / unread / archive / unarchive / delete / bulk / seen-all / read-all / archive-all /
// preference change / expiry / flush, with simulated crashes (a change dying between its commit and its delta; a flush dying before or after its
// commit), checked against a model after every step: every count (per user, category and tenant)
// exact, even right after a crash
// (its intent stays open, so reads count the rows until a reconcile repairs the total); a repair
// only where a change crashed; durable = rows at the end.

const USERS = ['u0', 'u1', 'u:2'];
const IDS = ['n0', 'n1', 'n2', 'n3', 'n4', 'n5', 'n6'];
const CATEGORIES = ['a', 'b'];
const TENANTS = ['', 't1', 't2'];
const ACTIONS = ['seen', 'read', 'unread', 'archive', 'unarchive'] as const;
type Action = (typeof ACTIONS)[number];

type Item = { user: string; id: string; category: string; tenant: string; expired: boolean };
type Op =
  | ({ op: 'create' } & Item)
  | { op: 'batch'; items: Item[] }
  | { op: Action | 'delete'; id: string }
  | { op: 'readAll' | 'seenAll' | 'archiveAll'; user: string; category?: string; tenant?: string; before?: string }
  | { op: 'bulk'; user: string; ids: string[]; action: Action | 'delete' }
  | { op: 'preference'; user: string; category: string; inApp: boolean }
  | { op: 'due'; id: string }
  | { op: 'flush' | 'flushCrashBeforeCommit' | 'flushCrashAfterCommit' | 'reconcile' | 'expire' }
  | { op: 'crashNextChange' };

const item = fc.record({
  user: fc.constantFrom(...USERS),
  id: fc.constantFrom(...IDS),
  category: fc.constantFrom(...CATEGORIES),
  tenant: fc.constantFrom(...TENANTS),
  // Created with an expiry already passed: never counted.
  expired: fc.nat(8).map((n) => n === 0),
});
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: item.map((i) => ({ op: 'create' as const, ...i })) },
  {
    weight: 1,
    arbitrary: fc
      .uniqueArray(item, { minLength: 1, maxLength: 4, selector: (i) => i.id })
      .map((items) => ({ op: 'batch' as const, items })),
  },
  {
    weight: 5,
    arbitrary: fc.record({ op: fc.constantFrom(...ACTIONS, 'delete' as const), id: fc.constantFrom(...IDS) }),
  },
  {
    weight: 2,
    arbitrary: fc.record(
      {
        op: fc.constantFrom('readAll' as const, 'seenAll' as const, 'archiveAll' as const),
        user: fc.constantFrom(...USERS),
        category: fc.constantFrom(...CATEGORIES),
        tenant: fc.constantFrom('t1', 't2'),
        before: fc.constantFrom(...IDS),
      },
      { requiredKeys: ['op', 'user'] },
    ),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant('bulk' as const),
      user: fc.constantFrom(...USERS),
      ids: fc.uniqueArray(fc.constantFrom(...IDS), { minLength: 1, maxLength: 4 }),
      action: fc.constantFrom(...ACTIONS, 'delete' as const),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant('preference' as const),
      user: fc.constantFrom(...USERS),
      category: fc.constantFrom(...CATEGORIES),
      inApp: fc.boolean(),
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('due' as const), id: fc.constantFrom(...IDS) }) },
  {
    weight: 2,
    arbitrary: fc
      .constantFrom(
        'flush' as const,
        'flushCrashBeforeCommit' as const,
        'flushCrashAfterCommit' as const,
        'reconcile' as const,
        'expire' as const,
      )
      .map((op) => ({ op })),
  },
  { weight: 1, arbitrary: fc.constant({ op: 'crashNextChange' as const }) },
);

interface Row {
  user: string;
  category: string;
  tenant: string;
  read: boolean;
  seen: boolean;
  archived: boolean;
  muted: boolean;
  /** Its expiresAt passed; `expired` once the expiry was applied. */
  due: boolean;
  expired: boolean;
  seq: number;
}

type Counts = { unseen: number; unread: number; total: number };

/** The counts of a user's live rows, in total and per category and tenant. */
function expectedCounts(rows: readonly Row[]) {
  const of = (list: readonly Row[]): Counts => ({
    unseen: list.filter((r) => !r.seen).length,
    unread: list.filter((r) => !r.read).length,
    total: list.length,
  });
  const live = rows.filter((r) => !r.archived && !r.expired && !r.muted);
  const by = (key: 'category' | 'tenant') =>
    Object.fromEntries([...new Set(live.map((r) => r[key]))].sort().map((v) => [v, of(live.filter((r) => r[key] === v))]));
  return { ...of(live), byCategory: by('category'), byTenant: by('tenant') };
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
  ['external', 40],
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
        const preferences = createPreferences({ db: t.ctx.db });
        const muted = new Set<string>();
        const model = new Map<string, Row>();
        const drifting = new Set<string>();
        let seq = 0;
        const rowsOf = (user: string) => [...model.values()].filter((r) => r.user === user);
        const newRow = (i: Item): Row => ({
          user: i.user,
          category: i.category,
          tenant: i.tenant,
          read: false,
          seen: false,
          archived: false,
          muted: muted.has(`${i.user}\n${i.category}`),
          due: i.expired,
          expired: i.expired,
          seq: ++seq,
        });
        const toInput = (i: Item) => ({
          id: i.id,
          userId: i.user,
          title: 't',
          category: i.category,
          ...(i.tenant ? { tenant: i.tenant } : {}),
          ...(i.expired ? { expiresAt: new Date(Date.now() - 60_000).toISOString() } : {}),
        });
        const apply = (row: Row, action: Action) => {
          if (action === 'seen') row.seen = true;
          else if (action === 'read') row.read = row.seen = true;
          else if (action === 'unread') row.read = false;
          else row.archived = action === 'archive';
        };
        /** A flush that may die: it had nothing to apply (resolves), or it died (the crash, nothing else). */
        const mayCrash = (flush: Promise<unknown>) =>
          flush.then(
            () => undefined,
            (err: unknown) => expect(String(err)).toMatch(/crash: flusher died (before|after) its commit/),
          );
        const observe = async (user: string) => {
          const { counts } = await counter.read(site.id, user);
          return {
            ...summarize(counts),
            byCategory: summarize(counts, { by: 'category' }).by,
            byTenant: summarize(counts, { by: 'tenant' }).by,
          };
        };

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
                const created = inbox.create(site.id, toInput(op));
                if (existing && existing.user !== op.user) await expect(created).rejects.toMatchObject({ code: 'conflict' });
                else await created;
              });
              if (!existing) model.set(op.id, newRow(op));
              touched.push(op.user);
              break;
            }
            case 'batch': {
              const conflict = op.items.some((i) => model.has(i.id) && model.get(i.id)?.user !== i.user);
              await settle(async () => {
                const created = inbox.createMany(site.id, op.items.map(toInput));
                if (conflict) await expect(created).rejects.toMatchObject({ code: 'conflict' });
                else await created;
              });
              if (!conflict) for (const i of op.items) if (!model.has(i.id)) model.set(i.id, newRow(i));
              touched.push(...op.items.map((i) => i.user));
              break;
            }
            case 'seen':
            case 'read':
            case 'unread':
            case 'archive':
            case 'unarchive':
            case 'delete': {
              const row = model.get(op.id);
              const action = op.op;
              await settle(async () => {
                const run = action === 'delete' ? inbox.remove(site.id, op.id, {}) : inbox.change(site.id, op.id, {}, action);
                if (!row) await expect(run).rejects.toMatchObject({ code: 'not_found' });
                else await run;
              });
              if (row) {
                touched.push(row.user);
                if (action === 'delete') model.delete(op.id);
                else apply(row, action);
              }
              break;
            }
            case 'readAll':
            case 'seenAll':
            case 'archiveAll': {
              const mark = op.before === undefined ? undefined : model.get(op.before);
              const missing = op.before !== undefined && (!mark || mark.user !== op.user);
              const action = op.op === 'readAll' ? 'read' : op.op === 'seenAll' ? 'seen' : 'archive';
              await settle(async () => {
                const run = inbox.changeAll(site.id, op.user, action, { category: op.category, tenant: op.tenant, before: op.before });
                if (missing) await expect(run).rejects.toMatchObject({ code: 'not_found' });
                else await run;
              });
              if (!missing) {
                for (const row of rowsOf(op.user)) {
                  if (row.archived || row.expired || row.muted) continue;
                  if (
                    (op.category && row.category !== op.category) ||
                    (op.tenant && row.tenant !== op.tenant) ||
                    (mark && row.seq > mark.seq)
                  ) {
                    continue;
                  }
                  apply(row, action);
                }
              }
              touched.push(op.user);
              break;
            }
            case 'bulk': {
              await settle(() => inbox.bulk(site.id, op.user, op.ids, op.action));
              for (const id of op.ids) {
                const row = model.get(id);
                if (row?.user !== op.user) continue;
                if (op.action === 'delete') model.delete(id);
                else apply(row, op.action);
              }
              touched.push(op.user);
              break;
            }
            case 'preference':
              await preferences.setUser(site.id, op.user, { [op.category]: { in_app: op.inApp } });
              if (op.inApp) muted.delete(`${op.user}\n${op.category}`);
              else muted.add(`${op.user}\n${op.category}`);
              break;
            case 'due': {
              // Its expiry passes: a column no count reads until the expiry is applied.
              await t.ctx.db.query("UPDATE notifications SET expires_at = now() - interval '1 second' WHERE site_id = $1 AND id = $2", [
                site.id,
                op.id,
              ]);
              const row = model.get(op.id);
              if (row) row.due = true;
              break;
            }
            case 'expire': {
              const users = [...new Set([...model.values()].filter((r) => r.due && !r.expired).map((r) => r.user))];
              await settle(async () => {
                while ((await inbox.expire(1000)) > 0);
              });
              for (const row of model.values()) if (row.due) row.expired = true;
              touched.push(...users);
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
            expect(await observe(user), `${user} after ${JSON.stringify(op)}`).toEqual(expectedCounts(rowsOf(user)));
          }
        }
        // The end: everything flushed and reconciled, the durable copy equals the rows.
        faults.finishChange = false;
        await flusher.flushAll();
        const report = await reconcileAll({ ...deps, counter }, site.id, { staleMs: 0 });
        expect(report.busy).toBe(0);
        await flusher.flushAll();
        for (const user of USERS) {
          const expected = expectedCounts(rowsOf(user));
          expect(await observe(user)).toEqual(expected);
          const durable = await t.ctx.db.query<{ unseen: string; unread: string; total: string }>(
            `SELECT coalesce(sum(unseen), 0) AS unseen, coalesce(sum(unread), 0) AS unread, coalesce(sum(total), 0) AS total
             FROM inbox_counts WHERE site_id = $1 AND user_id = $2`,
            [site.id, user],
          );
          const row = durable.rows[0];
          expect({ unseen: Number(row?.unseen), unread: Number(row?.unread), total: Number(row?.total) }).toEqual({
            unseen: expected.unseen,
            unread: expected.unread,
            total: expected.total,
          });
        }
      }),
      propertyParams(numRuns, 45_000),
    );
  }, 60_000);
});
