import type { FastifyRequest } from 'fastify';

// How a request appears in a log line. Fastify's own serializer writes the URL as received, and a
// browser's EventSource carries its user token in it (`?token=`, stream routes only): the value is
// replaced before any line is written, whichever route or log level writes it.

/** The URL with the value of every `token` query parameter replaced. */
export function redactUrl(url: string): string {
  const query = url.indexOf('?');
  if (query < 0) return url;
  const params = url
    .slice(query + 1)
    .split('&')
    .map((param) => (/^token(=|$)/i.test(param) ? 'token=[redacted]' : param));
  return `${url.slice(0, query)}?${params.join('&')}`;
}

/** Fastify's request serializer, with the URL redacted. */
export function serializeRequest(request: FastifyRequest) {
  return {
    method: request.method,
    url: redactUrl(request.url),
    host: request.host,
    remoteAddress: request.ip,
    remotePort: request.socket?.remotePort,
  };
}
