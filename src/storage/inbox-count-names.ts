// Names of an inbox user's counts: one per cell (tenant, category) and kind. The kept counts of a
// user are a hash of these names; a buffer field (flushed behind to inbox_counts) is the user's
// prefix followed by the name, so the Lua scripts build one from the other by concatenation and
// the flusher reads both back with one JSON.parse. '' stands for "no tenant" / "no category"
// (both are at least one character when given).

export const COUNT_KINDS = ['unseen', 'unread', 'total'] as const;
export type CountKind = (typeof COUNT_KINDS)[number];

const CODE: Record<CountKind, string> = { unseen: 's', unread: 'u', total: 't' };
const KIND: Record<string, CountKind> = { s: 'unseen', u: 'unread', t: 'total' };

export interface CountName {
  kind: CountKind;
  tenant: string;
  category: string;
}

/** `"u","tenant","category"]`: a JSON array without its opening bracket. */
export function countName(kind: CountKind, tenant: string, category: string): string {
  return JSON.stringify([CODE[kind], tenant, category]).slice(1);
}

export function parseCountName(name: string): CountName | null {
  const parts = parseArray(`[${name}`);
  return parts && parts.length === 3 ? countOf(parts) : null;
}

/** `["user",`: what a buffer field of this user starts with. */
export function userPrefix(userId: string): string {
  return `${JSON.stringify([userId]).slice(0, -1)},`;
}

export const bufferField = (userId: string, name: string): string => userPrefix(userId) + name;

/** A buffer field's user and count; null for a field of another format (a delta from before 0014). */
export function parseBufferField(field: string): (CountName & { userId: string }) | null {
  const parts = field.startsWith('[') ? parseArray(field) : null;
  if (parts?.length !== 4 || typeof parts[0] !== 'string') return null;
  const count = countOf(parts.slice(1));
  return count && { ...count, userId: parts[0] };
}

function parseArray(json: string): unknown[] | null {
  try {
    const parsed: unknown = JSON.parse(json);
    return Array.isArray(parsed) ? parsed : null;
  } catch {
    return null;
  }
}

function countOf([code, tenant, category]: unknown[]): CountName | null {
  const kind = typeof code === 'string' && Object.hasOwn(KIND, code) ? KIND[code] : undefined;
  if (!kind || typeof tenant !== 'string' || typeof category !== 'string') return null;
  return { kind, tenant, category };
}
