import { randomUUID } from 'node:crypto';
import Type, { type Static } from 'typebox';
import { Compile } from 'typebox/compile';
import { jsonPointer, TallyError } from '../errors.js';
import { isStorableJson } from '../storage/storable-text.js';

// A Segment-spec message: validated field by field (the path of a bad field goes back to the
// caller), then normalised into what the stream carries.

export const MESSAGE_TYPES = ['track', 'page', 'screen', 'identify', 'group', 'alias'] as const;
export type MessageType = (typeof MESSAGE_TYPES)[number];

/** Segment's limit for one message, in bytes of JSON. */
export const MAX_MESSAGE_BYTES = 32 * 1024;
/** Segment's limit for one batch request body. */
export const MAX_BATCH_BYTES = 500 * 1024;
/** Messages in one batch (at ~200 bytes a message, 500 KB holds about this many). */
export const MAX_BATCH_MESSAGES = 2500;
export const MAX_ID_LENGTH = 256;
export const MAX_NAME_LENGTH = 200;

const Id = Type.Union([Type.String({ minLength: 1, maxLength: MAX_ID_LENGTH }), Type.Integer()]);
const Name = Type.String({ minLength: 1, maxLength: MAX_NAME_LENGTH });
const Timestamp = Type.String({ maxLength: 64 });
const Bag = Type.Record(Type.String(), Type.Unknown());

export const MessageSchema = Type.Object(
  {
    type: Type.Enum([...MESSAGE_TYPES]),
    userId: Type.Optional(Type.Union([Id, Type.Null()])),
    anonymousId: Type.Optional(Type.Union([Id, Type.Null()])),
    messageId: Type.Optional(Type.String({ minLength: 1, maxLength: MAX_ID_LENGTH })),
    timestamp: Type.Optional(Timestamp),
    originalTimestamp: Type.Optional(Timestamp),
    sentAt: Type.Optional(Timestamp),
    event: Type.Optional(Name),
    name: Type.Optional(Type.Union([Type.String({ maxLength: MAX_NAME_LENGTH }), Type.Null()])),
    category: Type.Optional(Type.Union([Type.String({ maxLength: MAX_NAME_LENGTH }), Type.Null()])),
    groupId: Type.Optional(Id),
    // Segment's spec and SDKs name it previousId; previousUserId is kept for Tally's earlier callers.
    previousId: Type.Optional(Id),
    previousUserId: Type.Optional(Id),
    properties: Type.Optional(Bag),
    traits: Type.Optional(Bag),
    context: Type.Optional(Bag),
  },
  { additionalProperties: true },
);
export type RawMessage = Static<typeof MessageSchema>;

const checkMessage = Compile(MessageSchema);

/** Refuses JSON (from JSON.stringify) that holds text PostgreSQL cannot store (see storable-text.ts). */
export function refuseUnstorable(json: string, path: string): void {
  if (!isStorableJson(json)) throw invalid(path, 'must not contain NUL characters or unpaired UTF-16 surrogates');
}

/** What the stream carries for one message. */
export interface CollectedMessage {
  type: MessageType;
  messageId: string;
  userId?: string;
  anonymousId?: string;
  event?: string;
  name?: string;
  category?: string;
  groupId?: string;
  previousUserId?: string;
  properties: Record<string, unknown>;
  traits: Record<string, unknown>;
  context: Record<string, unknown>;
  /** When it happened, corrected for the sender's clock skew (sentAt vs receivedAt). */
  timestamp: string;
  receivedAt: string;
}

export interface RequestFacts {
  receivedAt: number;
  ip: string;
  userAgent: string | undefined;
}

function invalid(path: string, message: string): TallyError {
  return new TallyError('invalid_event', `${path || 'The message'} ${message}.`, path || undefined);
}

function schemaError(value: unknown, base: readonly (string | number)[]): TallyError {
  const errors = [...checkMessage.Errors(value)];
  const first = errors[0];
  if (!first) return invalid(jsonPointer(base), 'is not valid');
  // For unions the last error at a path sums up the alternatives; it reads better than each.
  const atPath = errors.filter((e) => e.instancePath === first.instancePath);
  const chosen = atPath[atPath.length - 1] ?? first;
  let path = jsonPointer(base) + chosen.instancePath;
  const missing = (chosen.params as { missingProperty?: string; requiredProperties?: string[] }).requiredProperties?.[0];
  if (missing) path += jsonPointer([missing]);
  const message = chosen.keyword === 'anyOf' ? 'has the wrong type' : chosen.message;
  return invalid(path, message);
}

function parseTime(value: string | undefined, path: string): number | undefined {
  if (value === undefined) return undefined;
  const ms = Date.parse(value);
  if (Number.isNaN(ms)) throw invalid(path, 'is not an ISO 8601 date');
  return ms;
}

/** context.library.name of Tally's browser tracker (src/tracker/t.js). */
export const TRACKER_LIBRARY = 'tally.js';

/**
 * The browser tracker sends no id when the site has not allowed it to store one: the processor
 * then counts the visitor under a daily-salted hash of site + IP + user agent (as for Plausible).
 * Segment's SDKs always send one, so for them a missing id stays an error.
 */
function fromTracker(context: Record<string, unknown> | undefined): boolean {
  const library = context?.['library'];
  return typeof library === 'object' && library !== null && (library as { name?: unknown }).name === TRACKER_LIBRARY;
}

const idString = (value: string | number | null | undefined) =>
  value === undefined || value === null || value === '' ? undefined : String(value);

/**
 * Validates one message (base = its JSON pointer in the request) and normalises it.
 * `defaults` are the batch-level fields Segment SDKs send (context; sentAt, which analytics-node
 * puts on the batch rather than on each message).
 */
export function normalizeMessage(
  value: unknown,
  base: readonly (string | number)[],
  facts: RequestFacts,
  defaults: { context?: Record<string, unknown>; sentAt?: string } = {},
): CollectedMessage {
  if (!checkMessage.Check(value)) throw schemaError(value, base);
  const m = value;
  const at = (field: string) => jsonPointer([...base, field]);
  const json = JSON.stringify(m);
  if (Buffer.byteLength(json) > MAX_MESSAGE_BYTES) {
    throw new TallyError('payload_too_large', `A message may hold at most ${MAX_MESSAGE_BYTES} bytes.`, jsonPointer(base));
  }
  refuseUnstorable(json, jsonPointer(base));
  const userId = idString(m.userId);
  const anonymousId = idString(m.anonymousId);
  if (userId === undefined && anonymousId === undefined && !fromTracker(m.context)) {
    throw invalid(at('userId'), 'or anonymousId is required');
  }
  if (m.type === 'track' && m.event === undefined) throw invalid(at('event'), 'is required for a track message');
  if (m.type === 'group' && m.groupId === undefined) throw invalid(at('groupId'), 'is required for a group message');
  const previousUserId = m.previousId ?? m.previousUserId;
  if (m.type === 'alias' && previousUserId === undefined) {
    throw invalid(at('previousId'), 'is required for an alias message');
  }

  // Segment's skew correction: the sender's clock is off by (sentAt - receivedAt).
  const happened = parseTime(m.timestamp ?? m.originalTimestamp, at(m.timestamp ? 'timestamp' : 'originalTimestamp'));
  const sent = parseTime(m.sentAt ?? defaults.sentAt, m.sentAt === undefined ? '/sentAt' : at('sentAt'));
  let timestamp = happened ?? facts.receivedAt;
  if (happened !== undefined && sent !== undefined) timestamp = facts.receivedAt - (sent - happened);

  const context: Record<string, unknown> = { ...defaults.context, ...m.context };
  if (context['ip'] === undefined) context['ip'] = facts.ip;
  if (context['userAgent'] === undefined && facts.userAgent) context['userAgent'] = facts.userAgent;

  const out: CollectedMessage = {
    type: m.type,
    messageId: m.messageId ?? `api-${randomUUID()}`,
    properties: m.properties ?? {},
    traits: m.traits ?? {},
    context,
    timestamp: new Date(timestamp).toISOString(),
    receivedAt: new Date(facts.receivedAt).toISOString(),
  };
  if (userId !== undefined) out.userId = userId;
  if (anonymousId !== undefined) out.anonymousId = anonymousId;
  if (m.event !== undefined) out.event = m.event;
  if (typeof m.name === 'string' && m.name !== '') out.name = m.name;
  if (typeof m.category === 'string' && m.category !== '') out.category = m.category;
  if (m.groupId !== undefined) out.groupId = String(m.groupId);
  if (previousUserId !== undefined) out.previousUserId = String(previousUserId);
  return out;
}
