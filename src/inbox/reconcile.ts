import type { Logger } from 'pino';
import { startLoop } from '../lifecycle/background-loop.js';
import type { Db } from '../storage/db.js';
import { COUNT_KINDS, countName } from '../storage/inbox-count-names.js';
import type { Keys } from '../storage/keys.js';
import type { Realtime } from '../storage/realtime.js';
import type { Counts } from './counts-view.js';
import { DURABLE_MISMATCHES, TRUE_AND_DURABLE } from './notification-sql.js';
import { INBOX_SHARDS, type UnreadCounter } from './unread-counter.js';

// The reconciler: compares a user's counts (durable + buffered, and the counts kept beside the
// buffer) with the counts of their rows and repairs the difference, count by count. A count drifts only when a process dies between a change's
// SQL commit and its delta reaching Redis (or Redis loses data). Repairing safely while changes
// keep running rests on three facts of the real-time layer:
//   - every change records an intent before its statement and removes it with its delta, in one
//     script, bumping the user's version; so "no intent now, same version as before the SQL
//     read" proves no change of that user sat between its commit and its delta during the check;
//   - the repair is applied only if the version is still the one checked (lua/inbox-repair.lua),
//     so a change finishing meanwhile, or a second reconciler, makes it a no-op, retried later;
//   - an intent older than `staleMs` is a crash's leftover and is dropped; a change that was only
//     slow then finds it gone, adds nothing, and marks its user for another check.

export interface ReconcileDeps {
  db: Db;
  realtime: Pick<Realtime, 'inbox'>;
  keys: Keys;
  log: Logger;
  counter: UnreadCounter;
}

/** drift: the sum over every count of |rows − what reads answered|. */
export type CheckResult = { status: 'ok' } | { status: 'repaired'; drift: number } | { status: 'busy' };

export interface ReconcileReport {
  checked: number;
  drifted: number;
  /** Sum of |drift| repaired. */
  drift: number;
  /** Users with a change running during every attempt: checked again next time. */
  busy: number;
}

export const DEFAULT_STALE_MS = 10_000;

/** Recently changed users the periodic job audits per shard and run (stale intents come first, all of them). */
const AUDIT_PER_SHARD = 50;

export async function checkUser(deps: ReconcileDeps, siteId: string, userId: string, staleMs: number): Promise<CheckResult> {
  const keys = deps.counter.keysOf(siteId, userId);
  const now = Date.now();
  let before = await deps.realtime.inbox.readState(keys, userId);
  if (before.intents > 0 && before.oldestIntentMs <= now - staleMs) {
    await deps.realtime.inbox.dropStaleIntents(keys, userId, now - staleMs);
    before = await deps.realtime.inbox.readState(keys, userId);
  }
  if (before.intents > 0) return { status: 'busy' };
  const result = await deps.db.query<{ src: 'rows' | 'durable' | 'seq'; tenant: string; category: string } & Counts>(TRUE_AND_DURABLE, [
    siteId,
    userId,
    keys.buffer.name,
  ]);
  const seqRow = result.rows.find((row) => row.src === 'seq');
  // The seq row is always there: taking a missing answer for "no rows" would "repair" the counts to 0.
  if (!seqRow) throw new Error('the count check returned no seq row');
  const lastSeq = Number(seqRow.unseen);
  const truth = new Map<string, number>();
  const counted = new Map<string, number>();
  for (const row of result.rows) {
    if (row.src === 'seq') continue;
    for (const kind of COUNT_KINDS)
      addTo(row.src === 'rows' ? truth : counted, countName(kind, row.tenant, row.category), Number(row[kind]));
  }
  const after = await deps.realtime.inbox.readState(keys, userId);
  if (after.version !== before.version || after.intents > 0 || after.doneSeq > lastSeq) return { status: 'busy' };
  for (const [name, delta] of after.pending) addTo(counted, name, delta);
  if (after.inflightSeq > lastSeq) for (const [name, delta] of after.inflight) addTo(counted, name, delta);
  const drift = difference(truth, counted);
  // Reads answer the kept counts: counts that left the buffer's sum are dropped with the repair.
  const answered = difference(truth, after.counts ?? counted);
  if (drift.size === 0 && answered.size === 0) return { status: 'ok' };
  if (!(await deps.realtime.inbox.repair(keys, userId, drift, after.version, Date.now()))) return { status: 'busy' };
  const repaired = await deps.realtime.inbox.readState(keys, userId);
  deps.counter.announce(siteId, userId, repaired.version);
  const size = [...answered.values()].reduce((sum, d) => sum + Math.abs(d), 0);
  deps.log.warn({ siteId, userId, drift: Object.fromEntries(answered) }, 'inbox counts drifted from their rows; repaired');
  return { status: 'repaired', drift: size };
}

function addTo(into: Map<string, number>, name: string, value: number): void {
  if (value !== 0) into.set(name, (into.get(name) ?? 0) + value);
}

/** a - b per count name, zeros left out. */
function difference(a: ReadonlyMap<string, number>, b: ReadonlyMap<string, number>): Map<string, number> {
  const out = new Map<string, number>();
  for (const name of new Set([...a.keys(), ...b.keys()])) {
    const d = (a.get(name) ?? 0) - (b.get(name) ?? 0);
    if (d !== 0) out.set(name, d);
  }
  return out;
}

async function checkUsers(
  deps: ReconcileDeps,
  siteId: string,
  userIds: readonly string[],
  options: { staleMs: number; attempts: number },
): Promise<{ report: ReconcileReport; settled: string[] }> {
  const report: ReconcileReport = { checked: 0, drifted: 0, drift: 0, busy: 0 };
  const settled: string[] = [];
  for (const userId of userIds) {
    let result: CheckResult = { status: 'busy' };
    for (let attempt = 0; attempt < options.attempts && result.status === 'busy'; attempt++) {
      if (attempt > 0) await new Promise((resolve) => setTimeout(resolve, 20 * attempt));
      result = await checkUser(deps, siteId, userId, options.staleMs);
    }
    if (result.status === 'busy') {
      report.busy += 1;
      continue;
    }
    report.checked += 1;
    settled.push(userId);
    if (result.status === 'repaired') {
      report.drifted += 1;
      report.drift += Math.abs(result.drift);
    }
  }
  return { report, settled };
}

const add = (a: ReconcileReport, b: ReconcileReport): ReconcileReport => ({
  checked: a.checked + b.checked,
  drifted: a.drifted + b.drifted,
  drift: a.drift + b.drift,
  busy: a.busy + b.busy,
});

const EMPTY: ReconcileReport = { checked: 0, drifted: 0, drift: 0, busy: 0 };

/**
 * Per buffer shard: the users with a stale intent (a change that died between its commit and its
 * delta: the one way a count drifts while Redis keeps its data), then up to `limit` of the users
 * changed longest ago (last change at least settleMs ago) as an audit of the rest.
 */
export async function reconcileTouched(
  deps: ReconcileDeps,
  siteId: string,
  options: { settleMs: number; staleMs: number; limit: number },
): Promise<ReconcileReport> {
  let total = EMPTY;
  for (let shard = 0; shard < INBOX_SHARDS; shard++) {
    const keys = deps.keys.inbox(siteId, shard);
    const startedAt = Date.now();
    const suspects = new Set<string>();
    for (const userId of await deps.realtime.inbox.staleUsers(keys, startedAt - options.staleMs)) suspects.add(userId);
    for (const userId of await deps.realtime.inbox.listTouched(keys, startedAt - options.settleMs, options.limit)) suspects.add(userId);
    if (suspects.size === 0) continue;
    const { report, settled } = await checkUsers(deps, siteId, [...suspects], { staleMs: options.staleMs, attempts: 2 });
    await deps.realtime.inbox.untouch(keys, settled, startedAt);
    total = add(total, report);
  }
  return total;
}

/** Every user whose durable count differs from its rows, or who has buffered deltas. */
export async function reconcileAll(deps: ReconcileDeps, siteId: string, options: { staleMs: number }): Promise<ReconcileReport> {
  const candidates = new Set<string>();
  const mismatches = await deps.db.query<{ user_id: string }>(DURABLE_MISMATCHES, [siteId]);
  for (const row of mismatches.rows) candidates.add(row.user_id);
  for (let shard = 0; shard < INBOX_SHARDS; shard++) {
    for (const userId of await deps.realtime.inbox.bufferedUsers(deps.keys.inbox(siteId, shard))) candidates.add(userId);
  }
  const { report } = await checkUsers(deps, siteId, [...candidates], { staleMs: options.staleMs, attempts: 10 });
  return report;
}

/** Adds a run's findings to the site's totals (exported by /metrics). */
export async function recordReport(db: Db, siteId: string, report: ReconcileReport): Promise<void> {
  await db.query(
    `INSERT INTO inbox_reconcile_state (site_id, runs, users_checked, users_drifted, drift_repaired, last_drift, last_run_at)
     VALUES ($1, 1, $2, $3, $4, $4, now())
     ON CONFLICT (site_id) DO UPDATE SET runs = inbox_reconcile_state.runs + 1,
       users_checked = inbox_reconcile_state.users_checked + excluded.users_checked,
       users_drifted = inbox_reconcile_state.users_drifted + excluded.users_drifted,
       drift_repaired = inbox_reconcile_state.drift_repaired + excluded.drift_repaired,
       last_drift = excluded.last_drift, last_run_at = now()`,
    [siteId, report.checked, report.drifted, report.drift],
  );
}

/** One run over every site: every user with `all`, else the recently touched ones. */
export async function reconcileSites(
  deps: ReconcileDeps & { sites: { list(): Promise<{ id: string }[]> } },
  options: { all: boolean; staleMs: number; settleMs: number; limit: number },
): Promise<{ total: ReconcileReport; sites: (ReconcileReport & { siteId: string })[] }> {
  let total = EMPTY;
  const sites: (ReconcileReport & { siteId: string })[] = [];
  for (const site of await deps.sites.list()) {
    const report = options.all
      ? await reconcileAll(deps, site.id, { staleMs: options.staleMs })
      : await reconcileTouched(deps, site.id, { settleMs: options.settleMs, staleMs: options.staleMs, limit: options.limit });
    if (options.all || report.checked > 0 || report.busy > 0) await recordReport(deps.db, site.id, report);
    sites.push({ siteId: site.id, ...report });
    total = add(total, report);
  }
  return { total, sites };
}

export interface Reconciler {
  runOnce(): Promise<ReconcileReport>;
  stop(): Promise<void>;
}

/**
 * The periodic job: recently touched users of every site. With `allFirst` (embedded start, where
 * the in-process buffers died with the last process), the first run checks every user.
 */
export function startReconciler(
  deps: ReconcileDeps & { sites: { list(): Promise<{ id: string }[]> } },
  options: { intervalMs: number; settleMs?: number; staleMs?: number; allFirst?: boolean },
): Reconciler {
  const staleMs = options.staleMs ?? DEFAULT_STALE_MS;
  let all = options.allFirst ?? false;
  let running: Promise<ReconcileReport> | null = null;

  async function runAllSites(): Promise<ReconcileReport> {
    const everyone = all;
    const found = await reconcileSites(deps, { all: everyone, staleMs, settleMs: options.settleMs ?? 1000, limit: AUDIT_PER_SHARD });
    // A failed check of every user is tried again by the next run, after the back-off.
    if (everyone) all = false;
    return found.total;
  }

  function runOnce(): Promise<ReconcileReport> {
    const next = (running ?? Promise.resolve(EMPTY)).catch(() => EMPTY).then(runAllSites);
    running = next;
    return next.finally(() => {
      if (running === next) running = null;
    });
  }

  const loop = startLoop({
    name: 'inbox reconciler',
    log: deps.log,
    intervalMs: options.intervalMs,
    delayFirst: !all,
    step: async () => void (await runOnce()),
  });

  return { runOnce, stop: () => loop.stop() };
}
