import { SqlParams, tsParam, withEventSource } from './event-source.js';
import type { EventSource } from './run-query.js';

// A signed-in user's events (API.md "A user's events"), newest first, a page at a time. The
// cursor is the (time, messageId) of the last event of the page before: events with the same
// millisecond are ordered by messageId, so pages neither repeat nor skip one. Bots are included:
// this is the record of what the user's id did, not a statistic.

export const MAX_USER_EVENTS_LIMIT = 1000;
export const DEFAULT_USER_EVENTS_LIMIT = 100;

export interface UserEventsPosition {
  /** Epoch ms. */
  ts: number;
  messageId: string;
}

export interface UserEventsQuery {
  siteId: string;
  userId: string;
  fromMs: number;
  toMs: number;
  /** Only track events of this name. */
  event?: string;
  limit: number;
  /** Events strictly before this position (the page before's last). */
  after?: UserEventsPosition;
}

export interface UserEvent {
  type: string;
  event?: string;
  page?: string;
  /** The event's custom properties, as stored. */
  properties: Record<string, string>;
  timestamp: string;
  messageId: string;
}

export interface UserEventsPage {
  items: UserEvent[];
  nextCursor: string | null;
}

/** The opaque cursor of a position. */
export function encodeUserEventsCursor(position: UserEventsPosition): string {
  return Buffer.from(`${position.ts}:${position.messageId}`, 'utf8').toString('base64url');
}

/** The position of a cursor this module made, or null for anything else. */
export function decodeUserEventsCursor(cursor: string): UserEventsPosition | null {
  const match = /^(\d{1,15}):(.+)$/s.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  if (!match) return null;
  const position = { ts: Number(match[1]), messageId: match[2] as string };
  return encodeUserEventsCursor(position) === cursor ? position : null;
}

export function userEventsSql(source: string, query: UserEventsQuery): { sql: string; params: readonly unknown[] } {
  const params = new SqlParams();
  const where = [
    `site_id = ${params.add(query.siteId)}`,
    `user_id = ${params.add(query.userId)}`,
    `ts >= ${tsParam(params, query.fromMs)}`,
    `ts < ${tsParam(params, query.toMs)}`,
  ];
  if (query.event !== undefined) where.push(`name = ${params.add(query.event)}`);
  if (query.after) {
    const at = tsParam(params, query.after.ts);
    where.push(`(ts < ${at} OR (ts = ${at} AND message_id < ${params.add(query.after.messageId)}))`);
  }
  const sql = `SELECT type, name, page, props,
      epoch_ms(ts)::DOUBLE AS t, message_id
    FROM ${source} WHERE ${where.join(' AND ')}
    ORDER BY ts DESC, message_id DESC LIMIT ${params.add(query.limit + 1)}::INTEGER`;
  return { sql, params: params.values };
}

function toUserEvent(row: Record<string, unknown>): UserEvent {
  const event: UserEvent = {
    type: String(row['type']),
    // The store's own JSON object of strings (src/events/event-row.ts).
    properties: typeof row['props'] === 'string' ? (JSON.parse(row['props']) as Record<string, string>) : {},
    timestamp: new Date(Number(row['t'])).toISOString(),
    messageId: String(row['message_id']),
  };
  if (typeof row['name'] === 'string') event.event = row['name'];
  if (typeof row['page'] === 'string') event.page = row['page'];
  return event;
}

export async function queryUserEvents(deps: EventSource, query: UserEventsQuery): Promise<UserEventsPage> {
  const toMs = query.after ? Math.min(query.toMs, query.after.ts + 1) : query.toMs;
  if (toMs <= query.fromMs) return { items: [], nextCursor: null };
  const rows = await withEventSource(
    deps,
    query.siteId,
    query.fromMs,
    toMs,
    (source) => {
      const { sql, params } = userEventsSql(source, { ...query, toMs });
      return deps.sql.all(sql, params);
    },
    () => [],
  );
  const items = rows.slice(0, query.limit).map(toUserEvent);
  const last = items[items.length - 1];
  const more = rows.length > query.limit && last !== undefined;
  return { items, nextCursor: more ? encodeUserEventsCursor({ ts: Date.parse(last.timestamp), messageId: last.messageId }) : null };
}
