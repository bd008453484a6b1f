import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium, skipWithoutChromium } from './chromium.js';
import { eventually, type Mode, openTestApp, type TestApp, uniqueName } from './helpers.js';

// The drop-in inbox in Debian's Chromium, as a site would use it: a plain HTML page on another
// origin than Tally's, with nothing but the two documented lines (the script from Tally, and the
// element with a user token). Notifications are created and read through the API, as a site's
// server would; the page is looked at through its shadow DOM (Playwright's locators pierce it).

const AXE_SOURCE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
/** The promise: a new notification shows in every open tab within a second. */
const LIVE_MS = 1000;

describe.skipIf(skipWithoutChromium('inbox-browser.test.ts')).each<Mode>(['external', 'embedded'])(
  '<tally-inbox> in Chromium (%s)',
  (mode) => {
    let t: TestApp;
    let browser: Browser;
    let site: Server;
    let siteUrl: string;
    let tallyUrl: string;
    const pageErrors: string[] = [];

    beforeAll(async () => {
      t = await openTestApp(mode);
      tallyUrl = await t.app.listen({ port: 0, host: '127.0.0.1' });
      site = createServer((req, res) => {
        const url = new URL(req.url ?? '/', 'http://localhost');
        if (url.pathname === '/done') return res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>Done</title>');
        if (url.pathname !== '/') return res.writeHead(404).end();
        const token = url.searchParams.get('token') ?? '';
        // The two lines of the README, and nothing else that matters.
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>A shop</title></head><body><main><h1>A shop</h1>
<script type="module" src="${tallyUrl}/inbox.js"></script>
<tally-inbox user-token="${token}"></tally-inbox>
</main></body></html>`);
      });
      await new Promise<void>((resolve) => site.listen(0, '127.0.0.1', resolve));
      // Another origin than Tally's (localhost, not 127.0.0.1): every request of the bell is a CORS request.
      siteUrl = `http://localhost:${(site.address() as AddressInfo).port}`;
      browser = await launchChromium();
    }, 120_000);

    afterAll(async () => {
      await browser?.close();
      await new Promise((resolve) => site?.close(resolve));
      await t?.close();
      expect(pageErrors).toEqual([]);
    });

    const api = async (method: 'GET' | 'POST' | 'PUT', url: string, payload?: Record<string, unknown>) => {
      const res = await t.app.inject({ method, url, headers: { authorization: t.bearer }, ...(payload ? { payload } : {}) });
      expect(res.statusCode, `${method} ${url}: ${res.body}`).toBeLessThan(300);
      return res.json() as Record<string, any>;
    };

    /** A tab of the user's, once the bell has its first count from the stream. */
    async function openTab(userId: string): Promise<Page> {
      const { token } = await api('POST', `/v1/users/${userId}/token`);
      const page = await browser.newPage();
      page.on('pageerror', (err) => pageErrors.push(err.message));
      await page.goto(`${siteUrl}/?token=${encodeURIComponent(token)}`);
      await page.locator('tally-inbox[live]').waitFor();
      return page;
    }

    /** The badge's text, or null when it is hidden. */
    const badgeOf = (page: Page) =>
      page.evaluate(() => {
        const badge = document.querySelector('tally-inbox')?.shadowRoot?.querySelector('.badge') as HTMLElement | null;
        return badge && !badge.hidden ? badge.textContent : null;
      });
    const itemTitles = (page: Page) => page.locator('tally-inbox li .t').allTextContents();
    /**
     * Notes, by the page's own clock (the machine's, as the test's), when the component first shows
     * `text` in an element matching `selector`; `shownAt` reads it. Timing by the page spares the
     * figure the test's polling delay.
     */
    const watchFor = (page: Page, selector: string, text: string | null) =>
      page.evaluate(
        ([selector, text]) => {
          const root = document.querySelector('tally-inbox')?.shadowRoot as ShadowRoot;
          const w = window as unknown as { shownAt?: number };
          delete w.shownAt;
          const check = () => {
            const el = root.querySelector(selector) as HTMLElement | null;
            const shown = el && !el.hidden ? el.textContent : null;
            if (w.shownAt === undefined && shown === text) w.shownAt = Date.now();
          };
          new MutationObserver(check).observe(root, { subtree: true, childList: true, attributes: true, characterData: true });
        },
        [selector, text] as const,
      );
    const shownAt = async (page: Page) => {
      const at = await eventually(async () => {
        const value = await page.evaluate(() => (window as unknown as { shownAt?: number }).shownAt);
        expect(value).toBeTypeOf('number');
        return value as number;
      });
      return at;
    };

    const openPanel = async (page: Page) => {
      await page.locator('tally-inbox .bell').click();
      await eventually(async () => expect(await page.locator('tally-inbox [role=dialog]').isVisible()).toBe(true));
    };

    it('loads from another origin with the two lines; a new notification shows in two tabs within a second', {
      timeout: 60_000,
    }, async () => {
      // The component reads the user from the token: any characters, as UTF-8.
      const user = `Zoë_ü-${uniqueName('u')}`;
      const [a, b] = [await openTab(user), await openTab(user)];
      for (const tab of [a, b]) {
        await openPanel(tab);
        await eventually(async () => expect(await tab.locator('tally-inbox #f .note').textContent()).toBe('No notifications yet.'));
      }
      for (const tab of [a, b]) await watchFor(tab, 'li .t', 'Unread: Your export is ready');
      const started = Date.now();
      await api('POST', '/v1/notifications', { userId: user, title: 'Your export is ready', body: 'Download it.' });
      for (const tab of [a, b]) expect((await shownAt(tab)) - started).toBeLessThan(LIVE_MS);
      for (const tab of [a, b]) expect(await itemTitles(tab)).toEqual(['Unread: Your export is ready']);
      await Promise.all([a.close(), b.close()]);
    });

    it('opening the panel in one tab clears the unseen badge in the other; reading there updates its unread badge', {
      timeout: 60_000,
    }, async () => {
      const user = uniqueName('u');
      const [a, b] = [await openTab(user), await openTab(user)];
      await api('POST', '/v1/notifications', { userId: user, title: 'Invoice for July' });
      await api('POST', '/v1/notifications', { userId: user, title: 'New follower' });
      for (const tab of [a, b]) await eventually(async () => expect(await badgeOf(tab)).toBe('2'));
      expect(await b.locator('tally-inbox .bell').getAttribute('aria-label')).toBe('Notifications, 2 unseen');
      await openPanel(a);
      await eventually(async () => expect(await itemTitles(a)).toEqual(['Unread: New follower', 'Unread: Invoice for July']));
      await eventually(async () => expect(await badgeOf(b)).toBeNull());
      // Seen, not read: the badge of unread notifications still counts both.
      await b.evaluate(() => document.querySelector('tally-inbox')?.setAttribute('badge', 'unread'));
      await eventually(async () => expect(await badgeOf(b)).toBe('2'));
      const markRead = a.locator('tally-inbox button[aria-label="Mark read: Invoice for July"]');
      await markRead.waitFor();
      await watchFor(b, '.badge', '1');
      // From the click as the page sees it (Playwright's own checks before clicking are not Tally's time).
      await a.evaluate(() =>
        document.addEventListener('click', () => Object.assign(window, { clickedAt: Date.now() }), { capture: true, once: true }),
      );
      await markRead.click();
      const clickedAt = await a.evaluate(() => (window as unknown as { clickedAt: number }).clickedAt);
      expect((await shownAt(b)) - clickedAt).toBeLessThan(LIVE_MS);
      expect(await b.locator('tally-inbox .bell').getAttribute('aria-label')).toBe('Notifications, 1 unread');
      await a.locator('tally-inbox button', { hasText: 'Mark all read' }).click();
      await eventually(async () => expect(await badgeOf(b)).toBeNull(), LIVE_MS, 20);
      expect(await api('GET', `/v1/users/${user}/notifications/counts`)).toEqual({ unseen: 0, unread: 0, total: 2 });
      await Promise.all([a.close(), b.close()]);
    });

    it('archives and unarchives between the tabs; an action button records the click, marks read and follows its url', {
      timeout: 60_000,
    }, async () => {
      const user = uniqueName('u');
      const { id } = await api('POST', '/v1/notifications', {
        userId: user,
        title: 'Export ready',
        actionUrl: `${siteUrl}/done?from=title`,
        actions: [
          { id: 'download', label: 'Download', url: `${siteUrl}/done?from=action` },
          { id: 'later', label: 'Later' },
        ],
      });
      await api('POST', '/v1/notifications', { userId: user, title: 'Older one' });
      const page = await openTab(user);
      await openPanel(page);
      await eventually(async () => expect(await itemTitles(page)).toEqual(['Unread: Older one', 'Unread: Export ready']));
      await page.locator('tally-inbox button[aria-label="Archive: Older one"]').click();
      await eventually(async () => expect(await itemTitles(page)).toEqual(['Unread: Export ready']));
      await eventually(async () =>
        expect(
          (await api('GET', `/v1/users/${user}/notifications?status=archived`))['items'].map((n: { title: string }) => n.title),
        ).toEqual(['Older one']),
      );
      expect(await api('GET', `/v1/users/${user}/notifications/counts`)).toMatchObject({ total: 1, unread: 1 });
      await page.locator('tally-inbox [role=tab]', { hasText: 'Archived' }).click();
      await eventually(async () => expect(await itemTitles(page)).toEqual(['Unread: Older one']));
      await page.locator('tally-inbox button[aria-label="Unarchive: Older one"]').click();
      await eventually(async () => expect(await itemTitles(page)).toEqual([]));
      await page.locator('tally-inbox [role=tab]', { hasText: 'All' }).click();
      await eventually(async () => expect(await itemTitles(page)).toEqual(['Unread: Older one', 'Unread: Export ready']));
      expect(await page.locator('tally-inbox li .t a').getAttribute('href')).toBe(`${siteUrl}/done?from=title`);
      await page.locator('tally-inbox .acts button', { hasText: 'Download' }).click();
      await page.waitForURL(`${siteUrl}/done?from=action`);
      expect((await api('GET', `/v1/notifications/${id}`))['readAt']).not.toBeNull();
      expect(await api('GET', `/v1/users/${user}/notifications/counts`)).toMatchObject({ total: 2, unread: 1 });
      await page.close();
    });

    it('switches a category off in the preferences view, and the API then has it off', { timeout: 60_000 }, async () => {
      const user = uniqueName('u');
      await api('POST', '/v1/notifications', { userId: user, title: 'Spring sale', category: 'marketing' });
      await api('POST', '/v1/notifications', { userId: user, title: 'Password changed', category: 'security' });
      const page = await openTab(user);
      await openPanel(page);
      await eventually(async () => expect(await itemTitles(page)).toHaveLength(2));
      await page.locator('tally-inbox button[aria-label=Preferences]').click();
      const marketing = page.locator('tally-inbox label', { hasText: 'marketing' }).locator('input');
      await eventually(async () => expect(await marketing.isChecked()).toBe(true));
      await marketing.uncheck();
      await eventually(async () =>
        expect((await api('GET', `/v1/users/${user}/preferences`))['categories']).toMatchObject({ marketing: { in_app: false } }),
      );
      expect((await api('GET', `/v1/users/${user}/preferences`))['categories']['security']?.in_app).not.toBe(false);
      await page.close();
    });

    it('has no serious or critical axe-core violations with the panel open (feed and preferences)', { timeout: 60_000 }, async () => {
      const user = uniqueName('u');
      await api('POST', '/v1/notifications', { userId: user, title: 'Read one', body: 'Old news.', category: 'news' });
      const [{ id: readId }] = (await api('GET', `/v1/users/${user}/notifications`))['items'];
      await api('POST', `/v1/notifications/${readId}/read`);
      await api('POST', '/v1/notifications', { userId: user, title: 'Unread one', body: 'Fresh.', category: 'news' });
      const page = await openTab(user);
      await openPanel(page);
      await eventually(async () => expect(await itemTitles(page)).toHaveLength(2));
      await page.addScriptTag({ content: AXE_SOURCE });
      const serious = () =>
        page.evaluate(async () => {
          const axe = (
            window as unknown as {
              axe: { run(context: Node): Promise<{ violations: { id: string; impact: string; nodes: unknown[] }[] }> };
            }
          ).axe;
          const { violations } = await axe.run(document);
          return violations.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => `${v.id} (${v.impact})`);
        });
      expect(await serious()).toEqual([]);
      await page.locator('tally-inbox button[aria-label=Preferences]').click();
      await eventually(async () => expect(await page.locator('tally-inbox label', { hasText: 'news' }).count()).toBe(1));
      expect(await serious()).toEqual([]);
      await page.close();
    });

    it('works from the keyboard: Enter opens, arrows move between tabs, Escape closes and gives focus back', {
      timeout: 60_000,
    }, async () => {
      const user = uniqueName('u');
      const page = await openTab(user);
      const bell = page.locator('tally-inbox .bell');
      await bell.focus();
      await page.keyboard.press('Enter');
      expect(await bell.getAttribute('aria-expanded')).toBe('true');
      const focused = () => page.evaluate(() => document.querySelector('tally-inbox')?.shadowRoot?.activeElement?.textContent ?? null);
      expect(await focused()).toBe('All');
      await page.keyboard.press('ArrowRight');
      expect(await focused()).toBe('Archived');
      expect(await page.locator('tally-inbox #t-archived').getAttribute('aria-selected')).toBe('true');
      await page.keyboard.press('ArrowRight');
      expect(await focused()).toBe('Unread');
      await page.keyboard.press('End');
      expect(await focused()).toBe('Archived');
      await page.keyboard.press('Escape');
      expect(await bell.getAttribute('aria-expanded')).toBe('false');
      expect(await page.locator('tally-inbox [role=dialog]').isVisible()).toBe(false);
      expect(await page.evaluate(() => document.querySelector('tally-inbox')?.shadowRoot?.activeElement?.className)).toBe('bell');
      await page.close();
    });

    it('scrolls the feed without end: pages load as the list bottom comes into view', { timeout: 60_000 }, async () => {
      const user = uniqueName('u');
      const notifications = Array.from({ length: 45 }, (_, i) => ({ userId: user, title: `Note ${i + 1}` }));
      await api('POST', '/v1/notifications/batch', { notifications });
      const page = await openTab(user);
      await openPanel(page);
      await eventually(async () => expect(await itemTitles(page)).toHaveLength(20));
      // Scrolled to the end of the list, the next page loads (20 more); at the end again, the last 5.
      for (const loaded of [40, 45]) {
        await page.evaluate(() => {
          const feed = document.querySelector('tally-inbox')?.shadowRoot?.querySelector('#f') as HTMLElement;
          feed.scrollTop = feed.scrollHeight;
        });
        await eventually(async () => expect(await itemTitles(page)).toHaveLength(loaded));
      }
      expect((await itemTitles(page)).at(-1)).toBe('Unread: Note 1');
      await page.close();
    });
  },
);

describe.skipIf(skipWithoutChromium('inbox-browser.test.ts'))('the inbox client against a scripted stream', () => {
  // A server that speaks the stream's protocol but misbehaves on purpose, as Tally never does on
  // request: it refuses the first connection, sends pushes out of order, drops the connection.
  // The client must drop every push older than one it has, and reconnect both ways.
  let t: TestApp;
  let browser: Browser;
  let server: Server;
  const streams: string[] = [];

  beforeAll(async () => {
    t = await openTestApp('embedded');
    const tallyUrl = await t.app.listen({ port: 0, host: '127.0.0.1' });
    server = createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://localhost');
      if (url.pathname === '/') {
        return res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(`<!doctype html><title>Client</title>
<script type="module">
import { createInboxClient } from '${tallyUrl}/inbox-client.js';
window.versions = [];
const client = createInboxClient({ token: 'tut_test.sig', userId: 'u-1', apiBase: location.origin });
client.subscribe((state) => window.versions.push([state.version, state.counts && state.counts.unread]));
client.connect();
window.client = client;
</script>`);
      }
      if (url.pathname !== '/v1/users/u-1/notifications/stream') return res.writeHead(404).end();
      streams.push(url.search);
      const push = (version: number, unread: number) =>
        res.write(`data: ${JSON.stringify({ unread, version, counts: { unseen: unread, unread, total: unread } })}\n\n`);
      if (streams.length === 1) return res.writeHead(503).end();
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      if (streams.length === 2) {
        res.write('retry: 100\n\n');
        push(3, 3);
        push(1, 1);
        push(5, 5);
        return res.end();
      }
      push(4, 4);
      push(6, 6);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    browser = await launchChromium();
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    server?.closeAllConnections();
    await new Promise((resolve) => server?.close(resolve));
    await t?.close();
  });

  it('drops pushes older than the last, and reconnects after a refusal and after a drop', { timeout: 60_000 }, async () => {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (err) => errors.push(err.message));
    await page.goto(`http://localhost:${(server.address() as AddressInfo).port}/`);
    await eventually(async () =>
      expect(await page.evaluate(() => (window as unknown as { client: { state: { version: number } } }).client.state.version)).toBe(6),
    );
    const versions = await page.evaluate(() => (window as unknown as { versions: [number, number | null][] }).versions);
    expect([...new Map(versions.map(([version, unread]) => [version, unread])).entries()]).toEqual([
      [0, null],
      [3, 3],
      [5, 5],
      [6, 6],
    ]);
    expect(streams).toEqual(Array.from({ length: 3 }, () => '?token=tut_test.sig'));
    expect(errors).toEqual([]);
    await page.close();
  });
});
