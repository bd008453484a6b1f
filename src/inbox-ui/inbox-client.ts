import type {
  createInboxClient as Declared,
  FeedName,
  FeedState,
  InboxClient,
  InboxClientOptions,
  InboxCounts,
  InboxErrorInfo,
  InboxNotification,
  InboxPreferences,
  InboxState,
} from './inbox-client-types.js';

// The browser inbox client (GET /inbox-client.js; the <tally-inbox> component is built on it).
// It owns the connection and the state. The connection: an EventSource on the user's count
// stream with the token in the query string (EventSource sends no headers), reopened with
// back-off when the browser gives up on it; pushes carry a version that only grows, so an older
// one arriving late is dropped. The state: counts, and three feeds paged by cursor. A change is
// applied at once (optimistic), then the server's answer settles the counts; when a change fails,
// counts and loaded feeds are read again. Every accepted push re-reads the first page of each
// loaded feed, which is how new notifications, and changes made in another tab, appear.

const FEED_STATUS: Record<FeedName, string> = { unread: 'unread', all: 'all', archived: 'archived' };
const FEEDS = Object.keys(FEED_STATUS) as FeedName[];
const RETRY_MS = { first: 1000, max: 30_000 };

type Answer = { counts?: InboxCounts; unread?: number };
type Push = Partial<InboxCounts> & { version: number; counts?: InboxCounts };

/** The user a token names (`tut_`, then base64url of UTF-8 JSON with the user as `u`, then `.` and the signature). */
function userOfToken(token: string): string {
  try {
    const payload = token.slice(token.indexOf('_') + 1).split('.')[0] ?? '';
    const bytes = Uint8Array.from(atob(payload.replace(/-/g, '+').replace(/_/g, '/')), (c) => c.charCodeAt(0));
    const user = JSON.parse(new TextDecoder().decode(bytes)).u;
    if (typeof user === 'string') return user;
  } catch {
    // Not a token this client can read: said below.
  }
  throw new Error('Tally inbox: the user token names no user; pass userId.');
}

/** Where this script was loaded from: the Tally server, unless told otherwise. */
const scriptBase = (): string => new URL('.', import.meta.url).href.replace(/\/$/, '');

const emptyFeed = (): FeedState => ({ items: [], nextCursor: null, loaded: false, loading: false });

/** The counts of a push: all three, or (from an older server) the unread count alone. */
function countsOfPush(push: Push): InboxCounts {
  if (push.counts) return push.counts;
  const unread = push.unread ?? 0;
  return { unseen: push.unseen ?? unread, unread, total: push.total ?? unread };
}

export const createInboxClient: typeof Declared = (options: InboxClientOptions): InboxClient => {
  const userId = options.userId ?? userOfToken(options.token);
  const base = (options.apiBase ?? scriptBase()).replace(/\/$/, '');
  const pageSize = options.pageSize ?? 20;
  const tenant = options.tenant;
  const userPath = `/v1/users/${encodeURIComponent(userId)}`;
  const listeners = new Set<(state: InboxState) => void>();
  let state: InboxState = {
    counts: null,
    version: 0,
    connected: false,
    feeds: { unread: emptyFeed(), all: emptyFeed(), archived: emptyFeed() },
  };
  /** Pushes accepted so far: an answer whose request began before the last one is older than it. */
  let pushes = 0;
  let source: EventSource | null = null;
  let retryTimer: ReturnType<typeof setTimeout> | undefined;
  let retryMs = RETRY_MS.first;
  let closed = true;
  let refreshing: Promise<void> | null = null;
  let refreshAgain = false;

  function set(next: Partial<InboxState>): void {
    state = { ...state, ...next };
    for (const listener of listeners) listener(state);
  }

  const setFeed = (feed: FeedName, next: Partial<FeedState>) =>
    set({ feeds: { ...state.feeds, [feed]: { ...state.feeds[feed], ...next } } });

  async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { authorization: `Bearer ${options.token}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    let response: Response;
    try {
      response = await fetch(base + path, { method, headers, body: body === undefined ? null : JSON.stringify(body) });
    } catch (err) {
      throw Object.assign(new Error(`Tally inbox: ${(err as Error).message}`), { status: 0, code: 'network_error' });
    }
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) {
      const error: Partial<InboxErrorInfo> = answer.error ?? {};
      throw Object.assign(new Error(error.message ?? `Tally answered ${response.status}`), {
        status: response.status,
        code: error.code ?? 'unknown',
      });
    }
    return answer as T;
  }

  const query = (params: Record<string, string | number | undefined>) => {
    const search = new URLSearchParams();
    for (const [name, value] of Object.entries(params)) if (value !== undefined) search.set(name, String(value));
    return search.toString();
  };

  async function fetchPage(feed: FeedName, cursor?: string) {
    return api<{ items: InboxNotification[]; nextCursor: string | null }>(
      'GET',
      `${userPath}/notifications?${query({ status: FEED_STATUS[feed], limit: pageSize, tenant, cursor })}`,
    );
  }

  async function load(feed: FeedName): Promise<void> {
    setFeed(feed, { loading: true });
    try {
      const page = await fetchPage(feed);
      setFeed(feed, { items: page.items, nextCursor: page.nextCursor, loaded: true });
    } finally {
      setFeed(feed, { loading: false });
    }
  }

  async function loadMore(feed: FeedName): Promise<void> {
    const current = state.feeds[feed];
    if (!current.loaded) return load(feed);
    if (current.loading || current.nextCursor === null) return;
    setFeed(feed, { loading: true });
    try {
      const page = await fetchPage(feed, current.nextCursor);
      const known = new Set(state.feeds[feed].items.map((n) => n.id));
      setFeed(feed, { items: [...state.feeds[feed].items, ...page.items.filter((n) => !known.has(n.id))], nextCursor: page.nextCursor });
    } finally {
      setFeed(feed, { loading: false });
    }
  }

  /**
   * The first page again, merged: it replaces the head of the list; older items already loaded
   * stay, with the cursor that follows them.
   */
  async function refreshHead(feed: FeedName): Promise<void> {
    const page = await fetchPage(feed);
    const current = state.feeds[feed];
    const last = page.items[page.items.length - 1];
    if (page.nextCursor === null || !last || current.items.length <= page.items.length) {
      setFeed(feed, { items: page.items, nextCursor: page.nextCursor });
      return;
    }
    const inPage = new Set(page.items.map((n) => n.id));
    const older = current.items.filter((n) => !inPage.has(n.id) && n.createdAt < last.createdAt);
    setFeed(feed, { items: [...page.items, ...older] });
  }

  /** Re-reads every loaded feed's first page; calls during one run make one more run. */
  function refreshLoaded(): void {
    if (refreshing) {
      refreshAgain = true;
      return;
    }
    refreshing = (async () => {
      do {
        refreshAgain = false;
        await Promise.all(FEEDS.filter((f) => state.feeds[f].loaded).map(refreshHead));
      } while (refreshAgain);
    })()
      .catch(() => undefined)
      .finally(() => {
        refreshing = null;
      });
  }

  function onPush(push: Push): void {
    if (!(push.version > state.version)) return;
    pushes++;
    // The feeds' request goes out first: the listeners' own calls (the component marks an open
    // feed seen) must not delay what the user waits for.
    refreshLoaded();
    set({ counts: countsOfPush(push), version: push.version });
  }

  function open(): void {
    const url = `${base}${userPath}/notifications/stream?${query({ tenant, token: options.token })}`;
    const es = new EventSource(url);
    source = es;
    es.onopen = () => {
      retryMs = RETRY_MS.first;
      set({ connected: true });
    };
    es.onmessage = (event) => {
      try {
        onPush(JSON.parse(event.data));
      } catch {
        // Not a value: ignored (the next push carries the whole state again).
      }
    };
    es.onerror = () => {
      if (state.connected) set({ connected: false });
      // The browser reconnects by itself after a dropped connection; after a refused one (an
      // error status, a proxy's page) it gives up, and this client tries again, later each time.
      if (es.readyState !== EventSource.CLOSED || closed) return;
      es.close();
      retryTimer = setTimeout(open, retryMs);
      retryMs = Math.min(retryMs * 2, RETRY_MS.max);
    };
  }

  /** Applies a change at once, sends it, and settles the counts with the answer (or re-reads on failure). */
  async function change(apply: (s: InboxState) => Partial<InboxState>, send: () => Promise<Answer>): Promise<void> {
    const pushesBefore = pushes;
    set(apply(state));
    try {
      const answer = await send();
      if (answer.counts && pushes === pushesBefore) set({ counts: answer.counts });
    } catch (err) {
      await resync();
      throw err;
    }
  }

  async function resync(): Promise<void> {
    await Promise.all([refreshCounts(), ...FEEDS.filter((f) => state.feeds[f].loaded).map(refreshHead)]).catch(() => undefined);
  }

  async function refreshCounts(): Promise<void> {
    const pushesBefore = pushes;
    const counts = await api<InboxCounts>('GET', `${userPath}/notifications/counts?${query({ tenant })}`);
    if (pushes === pushesBefore) set({ counts: { unseen: counts.unseen, unread: counts.unread, total: counts.total } });
  }

  const now = () => new Date().toISOString();
  const find = (id: string) => FEEDS.map((f) => state.feeds[f].items.find((n) => n.id === id)).find(Boolean);

  /** The counts after some notifications change from `before` to `after` (null: gone from the counts). */
  function countsAfter(changes: [InboxNotification, InboxNotification | null][]): InboxCounts | null {
    if (!state.counts) return null;
    const counts = { ...state.counts };
    const weigh = (n: InboxNotification | null, sign: number) => {
      if (!n || n.archivedAt) return;
      counts.total += sign;
      if (!n.readAt) counts.unread += sign;
      if (!n.seenAt && !n.readAt) counts.unseen += sign;
    };
    for (const [before, after] of changes) {
      weigh(before, -1);
      weigh(after, 1);
    }
    return { unseen: Math.max(0, counts.unseen), unread: Math.max(0, counts.unread), total: Math.max(0, counts.total) };
  }

  /** The feeds with each changed notification replaced, moved between archived and the rest. */
  function feedsWith(changed: Map<string, InboxNotification>): Record<FeedName, FeedState> {
    const feeds = { ...state.feeds };
    for (const feed of FEEDS) {
      const items = state.feeds[feed].items.map((n) => changed.get(n.id) ?? n).filter((n) => (feed === 'archived') === !!n.archivedAt);
      if (feed === 'archived' || feed === 'all') {
        const present = new Set(items.map((n) => n.id));
        for (const n of changed.values()) {
          if ((feed === 'archived') === !!n.archivedAt && !present.has(n.id) && state.feeds[feed].loaded) items.push(n);
        }
        items.sort((a, b) => (a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : 0));
      }
      feeds[feed] = { ...state.feeds[feed], items };
    }
    return feeds;
  }

  /** An optimistic change of known notifications (unknown ids change only on the server). */
  function changeEach(ids: string[], edit: (n: InboxNotification) => InboxNotification, send: () => Promise<Answer>) {
    return change((s) => {
      const changed = new Map<string, InboxNotification>();
      const pairs: [InboxNotification, InboxNotification][] = [];
      for (const id of ids) {
        const before = find(id);
        if (!before) continue;
        const after = edit(before);
        changed.set(id, after);
        pairs.push([before, after]);
      }
      return { feeds: feedsWith(changed), counts: countsAfter(pairs) ?? s.counts };
    }, send);
  }

  const byId = (id: string, action: string) => () => api<Answer>('POST', `/v1/notifications/${encodeURIComponent(id)}/${action}`);
  /** Every loaded notification the filter picks, edited (for the *-all routes). */
  const editLoaded = (pick: (n: InboxNotification) => boolean, edit: (n: InboxNotification) => InboxNotification) => {
    const changed = new Map<string, InboxNotification>();
    for (const n of FEEDS.flatMap((f) => state.feeds[f].items)) if (pick(n)) changed.set(n.id, edit(n));
    return feedsWith(changed);
  };
  const scopeBody = () => (tenant === undefined ? {} : { tenant });

  return {
    userId,
    get state() {
      return state;
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    connect() {
      if (!closed) return;
      closed = false;
      open();
    },
    close() {
      closed = true;
      clearTimeout(retryTimer);
      source?.close();
      source = null;
      if (state.connected) set({ connected: false });
    },
    load,
    loadMore,
    refreshCounts,
    markSeen(ids) {
      const seen = (n: InboxNotification) => ({ ...n, seenAt: n.seenAt ?? now() });
      const send =
        ids.length === 1
          ? byId(ids[0] as string, 'seen')
          : () => api<Answer>('POST', `${userPath}/notifications/bulk`, { ids, action: 'seen' });
      return changeEach(ids, seen, send);
    },
    markAllSeen() {
      return change(
        (st) => ({
          feeds: editLoaded(
            (n) => !n.seenAt,
            (n) => ({ ...n, seenAt: now() }),
          ),
          counts: st.counts && { ...st.counts, unseen: 0 },
        }),
        () => api<Answer>('POST', `${userPath}/notifications/seen-all`, scopeBody()),
      );
    },
    markRead(id) {
      return changeEach([id], (n) => ({ ...n, readAt: n.readAt ?? now(), seenAt: n.seenAt ?? now() }), byId(id, 'read'));
    },
    markUnread(id) {
      return changeEach([id], (n) => ({ ...n, readAt: null }), byId(id, 'unread'));
    },
    markAllRead() {
      return change(
        (st) => ({
          feeds: editLoaded(
            (n) => !n.readAt,
            (n) => ({ ...n, readAt: now(), seenAt: n.seenAt ?? now() }),
          ),
          counts: st.counts && { ...st.counts, unread: 0, unseen: 0 },
        }),
        () => api<Answer>('POST', `${userPath}/notifications/read-all`, scopeBody()),
      );
    },
    archive(id) {
      return changeEach([id], (n) => ({ ...n, archivedAt: now() }), byId(id, 'archive'));
    },
    unarchive(id) {
      return changeEach([id], (n) => ({ ...n, archivedAt: null }), byId(id, 'unarchive'));
    },
    clickAction(id, actionId) {
      return changeEach(
        [id],
        (n) => ({ ...n, readAt: n.readAt ?? now(), seenAt: n.seenAt ?? now() }),
        () => api<Answer>('POST', `/v1/notifications/${encodeURIComponent(id)}/actions/${encodeURIComponent(actionId)}`),
      );
    },
    getPreferences: () => api<InboxPreferences>('GET', `${userPath}/preferences`),
    setPreferences: (preferences) => api<InboxPreferences>('PUT', `${userPath}/preferences`, preferences),
  };
};
