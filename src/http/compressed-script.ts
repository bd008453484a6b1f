import { createHash } from 'node:crypto';
import { brotliCompressSync, constants, gzipSync } from 'node:zlib';
import type { FastifyReply, FastifyRequest } from 'fastify';

// Scripts Tally serves to browsers (the tracker, the inbox component and its client): compressed
// once, each browser given the smallest encoding its Accept-Encoding allows, revalidated by ETag.

/** Browsers and CDNs may keep a script an hour, then revalidate with the ETag (a 304 costs nothing). */
export const SCRIPT_CACHE_CONTROL = 'public, max-age=3600, stale-while-revalidate=86400';

export type ScriptEncoding = 'br' | 'gzip' | 'identity';

interface Variant {
  body: Buffer;
  /** Differs per encoding: a strong ETag names one exact sequence of bytes. */
  etag: string;
}

export type CompressedScript = Record<ScriptEncoding, Variant>;

/** Every encoding of a text, compressed at the best level (once, at start or first request). */
export function compressScript(text: string): CompressedScript {
  const raw = Buffer.from(text);
  const hash = createHash('sha256').update(raw).digest('base64url').slice(0, 27);
  return {
    br: {
      body: brotliCompressSync(raw, {
        params: {
          [constants.BROTLI_PARAM_QUALITY]: constants.BROTLI_MAX_QUALITY,
          [constants.BROTLI_PARAM_MODE]: constants.BROTLI_MODE_TEXT,
          [constants.BROTLI_PARAM_SIZE_HINT]: raw.length,
        },
      }),
      etag: `"${hash}-br"`,
    },
    gzip: { body: gzipSync(raw, { level: constants.Z_BEST_COMPRESSION }), etag: `"${hash}-gz"` },
    identity: { body: raw, etag: `"${hash}"` },
  };
}

/** The encoding to send: br, then gzip, when Accept-Encoding allows it (q > 0, named or by `*`). */
export function chooseEncoding(acceptEncoding: string | undefined): ScriptEncoding {
  const weights = new Map<string, number>();
  for (const part of (acceptEncoding ?? '').split(',')) {
    const [name = '', ...params] = part.split(';').map((p) => p.trim().toLowerCase());
    if (name === '') continue;
    const q = params.find((p) => p.startsWith('q='));
    weights.set(name, q === undefined ? 1 : Number(q.slice(2)) || 0);
  }
  const allowed = (name: string) => (weights.get(name) ?? weights.get('*') ?? 0) > 0;
  if (allowed('br')) return 'br';
  if (allowed('gzip')) return 'gzip';
  return 'identity';
}

/** If-None-Match holds this ETag (compared weakly, as RFC 9110 asks for If-None-Match). */
function matches(request: FastifyRequest, etag: string): boolean {
  const given = request.headers['if-none-match'];
  return given?.split(',').some((tag) => tag.trim().replace(/^W\//, '') === etag) ?? false;
}

/** Answers with the variant the request accepts, or a 304 when it already holds it. */
export function sendScript(request: FastifyRequest, reply: FastifyReply, script: CompressedScript, contentType: string): FastifyReply {
  const encoding = chooseEncoding(request.headers['accept-encoding']);
  const variant = script[encoding];
  reply.header('cache-control', SCRIPT_CACHE_CONTROL).header('etag', variant.etag).header('vary', 'Accept-Encoding');
  if (matches(request, variant.etag)) return reply.code(304).send();
  if (encoding !== 'identity') reply.header('content-encoding', encoding);
  return reply.type(contentType).send(variant.body);
}
