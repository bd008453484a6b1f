// The public types of Tally's browser inbox client, served as GET /inbox-client.d.ts beside
// GET /inbox-client.js. Declarations only, so this file is its own .d.ts; inbox-client.ts
// implements the declared function (a mismatch fails the type check).

/** A button on a notification (at most three). */
export interface InboxAction {
  id: string;
  label: string;
  url?: string | null;
}

/** A notification as the API answers it. */
export interface InboxNotification {
  id: string;
  userId: string;
  title: string;
  body: string;
  category: string | null;
  data: Record<string, unknown>;
  createdAt: string;
  readAt: string | null;
  seenAt?: string | null;
  archivedAt?: string | null;
  tenant?: string | null;
  expiresAt?: string | null;
  actionUrl?: string | null;
  actions?: InboxAction[];
}

/** Exact and uncapped; archived and expired notifications are in none of them. */
export interface InboxCounts {
  unseen: number;
  unread: number;
  total: number;
}

/** The three lists a feed shows: unread, everything not archived, archived. */
export type FeedName = 'unread' | 'all' | 'archived';

export interface FeedState {
  items: InboxNotification[];
  /** Where the next page starts; null once the last page is loaded. */
  nextCursor: string | null;
  /** The first page has arrived. */
  loaded: boolean;
  loading: boolean;
}

export interface InboxState {
  /** Null until the server has told them (the stream's first value, or an answer). */
  counts: InboxCounts | null;
  /** Version of the last pushed counts: a push with a version not above it is dropped. */
  version: number;
  /** The live stream is open. */
  connected: boolean;
  feeds: Record<FeedName, FeedState>;
}

/** Per category, whether it shows in the inbox. */
export interface InboxPreferences {
  categories: Record<string, { in_app: boolean }>;
}

export interface InboxClientOptions {
  /** The user token (POST /v1/users/:userId/token, from the site's server). */
  token: string;
  /** The token's user; read from the token when absent. */
  userId?: string;
  /** Where Tally answers, e.g. "https://tally.example"; the script's own origin when absent. */
  apiBase?: string;
  /** Only this tenant's notifications and counts. */
  tenant?: string;
  /** Notifications per page (1–100, default 20). */
  pageSize?: number;
}

/** An error answer of the API, or a network failure (status 0). */
export interface InboxErrorInfo {
  status: number;
  code: string;
  message: string;
}

export interface InboxClient {
  readonly userId: string;
  /** The current state; replaced (never mutated) on every change. */
  readonly state: InboxState;
  /** Calls listener on every change of state; returns the unsubscribe function. */
  subscribe(listener: (state: InboxState) => void): () => void;
  /** Opens the live stream (reconnecting with back-off until close()). */
  connect(): void;
  close(): void;
  /** Loads (or reloads) the first page of a feed. */
  load(feed: FeedName): Promise<void>;
  /** Loads the next page of a feed, if there is one. */
  loadMore(feed: FeedName): Promise<void>;
  refreshCounts(): Promise<void>;
  markSeen(ids: string[]): Promise<void>;
  /** Everything up to now is seen: the feed was opened. */
  markAllSeen(): Promise<void>;
  markRead(id: string): Promise<void>;
  markUnread(id: string): Promise<void>;
  markAllRead(): Promise<void>;
  archive(id: string): Promise<void>;
  unarchive(id: string): Promise<void>;
  /** Records a click on one of a notification's actions (which marks it read). */
  clickAction(id: string, actionId: string): Promise<void>;
  getPreferences(): Promise<InboxPreferences>;
  setPreferences(preferences: InboxPreferences): Promise<InboxPreferences>;
}

export declare function createInboxClient(options: InboxClientOptions): InboxClient;
