import { hash } from 'node:crypto';
import type { EventRow } from '../events/event-row.js';
import type { AssignedSession, SessionFields, Sessions } from '../storage/sessions.js';
import type { Counted } from './aggregate.js';

// The event store's row of each counted event: what enrichment found (src/process/enrich.ts),
// plus the session it belongs to, whose first event fixes the session-level columns (entry
// page, source, referrer, UTM) for all of its events. The client's IP is not among them: it was
// only used to place the visitor (country, region) and, without an id, to hash the visitor.

export type EventRows = (siteId: string, counted: readonly Counted[]) => Promise<EventRow[]>;

/**
 * A session's id is derived from the event that starts it, so a redelivered first event (or the
 * same events assigned again after the state was lost) starts a session of the same id.
 */
function sessionId(siteId: string, visitor: string, messageId: string): string {
  return hash('sha256', `${siteId}\n${visitor}\n${messageId}`, 'hex').slice(0, 16);
}

/** What this event would fix for its session if it starts one. */
function ownSessionFields({ enriched: e }: Counted): SessionFields {
  return {
    entry_page: e.page ?? null,
    source: e.source,
    referrer: e.referrerUrl ?? null,
    referrer_host: e.referrer ?? null,
    utm_source: e.utm.source ?? null,
    utm_medium: e.utm.medium ?? null,
    utm_campaign: e.utm.campaign ?? null,
    utm_term: e.utm.term ?? null,
    utm_content: e.utm.content ?? null,
  };
}

export function createEventRows(deps: { sessions: Sessions }): EventRows {
  return async function eventRows(siteId, counted) {
    // In time order (stable): within a batch, the earliest of a visitor's events starts its
    // session, whatever order the batch brought them in.
    const order = counted.map((_, i) => i).sort((a, b) => (counted[a] as Counted).enriched.at - (counted[b] as Counted).enriched.at);
    const assigned = await deps.sessions.assign(
      siteId,
      order.map((i) => {
        const c = counted[i] as Counted;
        return {
          visitor: c.enriched.visitor,
          at: c.enriched.at,
          id: sessionId(siteId, c.enriched.visitor, c.message.messageId),
          fields: ownSessionFields(c),
        };
      }),
    );
    const sessions: AssignedSession[] = new Array(counted.length);
    for (const [n, i] of order.entries()) sessions[i] = assigned[n] as AssignedSession;
    return counted.map(({ message: m, enriched: e }, i): EventRow => {
      const { session, fields } = sessions[i] as (typeof sessions)[number];
      return {
        site_id: siteId,
        message_id: m.messageId,
        ts: e.at,
        type: m.type,
        kind: e.kind,
        name: e.event ?? null,
        visitor: e.visitor,
        session,
        user_id: e.user ?? null,
        hostname: e.hostname ?? null,
        page: e.page ?? null,
        ...fields,
        browser: e.browser,
        os: e.os,
        device: e.device,
        country: e.country ?? null,
        region: e.region ?? null,
        product: e.product ?? null,
        revenue: e.revenue ?? null,
        engaged_ms: e.engagedMs,
        props: e.props,
        bot: e.bot,
      };
    });
  };
}
