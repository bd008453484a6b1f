import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import type { FastifyInstance } from 'fastify';
import { type CompressedScript, compressScript, sendScript } from '../http/compressed-script.js';

// GET /inbox.js (the <tally-inbox> component, with its client inside), GET /inbox-client.js (the
// client alone, for pages that draw their own inbox) and GET /inbox-client.d.ts (its types).
// Both scripts are bundled from the TypeScript in src/inbox-ui/ by esbuild, minified and
// compressed once, on the first request (read from src/ when running from dist/ too, like the
// tracker). They are ES modules: a page on another origin loads them with CORS, which every
// route allows.

const SOURCE = new URL('../../src/inbox-ui/', import.meta.url);
const JS = 'application/javascript; charset=utf-8';

export interface InboxScripts {
  /** Minified ES modules, before compression. */
  minified: { component: string; client: string };
  component: CompressedScript;
  client: CompressedScript;
  types: CompressedScript;
}

async function bundle(entry: string): Promise<string> {
  const result = await build({
    entryPoints: [fileURLToPath(new URL(entry, SOURCE))],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    // Private class fields and optional chaining stay as written: every browser with custom
    // elements and EventSource that Tally supports runs ES2022.
    target: 'es2022',
    minify: true,
    legalComments: 'none',
    charset: 'utf8',
    write: false,
    logLevel: 'silent',
  });
  return (result.outputFiles[0] as { text: string }).text;
}

/** Bundles, minifies and compresses the inbox scripts (a few hundred milliseconds, once). */
export async function buildInboxScripts(): Promise<InboxScripts> {
  const [component, client, types] = await Promise.all([
    bundle('tally-inbox.ts'),
    bundle('inbox-client.ts'),
    readFile(new URL('inbox-client-types.ts', SOURCE), 'utf8'),
  ]);
  return {
    minified: { component, client },
    component: compressScript(component),
    client: compressScript(client),
    types: compressScript(types),
  };
}

export function registerInboxUiRoutes(app: FastifyInstance): void {
  let scripts: Promise<InboxScripts> | undefined;
  const built = () => {
    scripts ??= buildInboxScripts();
    return scripts;
  };
  app.get('/inbox.js', async (request, reply) => sendScript(request, reply, (await built()).component, JS));
  app.get('/inbox-client.js', async (request, reply) => {
    // Deno and some CDNs find a module's types through this header.
    reply.header('x-typescript-types', './inbox-client.d.ts');
    return sendScript(request, reply, (await built()).client, JS);
  });
  app.get('/inbox-client.d.ts', async (request, reply) =>
    sendScript(request, reply, (await built()).types, 'application/typescript; charset=utf-8'),
  );
}
