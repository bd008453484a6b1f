import Type from 'typebox';
import { MAX_ID_LENGTH } from '../collect/message.js';

// Request and response shapes of the notification routes, and their limits (README, "Notifications").

export const LIMITS = {
  idLength: MAX_ID_LENGTH,
  titleLength: 256,
  bodyLength: 4096,
  categoryLength: 64,
  /** Bytes of `data` as JSON. */
  dataBytes: 4096,
  batchSize: 500,
  pageSize: 100,
  defaultPageSize: 20,
  cursorLength: 64,
} as const;

export const Id = Type.String({ minLength: 1, maxLength: LIMITS.idLength });
const Category = Type.String({ minLength: 1, maxLength: LIMITS.categoryLength });

export const NewNotification = Type.Object(
  {
    id: Type.Optional(Id),
    userId: Id,
    title: Type.String({ minLength: 1, maxLength: LIMITS.titleLength }),
    body: Type.Optional(Type.String({ maxLength: LIMITS.bodyLength })),
    category: Type.Optional(Category),
    data: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  },
  {
    additionalProperties: false,
    examples: [
      {
        userId: 'user-42',
        title: 'Your export is ready',
        body: 'Download it within 7 days.',
        category: 'exports',
        data: { exportId: 'exp_9' },
      },
      { id: 'invoice-2024-07-user-42', userId: 'user-42', title: 'Invoice for July' },
    ],
  },
);

export const NewBatch = Type.Object(
  { notifications: Type.Array(NewNotification, { minItems: 1, maxItems: LIMITS.batchSize }) },
  { additionalProperties: false },
);

export const UserParams = Type.Object({ userId: Id });

/** A user token fits in this many characters (its user id is at most LIMITS.idLength). */
const MAX_TOKEN_LENGTH = 2048;
/** The stream's query: a browser's EventSource sends the user token here (stream routes only). */
export const StreamQuery = Type.Object(
  { token: Type.Optional(Type.String({ minLength: 1, maxLength: MAX_TOKEN_LENGTH })) },
  { additionalProperties: false },
);
export const IdParams = Type.Object({ id: Id });

export const ListQuery = Type.Object(
  {
    status: Type.Optional(Type.Union([Type.Literal('unread'), Type.Literal('read'), Type.Literal('all')])),
    category: Type.Optional(Category),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: LIMITS.pageSize })),
    cursor: Type.Optional(Type.String({ minLength: 1, maxLength: LIMITS.cursorLength })),
  },
  { additionalProperties: false },
);

/** read-all's body is optional (the route reads no body as {}): no body reads everything. */
export const ReadAllBody = Type.Object({ category: Type.Optional(Category), before: Type.Optional(Id) }, { additionalProperties: false });

export const UnreadCount = Type.Object({ unread: Type.Integer({ minimum: 0 }) }, { examples: [{ unread: 3 }] });
export const Changed = Type.Object({ changed: Type.Boolean(), unread: Type.Integer() });
export const ChangedMany = Type.Object({ changed: Type.Integer(), unread: Type.Integer() });
export const Deleted = Type.Object({ deleted: Type.Boolean(), unread: Type.Integer() });
