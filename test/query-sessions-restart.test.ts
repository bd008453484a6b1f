import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/app.js';
import { type Config, loadConfig } from '../src/config.js';
import { type Context, openContext } from '../src/context.js';
import type { CreatedSite } from '../src/sites/site-repository.js';
import { startWorker, type Worker } from '../src/worker.js';
import { eventually, silentLog, uniqueName } from './helpers.js';

// The embedded mode's session state outlives a restart (src/process/restore-sessions.ts): a
// visitor's events before a stop and after the next start, minutes apart, are one visit in the
// query API, with the fields its first event fixed; one after a 30-minute gap starts another.
// Real PGlite and event-store files in one DATA_DIR, opened twice; event times, not sleeps.

const now = Date.now();
const ago = (minutes: number) => new Date(now - minutes * 60_000).toISOString();
const page = (id: string, path: string, at: string, search = '') => ({
  type: 'page',
  anonymousId: 'ann',
  messageId: id,
  timestamp: at,
  context: {
    userAgent: 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36',
    page: { path, url: `https://shop.example${path}${search}`, referrer: '' },
  },
});

interface Running {
  ctx: Context;
  app: FastifyInstance;
  worker: Worker;
  stop(): Promise<void>;
}

async function start(config: Config): Promise<Running> {
  const ctx = await openContext(config, silentLog);
  const app = await buildApp(ctx, { logger: false });
  const worker = startWorker(ctx);
  return {
    ctx,
    app,
    worker,
    // As SIGTERM does: no more requests, drain the in-process queue, final flush, close.
    async stop() {
      await app.close();
      await worker.stop();
      await ctx.close();
    },
  };
}

describe('embedded sessions across a restart', () => {
  let dir: string;
  let config: Config;
  let site: CreatedSite;
  let running: Running | undefined;

  const send = async (events: Record<string, unknown>[]) => {
    const basic = 'Basic ' + Buffer.from(`${site.writeKey}:`).toString('base64');
    const res = await running?.app.inject({
      method: 'POST',
      url: '/v1/batch',
      headers: { authorization: basic },
      payload: { batch: events },
    });
    expect(res?.statusCode).toBe(200);
  };
  const query = async (body: Record<string, unknown>) => {
    const res = await running?.app.inject({
      method: 'POST',
      url: '/v1/stats/query',
      headers: { authorization: `Bearer ${site.secretKey}` },
      payload: { date_range: '24h', ...body },
    });
    expect(res?.statusCode, res?.body).toBe(200);
    return res?.json().results;
  };
  const totals = async () => (await query({ metrics: ['pageviews', 'visits', 'visit_duration'] }))[0].metrics;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tally-sessions-'));
    config = loadConfig({ DATA_DIR: dir, TALLY_PG_SCHEMA: uniqueName('s'), LOG_LEVEL: 'silent', TALLY_FLUSH_INTERVAL_MS: '100' });
    running = await start(config);
    site = await running.ctx.sites.create('sessions');
    await send([page('a1', '/', ago(40), '?utm_source=newsletter'), page('a2', '/pricing', ago(38))]);
    await eventually(async () => expect(await totals()).toEqual([2, 1, 120]), 20_000);
    await running.stop();
    running = await start(config);
  }, 120_000);
  afterAll(async () => {
    await running?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('keeps a visitor who comes back minutes after the restart in the visit they were in', async () => {
    await send([page('a3', '/cart', ago(35))]);
    // One visit from 40 to 35 minutes ago, not a second one starting at the restart.
    await eventually(async () => expect(await totals()).toEqual([3, 1, 300]), 20_000);
    // The event after the restart carries the fields the visit's first event fixed.
    expect(await query({ metrics: ['pageviews'], dimensions: ['source', 'entry_page'] })).toEqual([
      { dimensions: ['newsletter', '/'], metrics: [3] },
    ]);
  });

  it('starts a new visit after the 30-minute gap', async () => {
    await send([page('a4', '/', ago(2))]);
    await eventually(async () => expect((await totals()).slice(0, 2)).toEqual([4, 2]), 20_000);
    expect(await query({ metrics: ['visits'], dimensions: ['source'] })).toEqual([
      { dimensions: ['Direct'], metrics: [1] },
      { dimensions: ['newsletter'], metrics: [1] },
    ]);
  });
});
