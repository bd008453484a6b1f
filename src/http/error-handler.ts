import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyBaseLogger, FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { type ErrorCode, jsonPointer, TallyError } from '../errors.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Error code for schema validation failures on this route (default invalid_request). */
    validationCode?: ErrorCode;
  }
}

// Fastify's own errors, by code, mapped onto the catalogue.
const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'payload_too_large',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported_media_type',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'invalid_request',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'invalid_json',
  FST_ERR_CTP_INVALID_JSON_BODY: 'invalid_json',
  FST_ERR_BAD_URL: 'invalid_request',
  FST_ERR_MAX_PARAM_LENGTH: 'uri_too_long',
};

/**
 * Longest path parameter, as sent: ids may be 256 characters, and %-escaped UTF-8 takes up to
 * 9 per character; their schemas enforce the real limit. Longer is a 414 before routing.
 */
export const MAX_PARAM_LENGTH = 2048;

// Fastify's own messages for these quote the URL; the contract's sentences do not.
const URL_MESSAGES: Partial<Record<string, string>> = {
  FST_ERR_BAD_URL: 'The URL is not valid (a bad %-escape?).',
  FST_ERR_MAX_PARAM_LENGTH: `A path parameter is longer than ${MAX_PARAM_LENGTH} characters.`,
};

const BY_STATUS: Record<number, ErrorCode> = {
  400: 'invalid_request',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not_found',
  405: 'method_not_allowed',
  413: 'payload_too_large',
  415: 'unsupported_media_type',
  429: 'rate_limited',
  503: 'unavailable',
};

function fromValidation(err: FastifyError, code: ErrorCode): TallyError {
  const first = err.validation?.[0];
  let path = first?.instancePath ?? '';
  const missing = (first?.params as { missingProperty?: string } | undefined)?.missingProperty;
  if (missing) path += jsonPointer([missing]);
  const where = err.validationContext === 'body' || !err.validationContext ? '' : `${err.validationContext} `;
  const message = `${where}${path || 'value'} ${first?.message ?? 'is not valid'}.`;
  return new TallyError(code, message, path || undefined);
}

// Connection failures of Redis (ioredis) or PostgreSQL (pg): the request may be retried later.
const BACKEND_DOWN =
  /ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|Connection is closed|Connection terminated|MaxRetriesPerRequest|Reached the max retries|connect timeout|timeout exceeded when trying to connect|Cluster isn't ready|CLUSTERDOWN/i;

function isBackendDown(err: Error): boolean {
  return (
    err.name === 'MaxRetriesPerRequestError' ||
    BACKEND_DOWN.test(err.message) ||
    BACKEND_DOWN.test(String((err as { code?: unknown }).code))
  );
}

function toTallyError(err: FastifyError, validationCode: ErrorCode): TallyError {
  if (err instanceof TallyError) return err;
  if (isBackendDown(err)) return new TallyError('unavailable', undefined, undefined, 5);
  if (err.validation) return fromValidation(err, validationCode);
  const mapped = err.code ? FASTIFY_CODES[err.code] : undefined;
  if (mapped) return new TallyError(mapped, URL_MESSAGES[err.code]);
  if (err instanceof SyntaxError) return new TallyError('invalid_json');
  const byStatus = err.statusCode ? BY_STATUS[err.statusCode] : undefined;
  if (byStatus) return new TallyError(byStatus, err.statusCode && err.statusCode < 500 ? err.message : undefined);
  return new TallyError('internal_error');
}

/** How long 503s are counted before their number is logged. */
export const REFUSAL_LOG_INTERVAL_MS = 60_000;

/**
 * Under overload or an outage every request is refused the same way: a log line (and a stack
 * trace) per request would add load where there is none to spare and bury the cause. The first
 * refusal of an interval is logged at once; those after it are counted and logged, by code, when
 * the interval ends (or the app closes).
 */
function createRefusalLog(log: FastifyBaseLogger) {
  let counts: Map<ErrorCode, number> | undefined;
  let timer: NodeJS.Timeout | undefined;
  const report = () => {
    for (const [code, count] of counts ?? []) log.warn({ code, count }, `answered ${count} more requests with 503 ${code}`);
    counts = undefined;
    clearTimeout(timer);
    timer = undefined;
  };
  return {
    note(code: ErrorCode, cause: Error) {
      if (counts) {
        counts.set(code, (counts.get(code) ?? 0) + 1);
        return;
      }
      const reason = cause instanceof TallyError ? undefined : cause.message;
      log.warn({ code, count: 1, reason }, `answered a request with 503 ${code}; more are counted for ${REFUSAL_LOG_INTERVAL_MS / 1000} s`);
      counts = new Map();
      timer = setTimeout(report, REFUSAL_LOG_INTERVAL_MS).unref();
    },
    report,
  };
}

/** Methods a 405 may name: OPTIONS is left out, CORS answers it on every path. */
const ROUTE_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;
/** A 404 names the path it did not find, this much of it. */
const MAX_ECHOED_PATH = 200;

function sendError(reply: FastifyReply, err: TallyError): FastifyReply {
  if (err.retryAfter !== undefined) reply.header('retry-after', String(err.retryAfter));
  return reply.status(err.status).send(err.toBody());
}

/**
 * Errors Fastify meets before any route runs (a bad %-escape in the path, a path parameter over
 * maxParamLength): its `frameworkErrors` option, so they get the contract's body too.
 */
export function answerFrameworkError(err: FastifyError, _request: FastifyRequest, reply: FastifyReply): FastifyReply {
  return sendError(reply, toTallyError(err, 'invalid_request'));
}

/**
 * Errors Node's HTTP parser meets before Fastify sees a request (its `clientErrorHandler`
 * option): headers over the size limit, a request that did not arrive within requestTimeout,
 * bytes that are not HTTP. The answer is written on the socket by hand, then it is closed.
 */
export function answerClientError(err: Error & { code?: string; rawPacket?: unknown }, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const code: ErrorCode =
    err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? 'request_timeout'
      : err.code === 'HPE_HEADER_OVERFLOW'
        ? 'headers_too_large'
        : 'invalid_request';
  const tallyErr = new TallyError(code, code === 'invalid_request' ? 'The request is not valid HTTP.' : undefined);
  // A response already under way on this connection (a live stream) cannot be followed by another.
  const current = (socket as Socket & { _httpMessage?: { headersSent: boolean } })._httpMessage;
  if (socket.writable && !current?.headersSent) {
    const body = JSON.stringify(tallyErr.toBody());
    // The answer to a HEAD has no body (its client would read one as garbage); the request line
    // is at the start of what the parser was given when it failed on the first request.
    const head = Buffer.isBuffer(err.rawPacket) && err.rawPacket.subarray(0, 5).toString('latin1') === 'HEAD ';
    socket.write(
      `HTTP/1.1 ${tallyErr.status} ${STATUS_CODES[tallyErr.status]}\r\nContent-Type: application/json; charset=utf-8\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${head ? '' : body}`,
    );
  }
  socket.destroy();
}

/** One handler for every error: API.md's shape; details of 5xx are logged, never sent. */
export function registerErrorHandling(app: FastifyInstance): void {
  const refusals = createRefusalLog(app.log);
  app.addHook('onClose', async () => refusals.report());
  app.setErrorHandler((err: FastifyError, request, reply) => {
    const tallyErr = toTallyError(err, request.routeOptions.config.validationCode ?? 'invalid_request');
    if (tallyErr.status === 503) refusals.note(tallyErr.code, err);
    else if (tallyErr.status >= 500) request.log.error({ err }, 'request failed');
    return sendError(reply, tallyErr);
  });
  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0] ?? '';
    const allowed = ROUTE_METHODS.filter((method) => method !== request.method && app.findRoute({ method, url: path }) !== null);
    if (allowed.length > 0) {
      reply.header('allow', allowed.join(', '));
      return sendError(reply, new TallyError('method_not_allowed', `${request.method} is not allowed here; use ${allowed.join(' or ')}.`));
    }
    const shown = path.length > MAX_ECHOED_PATH ? `${path.slice(0, MAX_ECHOED_PATH)}…` : path;
    return sendError(reply, new TallyError('not_found', `No route ${request.method} ${shown}.`));
  });
}
