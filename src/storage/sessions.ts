// Which session each event belongs to, for the event store's rows (src/process/event-rows.ts).
// A visitor's events with gaps of at most SESSION_GAP_MS share a session; the event that starts
// a session fixes its session-level fields (entry page, source, referrer, UTM), which every
// later event of the session carries, as Plausible's sessions do. The state is shared by every
// processor and outlives them: Redis keeps it per visitor (lua/assign-sessions.lua), the embedded
// default in this process (src/storage/embedded/sessions.ts); test/realtime-sessions.test.ts is
// the contract, test/realtime-differential.test.ts holds the two together.
//
// The rule, for each event in the order given: the visitor's known sessions are disjoint time
// intervals [start, last]; the event joins the one it is nearest to among those within the gap
// (the earlier one on a tie) and stretches it to include its time, or else starts a session of
// its own, with the id it brings. So events arriving out of order still join the session they
// fall into, a redelivered event (already inside its session's interval) gets the same session
// again and changes nothing, and a session's id and fields never change once it exists.

import type { EventRow } from '../events/event-row.js';

/** Events further apart than this are in different sessions (Plausible's and GA's 30 minutes). */
export const SESSION_GAP_MS = 30 * 60 * 1000;
/**
 * A visitor's sessions are known this long after their last event: as long as the processor
 * recognises a redelivered event (src/process/aggregate.ts, DEDUPE_TTL_SECONDS), so redelivery
 * finds its session; late events (an app's offline queue) find theirs too.
 */
export const SESSION_STATE_TTL_SECONDS = 25 * 60 * 60;
/** Sessions kept per visitor: the latest ones; an event older than all of them starts another. */
export const MAX_SESSIONS_PER_VISITOR = 8;

/** What a session's first event fixes for the whole session (the event row's column names). */
export type SessionFields = Pick<
  EventRow,
  'entry_page' | 'source' | 'referrer' | 'referrer_host' | 'utm_source' | 'utm_medium' | 'utm_campaign' | 'utm_term' | 'utm_content'
>;

/** The order the fields travel in (Lua state and replies). */
export const SESSION_FIELD_ORDER = [
  'entry_page',
  'source',
  'referrer',
  'referrer_host',
  'utm_source',
  'utm_medium',
  'utm_campaign',
  'utm_term',
  'utm_content',
] as const satisfies readonly (keyof SessionFields)[];

/** One event, as the sessions see it. */
export interface SessionVisit {
  visitor: string;
  /** Event time, ms. */
  at: number;
  /** The session's id if this event starts one: derived from the event, so the same event starts the same session again. */
  id: string;
  /** The session's fields if this event starts one. */
  fields: SessionFields;
}

export interface AssignedSession {
  session: string;
  fields: SessionFields;
}

export interface Sessions {
  /** Each visit's session, in the order given (see the rule above). */
  assign(siteId: string, visits: readonly SessionVisit[]): Promise<AssignedSession[]>;
}
