import type { Logger } from 'pino';
import { startLoop } from '../lifecycle/background-loop.js';
import type { Db } from '../storage/db.js';
import type { QueueConsumer } from '../storage/ingest-queue.js';
import type { Keys } from '../storage/keys.js';
import type { Realtime } from '../storage/realtime.js';
import type { Counted } from './aggregate.js';
import type { BatchSink } from './processor.js';

// Raw events to PostgreSQL: one INSERT … SELECT FROM jsonb_to_recordset per batch into the day-partitioned
// events table, ON CONFLICT DO NOTHING on (site_id, day, message_id) (see migrations/0006).
// PostgreSQL being down must not stop counting: a batch it refuses is parked in a Redis stream
// (the backlog) and the processor goes on; a catch-up loop writes the backlog, in order, once
// PostgreSQL answers again.

const BACKLOG_GROUP = 'raw-writer';
/** Parked batches before the sink gives up (and the processor retries the entry later). */
const MAX_BACKLOG = 1_000_000;
const CATCH_UP_BATCH = 20;

export interface RawRow {
  s: string;
  d: string;
  id: string;
  type: string;
  ts: string;
  rt: string;
  v: string;
  u: string | null;
  a: string | null;
  e: string | null;
  n: string | null;
  g: string | null;
  pu: string | null;
  p: unknown;
  c: unknown;
  t: unknown;
}

function toRow(siteId: string, { message: m, enriched }: Counted): RawRow {
  return {
    s: siteId,
    d: m.timestamp.slice(0, 10),
    id: m.messageId,
    type: m.type,
    ts: m.timestamp,
    rt: m.receivedAt,
    v: enriched.visitor,
    u: m.userId ?? null,
    a: m.anonymousId ?? null,
    e: m.event ?? null,
    n: m.name ?? null,
    g: m.groupId ?? null,
    pu: m.previousUserId ?? null,
    p: m.properties,
    c: m.context,
    t: m.traits,
  };
}

export function createRawEventWriter(deps: { db: Db; realtime: Pick<Realtime, 'queue'>; keys: Keys; log: Logger }) {
  const partitions = new Set<string>();

  async function ensurePartitions(days: Iterable<string>): Promise<void> {
    for (const day of days) {
      if (partitions.has(day) || !/^\d{4}-\d{2}-\d{2}$/.test(day)) continue;
      const next = new Date(Date.parse(`${day}T00:00:00Z`) + 86_400_000).toISOString().slice(0, 10);
      try {
        await deps.db.exec(
          `CREATE TABLE IF NOT EXISTS events_${day.replace(/-/g, '')} PARTITION OF events FOR VALUES FROM ('${day}') TO ('${next}')`,
        );
      } catch (err) {
        // Another process created it between our check and our statement.
        const code = (err as { code?: string }).code;
        if (code !== '42P07' && code !== '23505') throw err;
      }
      partitions.add(day);
    }
  }

  /**
   * One statement for the whole batch; rows already there (a replay) are skipped. The rows go
   * as one JSON document (JSON.stringify is native; sixteen text arrays cost an escaping pass
   * per element in Node and a second parse of every JSON column in PostgreSQL). It is read as
   * jsonb: parsed once, its nested objects go to the jsonb columns as they are, where
   * json_to_recordset parsed each one a second time, costing PostgreSQL CPU on every row.
   */
  async function insert(rows: readonly RawRow[]): Promise<void> {
    if (rows.length === 0) return;
    await ensurePartitions(new Set(rows.map((r) => r.d)));
    await deps.db.query(
      `INSERT INTO events (site_id, day, message_id, type, ts, received_at, visitor, user_id, anonymous_id,
                           event, name, group_id, previous_user_id, properties, context, traits)
       SELECT s, d, id, type, ts, rt, v, u, a, e, n, g, pu, p, c, t
       FROM jsonb_to_recordset($1::jsonb) AS r(s text, d date, id text, type text, ts timestamptz, rt timestamptz,
                                              v text, u text, a text, e text, n text, g text, pu text,
                                              p jsonb, c jsonb, t jsonb)
       ON CONFLICT (site_id, day, message_id) DO NOTHING`,
      [JSON.stringify(rows)],
    );
  }

  const sink: BatchSink = async (bySite) => {
    const rows: RawRow[] = [];
    for (const [siteId, counted] of bySite) for (const c of counted) rows.push(toRow(siteId, c));
    if (rows.length === 0) return;
    try {
      await insert(rows);
    } catch (err) {
      deps.log.warn({ err: (err as Error).message, rows: rows.length }, 'raw events parked in the backlog: PostgreSQL refused them');
      const parked = await deps.realtime.queue.enqueue(deps.keys.rawBacklog, JSON.stringify(rows), MAX_BACKLOG);
      if (parked === null) throw new Error('the raw-event backlog is full');
    }
  };

  /** Writes parked batches until the backlog is empty, PostgreSQL fails again or a stop; returns rows written. */
  async function catchUp(reader: QueueConsumer, signal: AbortSignal): Promise<number> {
    let written = 0;
    while (!signal.aborted) {
      const entries = await reader.read(CATCH_UP_BATCH, 0);
      if (entries.length === 0) break;
      const rows = entries.flatMap((e) => JSON.parse(e.payload) as RawRow[]);
      await insert(rows);
      await reader.ack(entries.map((e) => e.id));
      written += rows.length;
    }
    return written;
  }

  /** Writes the backlog every intervalMs until stopped. */
  function startCatchUp(intervalMs: number): { stop(): Promise<void> } {
    const consumer = `raw-${process.pid}`;
    let reader: QueueConsumer | undefined;
    const loop = startLoop({
      name: 'raw-event catch-up',
      log: deps.log,
      intervalMs,
      async step(signal) {
        reader ??= await deps.realtime.queue.openConsumer(deps.keys.rawBacklog, BACKLOG_GROUP, consumer);
        // Entries a failed pass of ours, or a crashed writer, left unacknowledged come first.
        const own = await reader.readOwnPending(CATCH_UP_BATCH);
        const stale = own.length > 0 ? own : await reader.claimStale(60_000, CATCH_UP_BATCH);
        if (stale.length > 0) {
          await insert(stale.flatMap((e) => JSON.parse(e.payload) as RawRow[]));
          await reader.ack(stale.map((e) => e.id));
        }
        const written = await catchUp(reader, signal);
        if (written > 0) deps.log.info({ rows: written }, 'raw-event backlog written to PostgreSQL');
        return undefined;
      },
    });
    return {
      async stop() {
        await loop.stop();
        await reader?.close();
      },
    };
  }

  return { sink, insert, startCatchUp };
}
