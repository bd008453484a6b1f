import { Transform, type TransformCallback } from 'node:stream';
import { createGunzip, createInflate } from 'node:zlib';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { TallyError } from '../errors.js';

// Compressed request bodies on the collect routes. RudderStack's Node SDK gzips every batch by
// default; others send deflate. The route's body limit applies to the inflated body as it
// streams: the inflater is stopped the moment the output passes the limit, so a small body that
// inflates to gigabytes (a "zip bomb") costs at most the limit in memory and in work.

const INFLATERS: Record<string, () => Transform> = {
  gzip: createGunzip,
  // RFC 9110: x-gzip is gzip under its old name.
  'x-gzip': createGunzip,
  // HTTP's "deflate" is the zlib format (RFC 1950), which is what zlib.deflate and
  // CompressionStream('deflate') produce.
  deflate: createInflate,
};

const tooLarge = (limit: number) => new TallyError('payload_too_large', `The request body inflates past ${limit} bytes.`);

/**
 * Passes inflated bytes on until there are more than `limit`, then fails. Fastify reads
 * `receivedEncodedLength` to check Content-Length against the bytes that came over the wire.
 */
class InflatedBody extends Transform {
  receivedEncodedLength = 0;
  private inflated = 0;

  constructor(private readonly limit: number) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.inflated += chunk.length;
    if (this.inflated > this.limit) callback(tooLarge(this.limit));
    else callback(null, chunk);
  }
}

/** A route's preParsing hook: the body as sent, or inflated under the route's body limit. */
export async function inflateBody(
  request: FastifyRequest,
  _reply: FastifyReply,
  payload: NodeJS.ReadableStream,
): Promise<NodeJS.ReadableStream> {
  const encoding = (request.headers['content-encoding'] ?? 'identity').trim().toLowerCase();
  if (encoding === 'identity' || encoding === '') return payload;
  const createInflater = INFLATERS[encoding];
  if (!createInflater) {
    throw new TallyError('unsupported_media_type', `Content-Encoding "${encoding}" is not supported: send gzip, deflate or no encoding.`);
  }
  const limit = request.routeOptions.bodyLimit;
  const inflater = createInflater();
  const body = new InflatedBody(limit);
  // Whatever fails, stop inflating and let the rest of the upload drain unread (as Fastify does
  // past its own limit), so the answer can still go out on the connection.
  const stop = () => {
    payload.unpipe(inflater);
    inflater.destroy();
    payload.resume();
  };
  payload.on('data', (chunk: Buffer) => {
    body.receivedEncodedLength += chunk.length;
    if (body.receivedEncodedLength > limit) body.destroy(tooLarge(limit));
  });
  // Fastify listens to the stream returned here, not to the request: a client that aborts must end it.
  payload.on('error', (err) => body.destroy(err));
  inflater.on('error', () =>
    body.destroy(new TallyError('invalid_json', `The ${encoding} body is corrupt or truncated: it does not inflate.`)),
  );
  body.on('error', stop);
  payload.pipe(inflater).pipe(body);
  return body;
}
