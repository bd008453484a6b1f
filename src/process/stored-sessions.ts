import { SqlParams, tsParam, withEventSource } from '../query/event-source.js';
import type { EventSource } from '../query/run-query.js';
import { SESSION_FIELD_ORDER, type SessionFields } from '../storage/sessions.js';

// The sessions the event store holds, as the session state knew them: per (visitor, session)
// the span of its events' times and its session-level fields (every event of a session carries
// its first event's: src/process/event-rows.ts). What the embedded mode's state is rebuilt from
// at start (src/process/restore-sessions.ts).

export interface StoredSession {
  visitor: string;
  id: string;
  /** Its first and last event's time, ms. */
  start: number;
  last: number;
  fields: SessionFields;
}

/** One statement over a snapshot: the site's sessions with events at or after fromMs. */
export function storedSessionsSql(source: string, siteId: string, fromMs: number): { sql: string; params: readonly unknown[] } {
  const params = new SqlParams();
  const fields = SESSION_FIELD_ORDER.map((f) => `first(${f} ORDER BY ts) AS ${f}`).join(', ');
  const sql = `SELECT visitor, session, epoch_ms(min(ts))::DOUBLE AS start, epoch_ms(max(ts))::DOUBLE AS last, ${fields}
    FROM ${source} WHERE site_id = ${params.add(siteId)} AND ts >= ${tsParam(params, fromMs)}
    GROUP BY visitor, session`;
  return { sql, params: params.values };
}

const text = (value: unknown): string | null => (typeof value === 'string' ? value : null);

function toStoredSession(row: Record<string, unknown>): StoredSession {
  return {
    visitor: String(row['visitor']),
    id: String(row['session']),
    start: Number(row['start']),
    last: Number(row['last']),
    fields: {
      entry_page: text(row['entry_page']),
      source: String(row['source']),
      referrer: text(row['referrer']),
      referrer_host: text(row['referrer_host']),
      utm_source: text(row['utm_source']),
      utm_medium: text(row['utm_medium']),
      utm_campaign: text(row['utm_campaign']),
      utm_term: text(row['utm_term']),
      utm_content: text(row['utm_content']),
    },
  };
}

/** The site's stored sessions with events at or after fromMs (events of any later time included: a sender's clock may run ahead). */
export async function readStoredSessions(events: EventSource, siteId: string, fromMs: number): Promise<StoredSession[]> {
  const rows = await withEventSource(
    events,
    siteId,
    fromMs,
    Number.POSITIVE_INFINITY,
    (source) => {
      const { sql, params } = storedSessionsSql(source, siteId, fromMs);
      return events.sql.all(sql, params);
    },
    () => [],
  );
  return rows.map(toStoredSession);
}
