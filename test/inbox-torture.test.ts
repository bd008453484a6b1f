import { type ChildProcess, spawn } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { flushBuffer } from '../src/counters/flush.js';
import { summarize } from '../src/inbox/counts-view.js';
import { reconcileAll } from '../src/inbox/reconcile.js';
import { createUnreadCounter, INBOX_SHARDS } from '../src/inbox/unread-counter.js';
import { unreadSink } from '../src/inbox/unread-flush.js';
import type { CreatedSite } from '../src/sites/site-repository.js';
import { parseCountName } from '../src/storage/inbox-count-names.js';
import { DATABASE_URL, openTestContext, REDIS_URL, type TestContext, uniqueName } from './helpers.js';
import { TALLY_CLI } from './server-process.js';

// The torture test: real `tally serve` processes (API + flusher + reconciler each), many
// concurrent clients on few users and few notifications (most requests collide), servers killed
// with SIGKILL at random moments (mid-request, mid-flush) and restarted. In phases: at the end of
// each, clients pause and the reconciler repairs what the kills lost. Checked: every count answer
// within the range of true values during its request (from what every request answered, a
// request without an answer counting as "maybe"), never negative; after each phase every count
// (unseen, unread, total per tenant and category) equals the rows; at the end the durable counts
// too: zero drift. Clients mark seen, read, unread, archived and unarchived, one and all.

const SERVERS = 2;
const CLIENTS = 12;
const PHASES = 4;
const PHASE_MS = 5_000;
const USERS = ['hot-0', 'hot-1', 'hot:2'];

interface Server {
  port: number;
  child: ChildProcess | null;
  ready: boolean;
}

/** A change's effect on its user's count: exact when answered, a range when its fate is unknown. */
interface Change {
  user: string;
  start: number;
  end: number;
  lo: number;
  hi: number;
}

interface CountAnswer {
  user: string;
  start: number;
  end: number;
  unread: number;
}

describe('inbox torture: kill -9 of servers under colliding clients', () => {
  let t: TestContext;
  let site: CreatedSite;
  const servers: Server[] = [];

  beforeAll(async () => {
    t = await openTestContext('external');
    site = await t.ctx.sites.create(uniqueName('torture'));
  });
  afterAll(async () => {
    for (const server of servers) server.child?.kill('SIGKILL');
    await t.close();
  });

  async function start(server: Server): Promise<void> {
    server.ready = false;
    const child = spawn(process.execPath, [TALLY_CLI, 'serve'], {
      env: {
        ...process.env,
        REDIS_URL,
        DATABASE_URL,
        TALLY_PG_SCHEMA: t.ctx.config.pgSchema,
        TALLY_REDIS_PREFIX: t.ctx.config.redisPrefix,
        PORT: String(server.port),
        HOST: '127.0.0.1',
        LOG_LEVEL: 'error',
        NODE_NO_WARNINGS: '1',
        TALLY_FLUSH_INTERVAL_MS: '50',
      },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    server.child = child;
    // Up to a minute: a cold start on a loaded machine takes tens of seconds.
    for (let i = 0; i < 1200; i++) {
      if (server.child !== child) return;
      const up = await fetch(`http://127.0.0.1:${server.port}/healthz`).then(
        (r) => r.ok,
        () => false,
      );
      if (up) {
        server.ready = true;
        return;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`server on ${server.port} did not start`);
  }

  it('answers every count within its true range, never negative, and reconciles to zero drift', async () => {
    const base = 21_000 + randomInt(20_000);
    for (let i = 0; i < SERVERS; i++) servers.push({ port: base + i, child: null, ready: false });
    await Promise.all(servers.map(start));

    const auth = { authorization: `Bearer ${site.secretKey}`, 'content-type': 'application/json' };
    const ids = new Map<string, string[]>(USERS.map((u) => [u, []]));
    const counter = createUnreadCounter(t.ctx);
    const truth = async (user: string) =>
      Number(
        (
          await t.ctx.db.query<{ n: number }>(
            `SELECT count(*) AS n FROM notifications
             WHERE site_id = $1 AND user_id = $2 AND read_at IS NULL AND archived_at IS NULL AND NOT expired AND NOT muted`,
            [site.id, user],
          )
        ).rows[0]?.n ?? 0,
      );
    /** Every count of the user per cell (tenant, category) and kind, from the rows. */
    const cellsFromRows = async (user: string) => {
      const result = await t.ctx.db.query<{ tenant: string; category: string; unseen: string; unread: string; total: string }>(
        `SELECT coalesce(tenant, '') AS tenant, coalesce(category, '') AS category, count(*) FILTER (WHERE seen_at IS NULL) AS unseen,
           count(*) FILTER (WHERE read_at IS NULL) AS unread, count(*) AS total
         FROM notifications WHERE site_id = $1 AND user_id = $2 AND archived_at IS NULL AND NOT expired AND NOT muted
         GROUP BY 1, 2 ORDER BY 1, 2`,
        [site.id, user],
      );
      return result.rows.map((r) => [r.tenant, r.category, Number(r.unseen), Number(r.unread), Number(r.total)]);
    };
    /** The same, as a count read answers it (zeros left out). */
    const cellsRead = async (user: string) => {
      const { counts } = await counter.read(site.id, user);
      const cells = new Map<string, number[]>();
      for (const [name, value] of counts) {
        const parsed = parseCountName(name);
        if (!parsed) throw new Error(`not a count name: ${name}`);
        const key = JSON.stringify([parsed.tenant, parsed.category]);
        const cell = cells.get(key) ?? [0, 0, 0];
        cell[['unseen', 'unread', 'total'].indexOf(parsed.kind)] = value;
        cells.set(key, cell);
      }
      return [...cells]
        .filter(([, v]) => v.some((n) => n !== 0))
        .sort(([a], [b]) => (a < b ? -1 : 1))
        .map(([key, v]) => [...(JSON.parse(key) as string[]), ...v]);
    };

    let kills = 0;
    let answered = 0;
    let unknown = 0;
    let repaired = 0;
    let checked = 0;
    const violations: string[] = [];

    for (let phase = 0; phase < PHASES; phase++) {
      const startTruth = new Map<string, number>();
      for (const user of USERS) startTruth.set(user, await truth(user));
      const changes: Change[] = [];
      const counts: CountAnswer[] = [];
      const until = Date.now() + PHASE_MS;

      const call = async (method: string, path: string, body?: unknown) => {
        const live = servers.filter((s) => s.ready);
        const server = live[randomInt(live.length)] ?? servers[0]!;
        try {
          const res = await fetch(`http://127.0.0.1:${server.port}${path}`, {
            method,
            headers: auth,
            ...(body === undefined ? {} : { body: JSON.stringify(body) }),
          });
          const json = (await res.json()) as Record<string, any>;
          if (res.status >= 500) return { fate: 'unknown' as const };
          answered += 1;
          return { fate: 'answered' as const, status: res.status, json };
        } catch (err) {
          // Refused: the request never reached a server. Anything else: it may have run.
          const code = (err as { cause?: { code?: string } }).cause?.code;
          if (code === 'ECONNREFUSED') return { fate: 'refused' as const };
          unknown += 1;
          return { fate: 'unknown' as const };
        }
      };

      const client = async () => {
        while (Date.now() < until) {
          const user = USERS[randomInt(USERS.length)]!;
          const mine = ids.get(user)!;
          const target = mine[Math.max(0, mine.length - 1 - randomInt(4))];
          const roll = randomInt(100);
          const startAt = performance.now();
          if (roll < 20 || !target) {
            const id = uniqueName('n');
            const cell = { tenant: `w${randomInt(2)}`, ...(randomInt(2) ? { category: 'c' } : {}) };
            const r = await call('POST', '/v1/notifications', { id, userId: user, title: 'torture', ...cell });
            if (r.fate === 'answered' && r.status === 201) mine.push(id);
            if (r.fate === 'unknown') mine.push(id);
            const [lo, hi] =
              r.fate === 'answered' ? [r.status === 201 ? 1 : 0, r.status === 201 ? 1 : 0] : r.fate === 'refused' ? [0, 0] : [0, 1];
            changes.push({ user, start: startAt, end: r.fate === 'unknown' ? Infinity : performance.now(), lo, hi });
          } else if (roll < 40) {
            const r = await call('POST', `/v1/notifications/${target}/read`);
            // Read or unread, an archived notification changes but no count moves (archived rows are in none):
            // a change answered `changed` is a range, not an exact step.
            const d = r.fate === 'answered' ? (r.json['changed'] ? -1 : 0) : 0;
            changes.push({
              user,
              start: startAt,
              end: r.fate === 'unknown' ? Infinity : performance.now(),
              lo: r.fate === 'unknown' ? -1 : d,
              hi: 0,
            });
          } else if (roll < 50) {
            const r = await call('POST', `/v1/notifications/${target}/unread`);
            const d = r.fate === 'answered' ? (r.json['changed'] ? 1 : 0) : 0;
            changes.push({
              user,
              start: startAt,
              end: r.fate === 'unknown' ? Infinity : performance.now(),
              lo: 0,
              hi: r.fate === 'unknown' ? 1 : d,
            });
          } else if (roll < 60) {
            // Seen, one or all: no unread count moves.
            await call(
              'POST',
              roll < 55 ? `/v1/notifications/${target}/seen` : `/v1/users/${encodeURIComponent(user)}/notifications/seen-all`,
              {},
            );
          } else if (roll < 70) {
            // Archived, the unread count drops by one if it was unread; unarchived, it may come back.
            const archive = roll < 65;
            const r = await call('POST', `/v1/notifications/${target}/${archive ? 'archive' : 'unarchive'}`);
            const moved = r.fate !== 'answered' || r.json['changed'] === true;
            changes.push({
              user,
              start: startAt,
              end: r.fate === 'unknown' ? Infinity : performance.now(),
              lo: archive && moved ? -1 : 0,
              hi: !archive && moved ? 1 : 0,
            });
          } else if (roll < 75) {
            const r = await call('POST', `/v1/users/${encodeURIComponent(user)}/notifications/read-all`, {});
            const d = r.fate === 'answered' ? -Number(r.json['changed'] ?? 0) : 0;
            changes.push({
              user,
              start: startAt,
              end: r.fate === 'unknown' ? Infinity : performance.now(),
              lo: r.fate === 'unknown' ? -mine.length : d,
              hi: d,
            });
          } else {
            const r = await call('GET', `/v1/users/${encodeURIComponent(user)}/notifications/count`);
            if (r.fate === 'answered' && r.status === 200)
              counts.push({ user, start: startAt, end: performance.now(), unread: r.json['unread'] });
          }
        }
      };

      const killer = async () => {
        while (Date.now() < until - 1_000) {
          await new Promise((r) => setTimeout(r, 200 + randomInt(600)));
          const victim = servers[randomInt(servers.length)]!;
          if (!victim.ready) continue;
          victim.ready = false;
          victim.child?.kill('SIGKILL');
          kills += 1;
          await new Promise((r) => setTimeout(r, randomInt(300)));
          await start(victim);
        }
      };

      await Promise.all([...Array.from({ length: CLIENTS }, client), killer()]);
      await Promise.all(servers.filter((s) => !s.ready).map(start));

      // Every count answer against the range of values the count could truly have had.
      checked += counts.length;
      for (const answer of counts) {
        let lo = startTruth.get(answer.user) ?? 0;
        let hi = lo;
        for (const change of changes) {
          if (change.user !== answer.user || change.start >= answer.end) continue;
          const settled = change.end < answer.start;
          lo += settled ? change.lo : Math.min(0, change.lo);
          hi += settled ? change.hi : Math.max(0, change.hi);
        }
        if (answer.unread < 0 || answer.unread < lo || answer.unread > hi) {
          violations.push(`phase ${phase} ${answer.user}: ${answer.unread} not in [${lo}, ${hi}]`);
        }
      }

      // Clients paused: what the kills lost is repaired, then every count is exact.
      const report = await reconcileAll({ ...t.ctx, counter }, site.id, { staleMs: 0 });
      expect(report.busy).toBe(0);
      repaired += report.drift;
      for (const user of USERS) {
        const { unread } = summarize((await counter.read(site.id, user)).counts);
        expect(unread, `${user} after phase ${phase}`).toBe(await truth(user));
        expect(await cellsRead(user), `${user} after phase ${phase}`).toEqual(await cellsFromRows(user));
      }
    }

    expect(violations).toEqual([]);
    expect(kills).toBeGreaterThanOrEqual(PHASES);
    expect(answered).toBeGreaterThan(500);

    // Shut down cleanly (final flush), then the durable copy equals the rows: zero drift.
    await Promise.all(
      servers.map(async (server) => {
        const child = server.child;
        server.ready = false;
        server.child = null;
        if (!child || child.exitCode !== null) return;
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }),
    );
    const final = await reconcileAll({ ...t.ctx, counter }, site.id, { staleMs: 0 });
    expect(final).toMatchObject({ drift: 0, busy: 0 });
    // A killed flusher's lock outlives it (30 s): with every server stopped, flush without it.
    for (let shard = 0; shard < INBOX_SHARDS; shard++) {
      while (await flushBuffer(t.ctx, t.ctx.keys.inboxBuffer(site.id, shard), unreadSink(site.id)));
    }
    for (const user of USERS) {
      const durable = await t.ctx.db.query<{ tenant: string; category: string; unseen: string; unread: string; total: string }>(
        `SELECT tenant, category, unseen, unread, total FROM inbox_counts
         WHERE site_id = $1 AND user_id = $2 AND (unseen <> 0 OR unread <> 0 OR total <> 0) ORDER BY 1, 2`,
        [site.id, user],
      );
      const cells = durable.rows.map((r) => [r.tenant, r.category, Number(r.unseen), Number(r.unread), Number(r.total)]);
      expect(cells, user).toEqual(await cellsFromRows(user));
      expect(await cellsRead(user), user).toEqual(await cellsFromRows(user));
    }
    console.log(JSON.stringify({ kills, answered, unknown, repairedDrift: repaired, countsChecked: checked }));
  }, 240_000);
});
