import { createInboxClient } from './inbox-client.js';
import type { FeedName, InboxClient, InboxNotification, InboxState } from './inbox-client-types.js';
import { STYLES } from './tally-inbox-styles.js';

// <tally-inbox user-token="…">: the drop-in bell (GET /inbox.js). A bell with the unseen (or,
// badge="unread", unread) count, and a non-modal popover with the feed: tabs unread / all /
// archived, infinite scroll, mark read, mark all read, archive, action buttons, and a preferences
// view. Everything comes from the client (inbox-client.ts), which owns the connection and state;
// this file only draws it and turns clicks and keys into client calls. Opening the panel marks the
// feed seen (Knock's and Novu's meaning of "seen"). Shadow DOM keeps the page's styles out; custom
// properties (tally-inbox-styles.ts) let them in on purpose.

const TABS: [FeedName, string][] = [
  ['unread', 'Unread'],
  ['all', 'All'],
  ['archived', 'Archived'],
];
const EMPTY: Record<FeedName, string> = { unread: 'No unread notifications.', all: 'No notifications yet.', archived: 'Nothing archived.' };
const ICON = {
  bell: '<path d="M6 8a6 6 0 0 1 12 0c0 7 3 9 3 9H3s3-2 3-9"/><path d="M10.3 21a1.94 1.94 0 0 0 3.4 0"/>',
  gear: '<circle cx="12" cy="12" r="3"/><path d="M12 2v3M12 19v3M4.9 4.9l2.1 2.1M17 17l2.1 2.1M2 12h3M19 12h3M4.9 19.1 7 17M17 7l2.1-2.1"/>',
  read: '<path d="M20 6 9 17l-5-5"/>',
  unread: '<circle cx="12" cy="12" r="4"/>',
  archive: '<rect x="3" y="4" width="18" height="5" rx="1"/><path d="M5 9v10h14V9M10 13h4"/>',
  unarchive: '<path d="M3 12a9 9 0 1 0 3-6.7L3 8"/><path d="M3 3v5h5"/>',
};
const svg = (name: keyof typeof ICON) => `<svg viewBox="0 0 24 24" aria-hidden="true">${ICON[name]}</svg>`;

const SKELETON = `<style>${STYLES}</style>
<button class="bell" part="bell" aria-expanded="false" aria-controls="p" aria-haspopup="dialog">${svg('bell')}<span class="badge" part="badge" aria-hidden="true" hidden></span></button>
<span class="sr" role="status" aria-live="polite"></span>
<div id="p" class="panel" part="panel" role="dialog" aria-labelledby="h" hidden>
<div class="head"><h2 id="h">Notifications</h2><button class="link" data-k="all-read">Mark all read</button><button data-k="prefs" aria-pressed="false" aria-label="Preferences">${svg('gear')}</button></div>
<div class="feed"><div role="tablist" aria-label="Show">${TABS.map(([f, l]) => `<button role="tab" id="t-${f}" data-k="tab-${f}" aria-controls="f">${l}</button>`).join('')}</div>
<div id="f" class="scroll" role="tabpanel" tabindex="-1"><ul></ul><p class="note"></p><div class="more"></div></div></div>
<div class="prefs scroll" hidden><h3 class="note">Show in the inbox</h3><div></div></div>
<p class="err" role="alert" hidden></p>
</div>`;

/** A link target from the API, if it is one a click may follow (no javascript: URLs). */
function safeUrl(url: string | null | undefined): string | null {
  if (!url) return null;
  try {
    const parsed = new URL(url, location.href);
    return parsed.protocol === 'https:' || parsed.protocol === 'http:' ? parsed.href : null;
  } catch {
    return null;
  }
}

const SPANS: [Intl.RelativeTimeFormatUnit, number][] = [
  ['year', 31_536_000],
  ['month', 2_592_000],
  ['day', 86_400],
  ['hour', 3600],
  ['minute', 60],
];
function ago(iso: string): string {
  const seconds = (Date.parse(iso) - Date.now()) / 1000;
  const format = new Intl.RelativeTimeFormat(document.documentElement.lang || undefined, { numeric: 'auto' });
  for (const [unit, size] of SPANS) if (Math.abs(seconds) >= size) return format.format(Math.round(seconds / size), unit);
  return format.format(0, 'second');
}

function h<K extends keyof HTMLElementTagNameMap>(tag: K, props: Record<string, string> = {}, ...children: (Node | string)[]) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) el.setAttribute(name, value);
  el.append(...children);
  return el;
}

function iconButton(key: string, icon: keyof typeof ICON, label: string): HTMLButtonElement {
  const button = h('button', { 'data-k': key, 'aria-label': label, title: label });
  button.innerHTML = svg(icon);
  return button;
}

export class TallyInbox extends HTMLElement {
  static observedAttributes = ['user-token', 'user-id', 'api-base', 'tenant', 'badge'];
  #root = this.attachShadow({ mode: 'open' });
  #client: InboxClient | null = null;
  #unsubscribe = () => {};
  #feed: FeedName = 'all';
  #prefs: Record<string, { in_app: boolean }> | null = null;
  #announced: number | undefined;
  /** The counts version the open feed was last marked seen at: once per version, even when that fails. */
  #seenAt = -1;
  #observer: IntersectionObserver | undefined;
  #$ = <T extends Element>(selector: string) => this.#root.querySelector(selector) as T;

  constructor() {
    super();
    this.#root.innerHTML = SKELETON;
    this.#root.addEventListener('click', (event) => this.#onClick(event));
    this.#root.addEventListener('keydown', (event) => this.#onKey(event as KeyboardEvent));
    this.#root.addEventListener('change', (event) => this.#onToggle(event.target as HTMLInputElement));
  }

  #outside = (event: Event) => {
    if (this.#open && !event.composedPath().includes(this)) this.#close(false);
  };

  connectedCallback(): void {
    document.addEventListener('pointerdown', this.#outside);
    this.#observer = new IntersectionObserver(
      (entries) => {
        if (entries.some((e) => e.isIntersecting)) this.#run(this.#client?.loadMore(this.#feed));
      },
      // A little before the end comes into view, so scrolling rarely waits for the next page.
      { root: this.#$('#f'), rootMargin: '0px 0px 120px 0px' },
    );
    this.#start();
  }

  disconnectedCallback(): void {
    document.removeEventListener('pointerdown', this.#outside);
    this.#observer?.disconnect();
    this.#stop();
  }

  attributeChangedCallback(name: string, before: string | null, after: string | null): void {
    if (!this.isConnected || before === after) return;
    if (name === 'badge') this.#render();
    else this.#start();
  }

  #start(): void {
    this.#stop();
    const token = this.getAttribute('user-token');
    if (!token) return;
    const attr = (name: string) => this.getAttribute(name) || undefined;
    const client = createInboxClient({ token, userId: attr('user-id'), apiBase: attr('api-base'), tenant: attr('tenant') });
    this.#client = client;
    this.#unsubscribe = client.subscribe(() => this.#render());
    client.connect();
    if (this.#open) this.#run(client.load(this.#feed));
    this.#render();
  }

  #stop(): void {
    this.#unsubscribe();
    this.#client?.close();
    this.#client = null;
    this.#prefs = null;
    this.#announced = undefined;
    this.#seenAt = -1;
  }

  get #open(): boolean {
    return !this.#$<HTMLElement>('#p').hidden;
  }

  /** Runs a client call; a failure is shown in the panel's alert. */
  #run(call: Promise<unknown> | undefined): void {
    const err = this.#$<HTMLElement>('.err');
    err.hidden = true;
    call?.catch((error: Error) => {
      err.textContent = error.message;
      err.hidden = false;
    });
  }

  #openPanel(): void {
    const panel = this.#$<HTMLElement>('#p');
    panel.hidden = false;
    this.#$('.bell').setAttribute('aria-expanded', 'true');
    panel.classList.toggle('l', this.#$('.bell').getBoundingClientRect().right < panel.offsetWidth + 8);
    if (this.#client && !this.#client.state.feeds[this.#feed].loaded) this.#run(this.#client.load(this.#feed));
    this.#render();
    this.#$<HTMLElement>(`#t-${this.#feed}`).focus();
  }

  #close(focusBell: boolean): void {
    this.#$<HTMLElement>('#p').hidden = true;
    this.#$('.bell').setAttribute('aria-expanded', 'false');
    this.#showPrefs(false);
    if (focusBell) this.#$<HTMLElement>('.bell').focus();
  }

  #select(feed: FeedName): void {
    this.#feed = feed;
    if (this.#client && !this.#client.state.feeds[feed].loaded) this.#run(this.#client.load(feed));
    this.#render();
    this.#$<HTMLElement>(`#t-${feed}`).focus();
  }

  #onClick(event: Event): void {
    const target = (event.target as Element).closest('[data-k],a,.bell');
    const key = target?.getAttribute('data-k') ?? '';
    if (target?.classList.contains('bell')) {
      if (this.#open) this.#close(true);
      else this.#openPanel();
    } else if (key === 'prefs') this.#showPrefs(!this.#$('.feed').hasAttribute('hidden'));
    else if (key.startsWith('tab-')) this.#select(key.slice(4) as FeedName);
    else if (target) this.#run(this.#call(target, key, event as MouseEvent));
  }

  /**
   * The client call a click in the panel asks for: mark all read, or one notification's button or
   * link. A link or an action with a url is followed once the click is recorded (or has failed):
   * leaving the page first would cancel the request.
   */
  #call(target: Element, key: string, event: MouseEvent): Promise<unknown> | undefined {
    const client = this.#client;
    if (!client) return;
    if (key === 'all-read') return client.markAllRead();
    const id = target.closest('li')?.getAttribute('data-id');
    const n = id ? client.state.feeds[this.#feed].items.find((item) => item.id === id) : undefined;
    if (!n) return;
    if (key.endsWith(':r')) return n.readAt ? client.markUnread(n.id) : client.markRead(n.id);
    if (key.endsWith(':x')) return n.archivedAt ? client.unarchive(n.id) : client.archive(n.id);
    const action = n.actions?.find((a) => key === `${n.id}:a:${a.id}`);
    const url = target.tagName === 'A' ? (target as HTMLAnchorElement).href : safeUrl(action?.url);
    const recorded = action ? client.clickAction(n.id, action.id) : target.tagName === 'A' ? client.markRead(n.id) : undefined;
    // A new tab or window (a modifier key) leaves this page, and its request, where they are.
    if (!url || event.ctrlKey || event.metaKey || event.shiftKey) return recorded;
    event.preventDefault();
    return recorded?.finally(() => location.assign(url));
  }

  #onKey(event: KeyboardEvent): void {
    if (event.key === 'Escape' && this.#open) {
      event.stopPropagation();
      this.#close(true);
      return;
    }
    const tab = (event.target as Element).getAttribute('role') === 'tab';
    const moves: Record<string, number> = { ArrowRight: 1, ArrowLeft: -1, Home: -9, End: 9 };
    const move = moves[event.key];
    if (!tab || move === undefined) return;
    event.preventDefault();
    const at = TABS.findIndex(([f]) => f === this.#feed);
    const next = Math.abs(move) === 9 ? (move < 0 ? 0 : TABS.length - 1) : (at + move + TABS.length) % TABS.length;
    this.#select((TABS[next] as [FeedName, string])[0]);
  }

  #showPrefs(show: boolean): void {
    this.#$('.feed').toggleAttribute('hidden', show);
    this.#$('.prefs').toggleAttribute('hidden', !show);
    this.#$('[data-k=prefs]').setAttribute('aria-pressed', String(show));
    if (show && this.#client) {
      this.#run(
        this.#client.getPreferences().then((prefs) => {
          this.#prefs = prefs.categories;
          this.#renderPrefs();
        }),
      );
    }
    this.#renderPrefs();
  }

  #onToggle(input: HTMLInputElement): void {
    const category = input.getAttribute('data-c');
    if (!category || !this.#client || !this.#prefs) return;
    const before = this.#prefs;
    const categories = { ...before, [category]: { in_app: input.checked } };
    this.#prefs = categories;
    this.#run(
      this.#client.setPreferences({ categories }).then(
        (saved) => {
          this.#prefs = saved.categories;
        },
        (error: unknown) => {
          this.#prefs = before;
          input.checked = !input.checked;
          throw error;
        },
      ),
    );
  }

  #renderPrefs(): void {
    const list = this.#$('.prefs div');
    if (!this.#prefs) {
      list.replaceChildren(h('p', { class: 'note' }, 'Loading…'));
      return;
    }
    const known = { ...this.#prefs };
    for (const f of Object.values(this.#client?.state.feeds ?? {})) {
      for (const n of f.items) if (n.category && !known[n.category]) known[n.category] = { in_app: true };
    }
    const names = Object.keys(known).sort();
    const boxes = names.map((name) => {
      const box = h('input', { type: 'checkbox', 'data-c': name });
      box.checked = known[name]?.in_app !== false;
      return h('label', {}, box, name);
    });
    list.replaceChildren(...(boxes.length > 0 ? boxes : [h('p', { class: 'note' }, 'No categories yet.')]));
  }

  #render(): void {
    const state = this.#client?.state;
    // A styling hook: `tally-inbox:not([live])` is a bell whose stream is down (it reconnects by itself).
    this.toggleAttribute('live', state?.connected === true);
    this.#renderBadge(state);
    if (!state || !this.#open) return;
    if (state.counts && state.counts.unseen > 0 && this.#seenAt !== state.version) {
      this.#seenAt = state.version;
      this.#run(this.#client?.markAllSeen());
    }
    this.#renderFeed(state);
  }

  #renderBadge(state: InboxState | undefined): void {
    const kind = this.getAttribute('badge') === 'unread' ? 'unread' : 'unseen';
    const count = state?.counts?.[kind] ?? 0;
    const badge = this.#$<HTMLElement>('.badge');
    badge.hidden = count === 0;
    badge.textContent = String(count);
    this.#$('.bell').setAttribute('aria-label', count > 0 ? `Notifications, ${count} ${kind}` : 'Notifications');
    if (this.#announced !== undefined && this.#announced !== count) {
      this.#$('[role=status]').textContent = `${count} ${kind} notification${count === 1 ? '' : 's'}`;
    }
    if (state?.counts) this.#announced = count;
  }

  #renderFeed(state: InboxState): void {
    const feed = state.feeds[this.#feed];
    for (const [f] of TABS) {
      const tab = this.#$(`#t-${f}`);
      tab.setAttribute('aria-selected', String(f === this.#feed));
      tab.setAttribute('tabindex', f === this.#feed ? '0' : '-1');
    }
    const panel = this.#$('#f');
    panel.setAttribute('aria-labelledby', `t-${this.#feed}`);
    const focused = this.#root.activeElement?.getAttribute('data-k');
    this.#$('#f ul').replaceChildren(...feed.items.map((n) => this.#item(n)));
    if (focused && !this.#root.activeElement) {
      (this.#root.querySelector(`[data-k="${CSS.escape(focused)}"]`) as HTMLElement | null)?.focus();
      if (!this.#root.activeElement) (panel as HTMLElement).focus();
    }
    const note = this.#$<HTMLElement>('#f .note');
    note.textContent = !feed.loaded ? 'Loading…' : feed.items.length === 0 ? EMPTY[this.#feed] : '';
    note.hidden = note.textContent === '';
    const more = this.#$('.more');
    this.#observer?.unobserve(more);
    if (feed.loaded && feed.nextCursor !== null && !feed.loading) this.#observer?.observe(more);
  }

  #item(n: InboxNotification): HTMLLIElement {
    const url = safeUrl(n.actionUrl);
    const title = h('p', { class: 't' });
    if (!n.readAt) title.append(h('span', { class: 'sr' }, 'Unread: '));
    title.append(url ? h('a', { href: url }, n.title) : n.title);
    const content = h('div', { class: 'c' }, title);
    if (n.body) content.append(h('p', { class: 'b' }, n.body));
    content.append(h('time', { datetime: n.createdAt }, ago(n.createdAt)));
    if (n.actions?.length) {
      content.append(h('div', { class: 'acts' }, ...n.actions.map((a) => h('button', { 'data-k': `${n.id}:a:${a.id}` }, a.label))));
    }
    const tools = h(
      'div',
      { class: 'tools' },
      iconButton(`${n.id}:r`, n.readAt ? 'unread' : 'read', `${n.readAt ? 'Mark unread' : 'Mark read'}: ${n.title}`),
      iconButton(`${n.id}:x`, n.archivedAt ? 'unarchive' : 'archive', `${n.archivedAt ? 'Unarchive' : 'Archive'}: ${n.title}`),
    );
    return h('li', { class: n.readAt ? 'item' : 'item unread', 'data-id': n.id }, h('span', { class: 'dot' }), content, tools);
  }
}

if (!customElements.get('tally-inbox')) customElements.define('tally-inbox', TallyInbox);
