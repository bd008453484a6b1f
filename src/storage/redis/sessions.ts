import type { Keys } from '../keys.js';
import {
  type AssignedSession,
  MAX_SESSIONS_PER_VISITOR,
  SESSION_FIELD_ORDER,
  SESSION_GAP_MS,
  SESSION_STATE_TTL_SECONDS,
  type SessionFields,
  type Sessions,
} from '../sessions.js';
import type { CallScript } from './client.js';

// Sessions in Redis: one call of lua/assign-sessions.lua per batch, every visitor's state under
// the site's hash tag, so several processors assign atomically and the state outlives them.

type Wire = (string | number | null)[];

function fieldsOf(wire: Wire, from: number): SessionFields {
  const fields: Record<string, string | number | null> = {};
  for (const [i, field] of SESSION_FIELD_ORDER.entries()) fields[field] = wire[from + i] ?? null;
  return fields as unknown as SessionFields;
}

export function createRedisSessions(call: CallScript, keys: Keys): Sessions {
  return {
    async assign(siteId, visits) {
      if (visits.length === 0) return [];
      // Grouped by visitor (one state read and write each), each visitor's events kept in order.
      const groups = new Map<string, number[]>();
      for (const [i, v] of visits.entries()) {
        const positions = groups.get(v.visitor);
        if (positions) positions.push(i);
        else groups.set(v.visitor, [i]);
      }
      const stateKeys: string[] = [];
      const wire: [number, Wire[]][] = [];
      for (const [visitor, positions] of groups) {
        stateKeys.push(keys.sessionState(siteId, visitor));
        wire.push([
          stateKeys.length,
          positions.map((i) => {
            const v = visits[i] as (typeof visits)[number];
            return [v.at, v.id, ...SESSION_FIELD_ORDER.map((field) => v.fields[field])];
          }),
        ]);
      }
      const reply = JSON.parse(
        (await call('assign-sessions', stateKeys, [
          SESSION_GAP_MS,
          SESSION_STATE_TTL_SECONDS,
          MAX_SESSIONS_PER_VISITOR,
          JSON.stringify(wire),
        ])) as string,
      ) as { s: Wire[]; v: number[] };
      const sessions = reply.s.map((s): AssignedSession => ({ session: String(s[0]), fields: fieldsOf(s, 1) }));
      const out: AssignedSession[] = new Array(visits.length);
      let n = 0;
      for (const positions of groups.values()) {
        for (const i of positions) out[i] = sessions[reply.v[n++] as number] as AssignedSession;
      }
      return out;
    },
  };
}
