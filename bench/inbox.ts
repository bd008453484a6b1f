import { existsSync, readFileSync } from 'node:fs';
import http from 'node:http';
import { resolve } from 'node:path';
import pg from 'pg';
import { pino } from 'pino';
import { loadConfig } from '../src/config.js';
import { openContext } from '../src/context.js';
import { reconcileAll } from '../src/inbox/reconcile.js';
import { createUnreadCounter } from '../src/inbox/unread-counter.js';
import { migrate } from '../src/storage/migrate.js';
import { connectPostgres } from '../src/storage/postgres.js';
import { cpuBetween, cpuSnapshot, freePort, named, run, start, stop, treeOf, waitForHttp } from './lib/processes.js';
import { int, ms, type Row, table } from './lib/report.js';
import { DATABASE_URL, REDIS_URL, REPO_ROOT, unlinkMatching } from './lib/tally-server.js';

// npm run bench:inbox — the notification inbox under a 50 % create / 40 % mark-read / 10 % count
// mix (for Tally, 30 % mark-read, 5 % mark-seen and 5 % archive: flavour "states"; the other
// systems have no such states), 32 connections (wrk, its own process), two mixes: uniform over 10,000 users, and hot (90 %
// of requests aimed at 10 users). Against the same PostgreSQL, in the same run: Tally (buffered
// counter), the naive path (bench/inbox/naive-server.ts: the counter row updated by every
// mutation) and the tutorial's Django app (gunicorn 4 sync workers, persistent connections;
// COUNTER_MODE=rowcount, its correct variant; with BENCH_SYSTEMS including django-cta, also its
// check-then-act variant). Each system runs alone on freshly seeded data: 2 notifications per
// user plus 2,000 per hot user. While wrk runs, this process probes mark-read and count latency
// (one request at a time each), then again under a moderate load (BENCH_MODERATE_CONNECTIONS,
// default 2, for half as long): latency when the server is not saturated. After each run, per 1,000 mutations: counter rows
// written (pg_stat_user_tables, inserts + updates of the counter table) and statements that wrote
// it (see Target.counterWrites), then drift (counts vs COUNT(*)). Also, from /proc, the CPU the
// server (with its child processes), PostgreSQL and Redis spent per 1,000 responses of the
// saturating run: PostgreSQL and Redis machine-wide, so run nothing else against them.
//
// Environment: BENCH_DURATION_S (10), BENCH_WARMUP_S (2), BENCH_CONNECTIONS (32),
// BENCH_SYSTEMS (tally,naive,django,django-cta), BENCH_MIXES (uniform,hot), BENCH_HTTP_PROCESSES
// (Tally's TALLY_HTTP_PROCESSES: HTTP processes beside the worker, default 1: on 2 cores a second
// one measured slower — Django runs 4),
// BENCH_NODE_ARGS (node flags for Tally, e.g. "--cpu-prof --cpu-prof-dir=.bench/prof"),
// BENCH_REDIS_URL / BENCH_DATABASE_URL (e.g. a Redis of Tally's own when others share the machine's).

const DURATION_S = Number(process.env['BENCH_DURATION_S'] ?? 10);
const WARMUP_S = Number(process.env['BENCH_WARMUP_S'] ?? 2);
const CONNECTIONS = Number(process.env['BENCH_CONNECTIONS'] ?? 32);
const MODERATE_CONNECTIONS = Number(process.env['BENCH_MODERATE_CONNECTIONS'] ?? 2);
const SYSTEMS = (process.env['BENCH_SYSTEMS'] ?? 'tally,naive,django,django-cta').split(',');
const MIXES = (process.env['BENCH_MIXES'] ?? 'uniform,hot').split(',');
const HTTP_PROCESSES = process.env['BENCH_HTTP_PROCESSES'] ?? '1';
const NODE_ARGS = (process.env['BENCH_NODE_ARGS'] ?? '').split(' ').filter(Boolean);
const USERS = 10_000;
const BASE = 2 * USERS;
const HOT_FIRST = BASE + 1;
const HOT_COUNT = 20_000;
const HOT_SHARE: Record<string, number> = { uniform: 0, hot: 0.9 };
const SCRIPT = resolve(REPO_ROOT, 'bench/inbox/mix.lua');
const DJANGO_DIR = resolve(REPO_ROOT, '../shared/baselines/seed2_django');
const DJANGO_DB = 'inbox_bench_django';
const PYTHON = '/usr/bin/python3';
const GUNICORN = '/usr/bin/gunicorn';
const DEADLINE_MS = 10 * 60_000;

const say = (line: string) => process.stdout.write(line + '\n');
const sleep = (msec: number) => new Promise((r) => setTimeout(r, msec));

interface Wrk {
  responses: number;
  seconds: number;
  socketErrors: number;
  statusErrors: number;
  p50: number;
  p99: number;
  creates: number;
  reads: number;
  counts: number;
  /** Mark-seens and archives (flavour "states" only). */
  states: number;
}

async function wrk(url: string, flavour: string, hot: number, seconds: number, auth?: string, connections = CONNECTIONS): Promise<Wrk> {
  const result = await run(
    'wrk',
    [
      '-t2',
      `-c${connections}`,
      `-d${seconds}s`,
      '--timeout',
      '5s',
      '-s',
      SCRIPT,
      url,
      '--',
      flavour,
      String(USERS),
      String(hot),
      String(BASE),
      String(HOT_FIRST),
      String(HOT_COUNT),
    ],
    { env: auth ? { BENCH_AUTH: auth } : {}, timeoutMs: (seconds + 20) * 1000 },
  );
  const line = result.stdout.split('\n').find((l) => l.startsWith('WRK_JSON '));
  if (result.code !== 0 || !line) throw new Error(`wrk failed (exit ${result.code}):\n${result.stdout}\n${result.stderr}`);
  const r = JSON.parse(line.slice(9)) as Record<string, number>;
  return {
    responses: r['responses']!,
    seconds: r['duration_us']! / 1e6,
    socketErrors: r['socket_errors']!,
    statusErrors: r['status_errors']!,
    p50: r['p50']! / 1000,
    p99: r['p99']! / 1000,
    creates: r['creates']!,
    reads: r['reads']!,
    counts: r['counts']!,
    states: (r['seens'] ?? 0) + (r['archives'] ?? 0),
  };
}

/**
 * One request at a time, as long as `running()`: the latency a client sees while wrk loads the
 * server. node:http on one kept-alive socket, not fetch: a lighter client takes less of the CPU
 * the server needs, and adds less of its own time to what it measures.
 */
async function probe(running: () => boolean, next: () => { method: string; url: string }, auth?: string): Promise<number[]> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const headers = auth ? { authorization: auth } : {};
  const once = (method: string, url: string) =>
    new Promise<number | null>((resolve) => {
      const req = http.request(url, { method, headers, agent, timeout: 5000 }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? null));
      });
      req.on('timeout', () => req.destroy());
      req.on('error', () => resolve(null));
      req.end();
    });
  const out: number[] = [];
  try {
    while (running()) {
      const { method, url } = next();
      const t0 = performance.now();
      const status = await once(method, url);
      if (status !== null && status < 500) out.push(performance.now() - t0);
      await sleep(2);
    }
  } finally {
    agent.destroy();
  }
  return out;
}

const pct = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
};

interface Target {
  /** The mix wrk sends (bench/inbox/mix.lua): 'states' is Tally's, with mark-seen and archive. */
  flavour: 'states' | 'tally' | 'django';
  url: string;
  /** The server's process (its descendants count with it: Tally's worker, gunicorn's workers). */
  pid: number;
  auth?: string;
  /**
   * Writes of the counter table so far, read once the server stopped: rows (inserts + updates)
   * and statements that wrote it. Tally: counted by a statement trigger (countStatements: its
   * flush writes unread_counts with INSERT … ON CONFLICT only); the naive path and Django: one
   * statement per counter row written (each bump is one single-row statement; their bumps that
   * matched no row are not counted, which favours them).
   */
  counterWrites(): Promise<{ rows: number; statements: number }>;
  stop(): Promise<void>;
  /** |stored - real| summed over users, after the server stopped. */
  drift(): Promise<number>;
  cleanup(): Promise<void>;
}

const rand = (n: number) => 1 + Math.floor(Math.random() * n);
const pickUser = (hot: number) => (Math.random() < hot ? rand(10) : rand(USERS));
const pickNotification = (hot: number) => (Math.random() < hot ? HOT_FIRST + rand(HOT_COUNT) - 1 : rand(BASE));

async function withClient<T>(database: string | null, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const url = new URL(DATABASE_URL);
  if (database) url.pathname = `/${database}`;
  const client = new pg.Client({ connectionString: url.toString() });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/**
 * Notifications 1..BASE for users 1..USERS, HOT_FIRST.. for users 1..10; counts to match in
 * `counts` (Tally's inbox_counts, or the naive path's unread_counts).
 */
async function seedTallyTables(schema: string, siteId: string, counts: 'inbox_counts' | 'unread_counts'): Promise<void> {
  await withClient(null, async (c) => {
    await c.query(`SET search_path = ${schema}`);
    await c.query(
      `INSERT INTO notifications (site_id, id, user_id, title)
       SELECT $1, g::text, (((g - 1) % ${USERS}) + 1)::text, 'seed' FROM generate_series(1, ${BASE}) g
       UNION ALL
       SELECT $1, g::text, (((g - ${HOT_FIRST}) % 10) + 1)::text, 'seed' FROM generate_series(${HOT_FIRST}, ${HOT_FIRST + HOT_COUNT - 1}) g`,
      [siteId],
    );
    const columns = counts === 'inbox_counts' ? 'unseen, unread, total' : 'unread';
    const values = counts === 'inbox_counts' ? 'count(*), count(*), count(*)' : 'count(*)';
    await c.query(
      `INSERT INTO ${counts} (site_id, user_id, ${columns}) SELECT site_id, user_id, ${values} FROM notifications WHERE site_id = $1 GROUP BY site_id, user_id`,
      [siteId],
    );
    await c.query(`ANALYZE notifications; ANALYZE ${counts}`);
  });
}

async function tableWrites(database: string | null, schema: string, table: string): Promise<number> {
  await sleep(500); // backends flush their statistics as they exit
  return withClient(database, async (c) => {
    const r = await c.query('SELECT n_tup_ins + n_tup_upd AS n FROM pg_stat_user_tables WHERE schemaname = $1 AND relname = $2', [
      schema,
      table,
    ]);
    return Number(r.rows[0]?.n ?? 0);
  });
}

/** Counts the INSERT statements on the schema's inbox_counts (Tally's flush runs nothing else on it). */
async function countStatements(schema: string): Promise<void> {
  await withClient(null, async (c) => {
    await c.query(`CREATE SEQUENCE ${schema}.counter_statements`);
    await c.query(`CREATE FUNCTION ${schema}.count_counter_statement() RETURNS trigger LANGUAGE plpgsql
      AS $$ BEGIN PERFORM nextval('${schema}.counter_statements'); RETURN NULL; END $$`);
    await c.query(`CREATE TRIGGER counter_statements AFTER INSERT ON ${schema}.inbox_counts
      FOR EACH STATEMENT EXECUTE FUNCTION ${schema}.count_counter_statement()`);
  });
}

async function counterStatements(schema: string): Promise<number> {
  return withClient(null, async (c) => {
    const r = await c.query(`SELECT CASE WHEN is_called THEN last_value ELSE 0 END AS n FROM ${schema}.counter_statements`);
    return Number(r.rows[0]?.n ?? 0);
  });
}

/** Counter writes of a system that bumps one row per statement. */
const rowStatements = (database: string | null, schema: string, table: string) => async () => {
  const rows = await tableWrites(database, schema, table);
  return { rows, statements: rows };
};

const DRIFT_SQL = `SELECT coalesce(sum(abs(coalesce(c.unread, 0) - coalesce(n.truth, 0))), 0) AS drift
  FROM (SELECT user_id, unread FROM unread_counts WHERE site_id = $1) c
  FULL JOIN (SELECT user_id, count(*) AS truth FROM notifications WHERE site_id = $1 AND read_at IS NULL GROUP BY user_id) n USING (user_id)`;

function tallyConfig(name: string, port = 0) {
  return loadConfig({ REDIS_URL, DATABASE_URL, TALLY_PG_SCHEMA: name, TALLY_REDIS_PREFIX: name, LOG_LEVEL: 'warn', PORT: String(port) });
}

/** Tally from source (tsx), in a schema and key prefix of its own: worker + BENCH_HTTP_PROCESSES HTTP processes. */
async function startTallyTarget(): Promise<Target> {
  const name = `bench_inbox_${Date.now().toString(36)}`;
  const setup = await openContext(tallyConfig(name), pino({ level: 'warn' }));
  const site = await setup.sites.create('bench');
  await setup.close();
  await seedTallyTables(name, site.id, 'inbox_counts');
  await countStatements(name);
  const port = await freePort();
  const proc = start(process.execPath, [...NODE_ARGS, '--import', 'tsx', 'src/cli.ts', 'serve'], {
    cwd: REPO_ROOT,
    env: {
      REDIS_URL,
      DATABASE_URL,
      TALLY_PG_SCHEMA: name,
      TALLY_REDIS_PREFIX: name,
      PORT: String(port),
      HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
      NODE_ENV: 'production',
      TALLY_HTTP_PROCESSES: HTTP_PROCESSES,
    },
  });
  const url = `http://127.0.0.1:${port}`;
  await waitForHttp(`${url}/readyz`, proc);
  return {
    flavour: 'states',
    url,
    pid: proc.pid,
    auth: `Bearer ${site.secretKey}`,
    counterWrites: async () => ({ rows: await tableWrites(null, name, 'inbox_counts'), statements: await counterStatements(name) }),
    stop: () => stop(proc, 15_000),
    async drift() {
      // The reconciler's own measure: durable + buffered against the rows, every count of every user.
      const ctx = await openContext(tallyConfig(name), pino({ level: 'warn' }));
      try {
        const report = await reconcileAll({ ...ctx, counter: createUnreadCounter(ctx) }, site.id, { staleMs: 0 });
        return report.drift;
      } finally {
        await ctx.close();
      }
    },
    async cleanup() {
      await unlinkMatching(REDIS_URL, `${name}:*`);
      await withClient(null, async (c) => void (await c.query(`DROP SCHEMA ${name} CASCADE`)));
    },
  };
}

async function startNaiveTarget(): Promise<Target> {
  const schema = `bench_naive_${Date.now().toString(36)}`;
  const db = connectPostgres({ connectionString: DATABASE_URL, schema });
  await migrate(db, schema);
  await db.query(
    "INSERT INTO sites (id, name, write_key_hash, secret_key_hash, token_signing_key) VALUES ('naive', 'naive', 'w', 's', 'k')",
  );
  // The naive path's own counter table: one unread number per user, bumped by every mutation.
  await db.query(
    'CREATE TABLE unread_counts (site_id text NOT NULL, user_id text NOT NULL, unread bigint NOT NULL DEFAULT 0, PRIMARY KEY (site_id, user_id))',
  );
  await db.close();
  await seedTallyTables(schema, 'naive', 'unread_counts');
  const port = await freePort();
  const proc = start(process.execPath, ['--import', 'tsx', 'bench/inbox/naive-server.ts'], {
    cwd: REPO_ROOT,
    env: { DATABASE_URL, SCHEMA: schema, SITE: 'naive', PORT: String(port) },
  });
  const url = `http://127.0.0.1:${port}`;
  await waitForHttp(`${url}/v1/users/1/notifications/count`, proc);
  return {
    flavour: 'tally',
    url,
    pid: proc.pid,
    counterWrites: rowStatements(null, schema, 'unread_counts'),
    stop: () => stop(proc),
    drift: () =>
      withClient(null, async (c) => {
        await c.query(`SET search_path = ${schema}`);
        return Number((await c.query(DRIFT_SQL, ['naive'])).rows[0]?.drift ?? 0);
      }),
    cleanup: () => withClient(null, async (c) => void (await c.query(`DROP SCHEMA ${schema} CASCADE`))),
  };
}

async function startDjangoTarget(mode: string): Promise<Target> {
  if (!existsSync(GUNICORN))
    throw new Error('gunicorn is missing: apt-get install -y python3-django python3-psycopg2 gunicorn python3-redis');
  await withClient(null, async (c) => {
    const exists = await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [DJANGO_DB]);
    if (exists.rowCount === 0) await c.query(`CREATE DATABASE ${DJANGO_DB}`);
  });
  const env = { PGUSER: 'postgres', PGDATABASE: DJANGO_DB, PGPASSWORD: '', CONN_MAX_AGE: '60', COUNTER_MODE: mode };
  const migrated = await run(PYTHON, ['manage.py', 'migrate', '-v', '0'], { cwd: DJANGO_DIR, env, timeoutMs: 120_000 });
  if (migrated.code !== 0) throw new Error(`django migrate failed:\n${migrated.stdout}\n${migrated.stderr}`);
  await withClient(DJANGO_DB, async (c) => {
    await c.query('TRUNCATE notification, user_notifications_count RESTART IDENTITY');
    await c.query(
      `INSERT INTO notification (id, user_id, has_readed)
       SELECT g, ((g - 1) % ${USERS}) + 1, false FROM generate_series(1, ${BASE}) g
       UNION ALL
       SELECT g, ((g - ${HOT_FIRST}) % 10) + 1, false FROM generate_series(${HOT_FIRST}, ${HOT_FIRST + HOT_COUNT - 1}) g`,
    );
    await c.query("SELECT setval('notification_id_seq', (SELECT max(id) FROM notification))");
    await c.query(
      'INSERT INTO user_notifications_count (user_id, unread_count) SELECT user_id, count(*) FROM notification GROUP BY user_id',
    );
    await c.query('ANALYZE notification; ANALYZE user_notifications_count');
  });
  const port = await freePort();
  const proc = start(GUNICORN, ['-w', '4', '-b', `127.0.0.1:${port}`, '--log-level', 'warning', 'seed2.wsgi:application'], {
    cwd: DJANGO_DIR,
    env,
  });
  const url = `http://127.0.0.1:${port}`;
  await waitForHttp(`${url}/u/1/unread`, proc);
  const driftSql = readFileSync(resolve(DJANGO_DIR, 'drift.sql'), 'utf8').replace(/^--.*$/gm, '');
  return {
    flavour: 'django',
    url,
    pid: proc.pid,
    counterWrites: rowStatements(DJANGO_DB, 'public', 'user_notifications_count'),
    stop: () => stop(proc),
    drift: () =>
      withClient(DJANGO_DB, async (c) =>
        Number((Object.values((await c.query(driftSql)).rows[0] ?? {})[0] as { sum_abs_drift: number }).sum_abs_drift),
      ),
    cleanup: async () => undefined,
  };
}

interface Result {
  system: string;
  mix: string;
  rps: number;
  markReadRps: number;
  readP50: number;
  readP99: number;
  countP50: number;
  countP99: number;
  wrkP99: number;
  moderateRps: number;
  moderateCountP50: number;
  moderateCountP99: number;
  rowsPer1k: number;
  statementsPer1k: number;
  drift: number;
  errors: number;
  /** CPU milliseconds per 1,000 responses of the saturating run: the server, PostgreSQL, Redis. */
  cpuPer1k: { server: number; postgres: number; redis: number };
}

async function measure(system: string, mix: string): Promise<Result> {
  const hot = HOT_SHARE[mix] ?? 0;
  const target =
    system === 'tally'
      ? await startTallyTarget()
      : system === 'naive'
        ? await startNaiveTarget()
        : await startDjangoTarget(system === 'django-cta' ? 'checkthenact' : 'rowcount');
  try {
    const before = await target.counterWrites();
    const warm = WARMUP_S > 0 ? await wrk(target.url, target.flavour, hot, WARMUP_S, target.auth) : undefined;
    let running = true;
    const django = target.flavour === 'django';
    const probes = Promise.all([
      probe(
        () => running,
        () => ({
          method: 'POST',
          url: `${target.url}${django ? `/n/${pickNotification(hot)}/read` : `/v1/notifications/${pickNotification(hot)}/read`}`,
        }),
        target.auth,
      ),
      probe(
        () => running,
        () => ({
          method: 'GET',
          url: `${target.url}${django ? `/u/${pickUser(hot)}/unread` : `/v1/users/${pickUser(hot)}/notifications/count`}`,
        }),
        target.auth,
      ),
    ]);
    const cpuBefore = cpuSnapshot();
    const load = await wrk(target.url, target.flavour, hot, DURATION_S, target.auth);
    const cpuAfter = cpuSnapshot();
    running = false;
    const [reads, counts] = await probes;
    // The same mix at a moderate rate (few connections): latency when the server is not saturated.
    running = true;
    const countProbe = probe(
      () => running,
      () => ({
        method: 'GET',
        url: `${target.url}${django ? `/u/${pickUser(hot)}/unread` : `/v1/users/${pickUser(hot)}/notifications/count`}`,
      }),
      target.auth,
    );
    const moderate = await wrk(target.url, target.flavour, hot, Math.max(2, Math.round(DURATION_S / 2)), target.auth, MODERATE_CONNECTIONS);
    running = false;
    const moderateCounts = await countProbe;
    await target.stop();
    const after = await target.counterWrites();
    const mutations = load.creates + load.reads + (warm ? warm.creates + warm.reads : 0) + moderate.creates + moderate.reads + reads.length;
    const ok = load.responses - load.statusErrors;
    // The probes' requests are served in the same window; the saturating run's count dwarfs them.
    const per1k = (seconds: number) => (seconds * 1e6) / Math.max(1, load.responses);
    return {
      system,
      mix,
      rps: ok / load.seconds,
      markReadRps: (ok / load.seconds) * (load.reads / Math.max(1, load.creates + load.reads + load.counts + load.states)),
      readP50: pct(reads, 50),
      readP99: pct(reads, 99),
      countP50: pct(counts, 50),
      countP99: pct(counts, 99),
      wrkP99: load.p99,
      moderateRps: (moderate.responses - moderate.statusErrors) / moderate.seconds,
      moderateCountP50: pct(moderateCounts, 50),
      moderateCountP99: pct(moderateCounts, 99),
      rowsPer1k: ((after.rows - before.rows) / Math.max(1, mutations)) * 1000,
      statementsPer1k: ((after.statements - before.statements) / Math.max(1, mutations)) * 1000,
      drift: await target.drift(),
      errors: load.statusErrors + load.socketErrors,
      cpuPer1k: {
        server: per1k(cpuBetween(cpuBefore, cpuAfter, treeOf(target.pid))),
        postgres: per1k(cpuBetween(cpuBefore, cpuAfter, named('postgres'))),
        redis: per1k(cpuBetween(cpuBefore, cpuAfter, named('redis-server'))),
      },
    };
  } finally {
    await target.stop().catch(() => undefined);
    await target.cleanup().catch(() => undefined);
  }
}

async function main(): Promise<void> {
  const deadline = setTimeout(() => {
    say('bench:inbox ran past its deadline; stopping.');
    process.exit(1);
  }, DEADLINE_MS);
  deadline.unref();
  say(
    `bench:inbox — ${CONNECTIONS} connections, ${DURATION_S} s per run after ${WARMUP_S} s warm-up; 50 % create / 40 % mark-read (Tally: 30 % mark-read, 5 % mark-seen, 5 % archive) / 10 % count; Tally: ${HTTP_PROCESSES} HTTP process(es) + worker`,
  );
  const results: Result[] = [];
  for (const mix of MIXES) {
    for (const system of SYSTEMS) {
      say(`  ${system}, ${mix} …`);
      const result = await measure(system, mix);
      results.push(result);
      say(`    ${int(result.rps)} req/s, drift ${result.drift}`);
    }
  }
  const rows: Row[] = results.map((r) => ({
    system: r.system,
    mix: r.mix,
    'req/s': int(r.rps),
    'mark-read/s': int(r.markReadRps),
    'mark-read p50 / p99': `${ms(r.readP50)} / ${ms(r.readP99)}`,
    'count p50 / p99': `${ms(r.countP50)} / ${ms(r.countP99)}`,
    'wrk p99 (all)': ms(r.wrkP99),
    [`count p50 / p99 at ${MODERATE_CONNECTIONS} conn.`]: `${ms(r.moderateCountP50)} / ${ms(r.moderateCountP99)} (${int(r.moderateRps)} req/s)`,
    'counter rows written / 1k mutations': r.rowsPer1k.toFixed(1),
    'counter statements / 1k mutations': r.statementsPer1k.toFixed(1),
    'CPU ms / 1k req.: server, PostgreSQL, Redis': [r.cpuPer1k.server, r.cpuPer1k.postgres, r.cpuPer1k.redis]
      .map((v) => v.toFixed(0))
      .join(' / '),
    drift: String(r.drift),
    errors: int(r.errors),
  }));
  say('');
  say(table(Object.keys(rows[0] ?? {}), rows));
  say(
    'Counter statements: Tally, statements that wrote inbox_counts (a statement trigger counts them); naive and Django, rows written (one per single-row bump; bumps that matched no row are not counted).',
  );
  const find = (system: string, mix: string) => results.find((r) => r.system === system && r.mix === mix);
  say('');
  for (const mix of MIXES) {
    const tally = find('tally', mix);
    const django = find('django', mix);
    const naive = find('naive', mix);
    if (tally && django) say(`${mix}: Tally ${(tally.rps / django.rps).toFixed(1)}× the Django app's req/s (target ≥ 10×)`);
    if (tally && naive) {
      say(
        `${mix}: Tally ${(tally.markReadRps / naive.markReadRps).toFixed(1)}× the naive path's mark-read throughput (hot target ≥ 5×); ` +
          `${(naive.rowsPer1k / Math.max(tally.rowsPer1k, 0.001)).toFixed(0)}× fewer counter rows written, ` +
          `${(naive.statementsPer1k / Math.max(tally.statementsPer1k, 0.001)).toFixed(0)}× fewer counter statements (hot target ≥ 100× fewer counter-row writes)`,
      );
    }
    if (tally)
      say(
        `${mix}: Tally count p99 ${ms(tally.countP99)} at ${CONNECTIONS} connections (saturated), ${ms(tally.moderateCountP99)} at ${MODERATE_CONNECTIONS} (target < 2 ms at load)`,
      );
  }
}

await main();
process.exit(0);
