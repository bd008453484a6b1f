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
// lua/assign-sessions.lua). The state dies with the process: after a restart a visitor's next
// event starts a session (a redelivered event that started one gets the same id again).

interface Session {
  id: string;
  start: number;
  last: number;
  fields: SessionFields;
}

interface VisitorState {
  /** Sorted by start, disjoint. */
  sessions: Session[];
  until: number;
}

/** Expired states are swept after this many assigns (a lookup drops an expired one at once). */
const SWEEP_EVERY = 1000;

export function createEmbeddedSessions(keys: Keys, now: () => number): Sessions {
  const states = new Map<string, VisitorState>();
  let assigns = 0;

  function sweep() {
    const at = now();
    for (const [key, state] of states) if (state.until <= at) states.delete(key);
  }

  function assignOne(sessions: Session[], at: number, id: string, fields: SessionFields): Session {
    let best: Session | undefined;
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
    const session: Session = { id, start: at, last: at, fields };
    const position = sessions.findIndex((s) => at < s.start);
    sessions.splice(position < 0 ? sessions.length : position, 0, session);
    if (sessions.length > MAX_SESSIONS_PER_VISITOR) sessions.shift();
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
  };
}
