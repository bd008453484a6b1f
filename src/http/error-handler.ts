import type { FastifyError, FastifyInstance } from 'fastify';
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
const BACKEND_DOWN = /ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|Connection is closed|Connection terminated|MaxRetriesPerRequest|Reached the max retries|connect timeout|timeout exceeded when trying to connect|Cluster isn't ready|CLUSTERDOWN/i;

function isBackendDown(err: Error): boolean {
  return err.name === 'MaxRetriesPerRequestError' || BACKEND_DOWN.test(err.message) || BACKEND_DOWN.test(String((err as { code?: unknown }).code));
}

function toTallyError(err: FastifyError, validationCode: ErrorCode): TallyError {
  if (err instanceof TallyError) return err;
  if (isBackendDown(err)) return new TallyError('unavailable', undefined, undefined, 5);
  if (err.validation) return fromValidation(err, validationCode);
  const mapped = err.code ? FASTIFY_CODES[err.code] : undefined;
  if (mapped) return new TallyError(mapped);
  if (err instanceof SyntaxError) return new TallyError('invalid_json');
  const byStatus = err.statusCode ? BY_STATUS[err.statusCode] : undefined;
  if (byStatus) return new TallyError(byStatus, err.statusCode && err.statusCode < 500 ? err.message : undefined);
  return new TallyError('internal_error');
}

/** One handler for every error: API.md's shape; details of 5xx are logged, never sent. */
export function registerErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError, request, reply) => {
    const tallyErr = toTallyError(err, request.routeOptions.config.validationCode ?? 'invalid_request');
    if (tallyErr.status >= 500) request.log.error({ err }, 'request failed');
    if (tallyErr.retryAfter !== undefined) reply.header('retry-after', String(tallyErr.retryAfter));
    return reply.status(tallyErr.status).send(tallyErr.toBody());
  });
  app.setNotFoundHandler((request, reply) => {
    const err = new TallyError('not_found', `No route ${request.method} ${request.url.split('?')[0]}.`);
    return reply.status(404).send(err.toBody());
  });
}

