import type { EventSource } from '../query/run-query.js';
import type { EmbeddedSessions } from '../storage/embedded/sessions.js';
import { SESSION_STATE_TTL_SECONDS } from '../storage/sessions.js';
import { readStoredSessions, type StoredSession } from './stored-sessions.js';

// Puts the embedded mode's session state back at start (its map died with the last process),
// from the event store: each visitor's sessions with events in the last state-TTL window, known
// for the TTL after the visitor's last event, as the state would have kept them. Must finish
// before the first batch is processed (src/context.ts runs it while opening).

/** Restores the site's session state as of nowMs; returns the number of visitors restored. */
export async function restoreSessions(
  deps: { events: EventSource; sessions: Pick<EmbeddedSessions, 'restore'> },
  siteId: string,
  nowMs: number,
): Promise<number> {
  const ttlMs = SESSION_STATE_TTL_SECONDS * 1000;
  const byVisitor = new Map<string, StoredSession[]>();
  for (const s of await readStoredSessions(deps.events, siteId, nowMs - ttlMs)) {
    const list = byVisitor.get(s.visitor);
    if (list) list.push(s);
    else byVisitor.set(s.visitor, [s]);
  }
  for (const [visitor, sessions] of byVisitor) {
    // The state's expiry counts from the visitor's last assignment: its last event's time stands
    // for it (never later than now: a sender's clock may run ahead).
    const last = Math.min(nowMs, Math.max(...sessions.map((s) => s.last)));
    deps.sessions.restore(siteId, visitor, sessions, last + ttlMs);
  }
  return byVisitor.size;
}
