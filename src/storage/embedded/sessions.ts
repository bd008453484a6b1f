import type { Keys } from '../keys.js';
import {
  type AssignedSession,
  MAX_SESSIONS_PER_VISITOR,
  SESSION_GAP_MS,
  SESSION_STATE_TTL_SECONDS,
  type SessionFields,
  type Sessions,
} from '../sessions.js';

// Sessions in this process: the rule of src/storage/sessions.ts over a map of visitor states,
// each expiring as Redis's key would (test/realtime-differential.test.ts holds it to
// lua/assign-sessions.lua). The map dies with the process; at start the embedded mode puts back
// what the event store holds of it (src/process/restore-sessions.ts): every session of the last
// state-TTL window, through `restore`, into the same map, so the rule goes on as if the process
// had never stopped. Events the store does not hold were not acknowledged and come again; one
// that started a session starts it again with the same id (derived from the event).

/** A session as the state keeps it: its id, the span of its events' times (ms), its fields. */
export interface KnownSession {
  id: string;
  start: number;
  last: number;
  fields: SessionFields;
}

export interface EmbeddedSessions extends Sessions {
  /**
   * Sets a visitor's state to these sessions (disjoint, as the state held them before the
   * process stopped), known until `until` (ms): the latest MAX_SESSIONS_PER_VISITOR of them.
   */
  restore(siteId: string, visitor: string, sessions: readonly KnownSession[], until: number): void;
}

interface VisitorState {
  /** Sorted by start, disjoint. */
  sessions: KnownSession[];
  until: number;
}

/** Expired states are swept after this many assigns (a lookup drops an expired one at once). */
const SWEEP_EVERY = 1000;

/** Adds a session to a visitor's list, kept sorted by start and to the latest MAX_SESSIONS_PER_VISITOR. */
function insertSession(sessions: KnownSession[], session: KnownSession): void {
  const position = sessions.findIndex((s) => session.start < s.start);
  sessions.splice(position < 0 ? sessions.length : position, 0, session);
  if (sessions.length > MAX_SESSIONS_PER_VISITOR) sessions.shift();
}

export function createEmbeddedSessions(keys: Keys, now: () => number): EmbeddedSessions {
  const states = new Map<string, VisitorState>();
  let assigns = 0;

  function sweep() {
    const at = now();
    for (const [key, state] of states) if (state.until <= at) states.delete(key);
  }

  function assignOne(sessions: KnownSession[], at: number, id: string, fields: SessionFields): KnownSession {
    let best: KnownSession | undefined;
    let bestDistance = Number.POSITIVE_INFINITY;
    for (const s of sessions) {
      if (at < s.start - SESSION_GAP_MS || at > s.last + SESSION_GAP_MS) continue;
      const distance = at < s.start ? s.start - at : at > s.last ? at - s.last : 0;
      if (distance < bestDistance) {
        best = s;
        bestDistance = distance;
      }
    }
    if (best) {
      best.start = Math.min(best.start, at);
      best.last = Math.max(best.last, at);
      return best;
    }
    const session: KnownSession = { id, start: at, last: at, fields };
    insertSession(sessions, session);
    return session;
  }

  return {
    async assign(siteId, visits) {
      if (++assigns % SWEEP_EVERY === 0) sweep();
      const out: AssignedSession[] = [];
      const until = now() + SESSION_STATE_TTL_SECONDS * 1000;
      for (const v of visits) {
        const key = keys.sessionState(siteId, v.visitor);
        let state = states.get(key);
        if (!state || state.until <= now()) states.set(key, (state = { sessions: [], until }));
        state.until = until;
        const session = assignOne(state.sessions, v.at, v.id, { ...v.fields });
        out.push({ session: session.id, fields: { ...session.fields } });
      }
      return out;
    },

    restore(siteId, visitor, sessions, until) {
      const key = keys.sessionState(siteId, visitor);
      if (until <= now()) {
        states.delete(key);
        return;
      }
      const state: VisitorState = { sessions: [], until };
      for (const s of sessions) insertSession(state.sessions, { ...s, fields: { ...s.fields } });
      states.set(key, state);
    },
  };
}
