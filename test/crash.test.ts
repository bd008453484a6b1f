import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openEventEngine } from '../src/events/engine.js';
import { createEventStore } from '../src/events/event-store.js';
import { connectPostgres } from '../src/storage/postgres.js';
import { DATABASE_URL, dropTestData, eventually, REDIS_URL, testConfig, uniqueName } from './helpers.js';
import { type ServerProcess, startServerProcess, stopServerProcess } from './server-process.js';

// kill -9 of the whole server (collector, processor and flusher in one process) while clients
// keep sending and retrying, as SDKs do: nothing acknowledged is lost, nothing is counted twice,
// in Redis, once flushed, in PostgreSQL, and in the columnar event store (a kill may land in the
// middle of a segment's write: the redelivered entries are written once).

const USERS = 10;
const PRODUCTS = 5;
const BATCHES = 60;
const PER_BATCH = 50;

describe('crash of a Tally process (kill -9)', () => {
  const env: Record<string, string> = {
    REDIS_URL,
    DATABASE_URL,
    TALLY_PG_SCHEMA: uniqueName('crash'),
    TALLY_REDIS_PREFIX: uniqueName('crash'),
    TALLY_CLAIM_IDLE_MS: '500',
    TALLY_FLUSH_INTERVAL_MS: '50',
    TALLY_EVENTS_DIR: mkdtempSync(join(tmpdir(), 'tally-crash-events-')),
  };
  const servers: ServerProcess[] = [];
  afterAll(async () => {
    for (const s of servers) await stopServerProcess(s, 'SIGKILL');
    await dropTestData(testConfig('external', env));
    rmSync(env['TALLY_EVENTS_DIR'] as string, { recursive: true, force: true });
  });

  it('loses no acknowledged event and counts each once, across two kills', { timeout: 180_000 }, async () => {
    let server = await startServerProcess(env);
    servers.push(server);
    const { writeKey, secretKey } = server;
    const auth = 'Basic ' + Buffer.from(`${writeKey}:`).toString('base64');

    const batchBody = (b: number) =>
      JSON.stringify({
        batch: Array.from({ length: PER_BATCH }, (_, i) => {
          const n = b * PER_BATCH + i;
          return {
            type: 'track',
            userId: `u${n % USERS}`,
            event: 'Product Clicked',
            properties: { product_id: `p${n % PRODUCTS}` },
            messageId: `m${n}`,
          };
        }),
      });

    let acknowledged = 0;
    const sendWithRetry = async (b: number) => {
      for (;;) {
        try {
          const res = await fetch(`${server.url}/v1/batch`, {
            method: 'POST',
            headers: { authorization: auth, 'content-type': 'application/json' },
            body: batchBody(b),
          });
          if (res.status === 200) {
            acknowledged += 1;
            return;
          }
        } catch {
          // The server died under this request: retry the same messageIds, as an SDK does.
        }
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    };

    let next = 0;
    const senders = Array.from({ length: 4 }, async () => {
      while (next < BATCHES) await sendWithRetry(next++);
    });
    const killer = (async () => {
      for (const at of [BATCHES / 3, (2 * BATCHES) / 3]) {
        while (acknowledged < at) await new Promise((resolve) => setTimeout(resolve, 5));
        await stopServerProcess(server, 'SIGKILL');
        server = await startServerProcess(env);
        servers.push(server);
      }
    })();
    await Promise.all([...senders, killer]);
    expect(acknowledged).toBe(BATCHES);

    const perProduct = (BATCHES * PER_BATCH) / PRODUCTS;
    const perUser = (BATCHES * PER_BATCH) / USERS;
    const get = async (path: string) => (await fetch(server.url + path, { headers: { authorization: `Bearer ${secretKey}` } })).json();
    await eventually(
      async () => {
        for (let p = 0; p < PRODUCTS; p++)
          expect(await get(`/v1/stats/products/p${p}`)).toEqual({ productId: `p${p}`, clicks: perProduct, uniqueUsers: 2 });
        for (let u = 0; u < USERS; u++) expect(await get(`/v1/stats/users/u${u}`)).toMatchObject({ clicks: perUser, productsClicked: 1 });
      },
      60_000,
      250,
    );

    const db = connectPostgres({ connectionString: DATABASE_URL, schema: env['TALLY_PG_SCHEMA'] as string });
    try {
      await eventually(
        async () => {
          const rows = await db.query<{ name: string; value: number }>("SELECT name, value FROM counters WHERE name LIKE 'p:%|clicks'");
          expect(rows.rows.map((r) => r.value)).toEqual(Array(PRODUCTS).fill(perProduct));
        },
        30_000,
        250,
      );
      const site = (await db.query<{ id: string }>('SELECT id FROM sites')).rows[0]!.id;
      const engine = await openEventEngine({ threads: 1 });
      try {
        const store = createEventStore({ root: env['TALLY_EVENTS_DIR'] as string, engine, graceMs: 60_000, dirtyWindowMs: 500 });
        // Written before the acknowledgement, after the count: the last writes may still be landing.
        await eventually(async () => {
          const snapshot = await store.snapshot(site, -8.64e15, 8.64e15);
          try {
            const [stored] = await store.sql.all('SELECT count(*) AS n, count(DISTINCT message_id) AS ids FROM read_parquet($1)', [
              snapshot.files,
            ]);
            expect({ n: Number(stored!['n']), ids: Number(stored!['ids']) }).toEqual({ n: BATCHES * PER_BATCH, ids: BATCHES * PER_BATCH });
          } finally {
            snapshot.release();
          }
        });
      } finally {
        engine.close();
      }
    } finally {
      await db.close();
    }
  });
});
