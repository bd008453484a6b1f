import Type from 'typebox';
import { MAX_ID_LENGTH } from '../collect/message.js';
import { STATUSES } from './notification-sql.js';

// Request and response shapes of the notification routes, and their limits (README, "Notifications").

export const LIMITS = {
  idLength: MAX_ID_LENGTH,
  titleLength: 256,
  bodyLength: 4096,
  categoryLength: 64,
  tenantLength: 64,
  /** Bytes of `data` as JSON. */
  dataBytes: 4096,
  batchSize: 500,
  pageSize: 100,
  defaultPageSize: 20,
  cursorLength: 64,
  urlLength: 2048,
  actions: 3,
  actionIdLength: 64,
  actionLabelLength: 64,
  /** Ids of one bulk request. */
  bulkIds: 1000,
  /** Categories of one preferences request. */
  preferenceCategories: 100,
} as const;

export const Id = Type.String({ minLength: 1, maxLength: LIMITS.idLength });
const Category = Type.String({ minLength: 1, maxLength: LIMITS.categoryLength });
const Tenant = Type.String({ minLength: 1, maxLength: LIMITS.tenantLength });
const Url = Type.String({ minLength: 1, maxLength: LIMITS.urlLength });
const Time = Type.String({ format: 'date-time', maxLength: 40 });

export const Action = Type.Object(
  {
    id: Type.String({ minLength: 1, maxLength: LIMITS.actionIdLength }),
    label: Type.String({ minLength: 1, maxLength: LIMITS.actionLabelLength }),
    url: Type.Optional(Url),
  },
  { additionalProperties: false },
);

export const NewNotification = Type.Object(
  {
    id: Type.Optional(Id),
    userId: Id,
    title: Type.String({ minLength: 1, maxLength: LIMITS.titleLength }),
    body: Type.Optional(Type.String({ maxLength: LIMITS.bodyLength })),
    category: Type.Optional(Category),
    data: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
    tenant: Type.Optional(Tenant),
    expiresAt: Type.Optional(Time),
    actionUrl: Type.Optional(Url),
    actions: Type.Optional(Type.Array(Action, { maxItems: LIMITS.actions })),
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
        tenant: 'team-7',
        expiresAt: '2030-01-01T00:00:00Z',
        actionUrl: 'https://example.com/exports/exp_9',
        actions: [{ id: 'download', label: 'Download', url: 'https://example.com/exports/exp_9.csv' }],
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

export const IdParams = Type.Object({ id: Id });
export const ActionParams = Type.Object({ id: Id, actionId: Type.String({ minLength: 1, maxLength: LIMITS.actionIdLength }) });

export const ListQuery = Type.Object(
  {
    status: Type.Optional(Type.Union(STATUSES.map((s) => Type.Literal(s)))),
    category: Type.Optional(Category),
    tenant: Type.Optional(Tenant),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: LIMITS.pageSize })),
    cursor: Type.Optional(Type.String({ minLength: 1, maxLength: LIMITS.cursorLength })),
  },
  { additionalProperties: false },
);

export const CountsQuery = Type.Object(
  { tenant: Type.Optional(Tenant), by: Type.Optional(Type.Union([Type.Literal('category'), Type.Literal('tenant')])) },
  { additionalProperties: false },
);

/** Tenant of a live stream. */
/** A user token fits in this many characters (its user id is at most LIMITS.idLength). */
const MAX_TOKEN_LENGTH = 2048;
/** The stream's query; a browser's EventSource sends the user token here too (stream routes only). */
export const StreamQuery = Type.Object(
  { tenant: Type.Optional(Tenant), token: Type.Optional(Type.String({ minLength: 1, maxLength: MAX_TOKEN_LENGTH })) },
  { additionalProperties: false },
);

/**
 * The body of seen-all, read-all and archive-all, optional (the routes read no body as {}): no
 * body changes everything. `before`: an ISO 8601 date-time, else a notification id.
 */
export const AllBody = Type.Object(
  { category: Type.Optional(Category), tenant: Type.Optional(Tenant), before: Type.Optional(Id) },
  { additionalProperties: false },
);

export const BulkBody = Type.Object(
  {
    ids: Type.Array(Id, { minItems: 1, maxItems: LIMITS.bulkIds }),
    action: Type.Union(['seen', 'read', 'unread', 'archive', 'unarchive', 'delete'].map((a) => Type.Literal(a))),
  },
  { additionalProperties: false },
);

export const PreferencesBody = Type.Object(
  {
    categories: Type.Record(Category, Type.Object({ in_app: Type.Boolean() }, { additionalProperties: false }), {
      maxProperties: LIMITS.preferenceCategories,
    }),
  },
  { additionalProperties: false, examples: [{ categories: { marketing: { in_app: false }, exports: { in_app: true } } }] },
);

const CountsShape = Type.Object({
  unseen: Type.Integer(),
  unread: Type.Integer(),
  total: Type.Integer(),
});

export const CountsAnswer = Type.Object(
  {
    unseen: Type.Integer(),
    unread: Type.Integer(),
    total: Type.Integer(),
    by: Type.Optional(Type.Record(Type.String(), CountsShape)),
  },
  { examples: [{ unseen: 2, unread: 3, total: 10, by: { billing: { unseen: 1, unread: 1, total: 4 } } }] },
);

export const UnreadCount = Type.Object({ unread: Type.Integer({ minimum: 0 }) }, { examples: [{ unread: 3 }] });
export const Changed = Type.Object({ changed: Type.Boolean(), unread: Type.Integer(), counts: CountsShape });
export const ChangedMany = Type.Object({ changed: Type.Integer(), unread: Type.Integer(), counts: CountsShape });
export const Deleted = Type.Object({ deleted: Type.Boolean(), unread: Type.Integer(), counts: CountsShape });
