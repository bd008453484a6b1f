import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SCRIPT_CACHE_CONTROL } from '../src/http/compressed-script.js';
import { openTestApp, type TestApp } from './helpers.js';

// GET /inbox.js, /inbox-client.js and /inbox-client.d.ts: what a page or a TypeScript project
// loads from Tally. The component's size is the limit (12 KB gzipped, as sent).

const GZIP_LIMIT = 12 * 1024;
const TSC = new URL('../node_modules/typescript/bin/tsc', import.meta.url).pathname;

describe('the inbox scripts', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await openTestApp('embedded');
  });
  afterAll(() => t?.close());

  const get = (url: string, headers: Record<string, string> = {}) => t.app.inject({ method: 'GET', url, headers });

  it('sends <tally-inbox> under 12 KB gzipped, as br or gzip as asked, each the same module', async () => {
    const gz = await get('/inbox.js', { 'accept-encoding': 'gzip' });
    const br = await get('/inbox.js', { 'accept-encoding': 'gzip, br' });
    const plain = await get('/inbox.js');
    expect(gz.headers['content-encoding']).toBe('gzip');
    expect(br.headers['content-encoding']).toBe('br');
    expect(gz.rawPayload.length).toBeLessThan(GZIP_LIMIT);
    expect(br.rawPayload.length).toBeLessThan(gz.rawPayload.length);
    expect(gunzipSync(gz.rawPayload).toString()).toBe(plain.body);
    expect(brotliDecompressSync(br.rawPayload).toString()).toBe(plain.body);
    expect(plain.headers['content-type']).toBe('application/javascript; charset=utf-8');
    expect(plain.body).toContain('customElements.define("tally-inbox"');
    // Dependency-free: one module, nothing imported.
    expect(plain.body).not.toMatch(/\bimport\s*[{*"'(]|\bimport\s+\w+\s+from\b/);
  });

  it('answers 304 to a matching ETag, lets any origin load the modules, and links the client to its types', async () => {
    for (const url of ['/inbox.js', '/inbox-client.js', '/inbox-client.d.ts']) {
      const res = await get(url, { origin: 'https://shop.example' });
      expect(res.statusCode, url).toBe(200);
      expect(res.headers['cache-control']).toBe(SCRIPT_CACHE_CONTROL);
      expect(res.headers['access-control-allow-origin']).toBe('https://shop.example');
      const again = await get(url, { 'if-none-match': res.headers['etag'] as string });
      expect(again.statusCode, url).toBe(304);
    }
    const client = await get('/inbox-client.js');
    expect(client.headers['x-typescript-types']).toBe('./inbox-client.d.ts');
    expect(client.body).toMatch(/export\s*\{[^}]*createInboxClient/);
    expect((await get('/inbox-client.d.ts')).headers['content-type']).toBe('application/typescript; charset=utf-8');
  });

  it('serves types a TypeScript project compiles against; a wrong call does not compile', { timeout: 60_000 }, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tally-inbox-types-'));
    try {
      await writeFile(join(dir, 'inbox-client.d.ts'), (await get('/inbox-client.d.ts')).body);
      const compile = async (code: string) => {
        await writeFile(join(dir, 'page.ts'), code);
        const args = ['--noEmit', '--strict', '--target', 'es2022', '--module', 'esnext', '--moduleResolution', 'bundler'];
        return promisify(execFile)(process.execPath, [TSC, ...args, '--lib', 'es2022,dom', '--types', '', 'page.ts'], { cwd: dir }).then(
          () => '',
          (err: { stdout: string }) => err.stdout,
        );
      };
      const good = `import { createInboxClient, type InboxState } from './inbox-client.js';
const client = createInboxClient({ token: 'tut_x.y', apiBase: 'https://tally.example', tenant: 'team-7' });
client.subscribe((state: InboxState) => console.log(state.counts?.unseen, state.feeds.archived.items[0]?.actions?.[0]?.label));
client.connect();
await client.load('unread');
await client.markRead('n-1');
await client.setPreferences({ categories: { marketing: { in_app: false } } });
client.close();
`;
      expect(await compile(good)).toBe('');
      expect(await compile(good.replace("client.markRead('n-1')", 'client.markRead(1)'))).toMatch(/TS2345/);
      expect(await compile(good.replace("client.load('unread')", "client.load('new')"))).toMatch(/TS2345/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
