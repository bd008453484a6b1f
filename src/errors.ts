// Every error Tally answers with is defined here, once, with its HTTP status and default
// sentence. Routes throw `tallyError(code, …)`; one handler (src/http/error-handler.ts) turns it
// into API.md's shape. test/errors.test.ts checks that API.md lists every code.

export const errorCatalogue = {
  invalid_json: { status: 400, message: 'The request body is not valid JSON.' },
  invalid_event: { status: 400, message: 'The event is not valid.' },
  invalid_request: { status: 400, message: 'The request is not valid.' },
  unauthorized: { status: 401, message: 'A valid key or token is required.' },
  forbidden: { status: 403, message: 'This key may not do that.' },
  not_found: { status: 404, message: 'Not found.' },
  method_not_allowed: { status: 405, message: 'That method is not allowed here.' },
  request_timeout: { status: 408, message: 'The request took too long to arrive.' },
  conflict: { status: 409, message: 'That conflicts with existing data.' },
  payload_too_large: { status: 413, message: 'The request body is too large.' },
  uri_too_long: { status: 414, message: 'A part of the URL is too long.' },
  unsupported_media_type: { status: 415, message: 'Send JSON (application/json or text/plain).' },
  rate_limited: { status: 429, message: 'Too many requests; retry later.' },
  headers_too_large: { status: 431, message: 'The request headers are too large.' },
  internal_error: { status: 500, message: 'Something went wrong on our side.' },
  overloaded: { status: 503, message: 'Tally is overloaded; retry later.' },
  unavailable: { status: 503, message: 'A storage backend is unreachable; retry later.' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof errorCatalogue;

export interface ErrorBody {
  error: { code: ErrorCode; message: string; path?: string };
}

export class TallyError extends Error {
  override readonly name = 'TallyError';
  readonly status: number;

  constructor(
    readonly code: ErrorCode,
    message: string = errorCatalogue[code].message,
    readonly path?: string,
    /** Seconds, sent as Retry-After (429 and 503). */
    readonly retryAfter?: number,
  ) {
    super(message);
    this.status = errorCatalogue[code].status;
  }

  toBody(): ErrorBody {
    const body: ErrorBody = { error: { code: this.code, message: this.message } };
    if (this.path !== undefined) body.error.path = this.path;
    return body;
  }
}

export function tallyError(code: ErrorCode, message?: string, path?: string): TallyError {
  return new TallyError(code, message, path);
}

/** JSON pointer (RFC 6901) of a path given as segments. */
export function jsonPointer(segments: readonly (string | number)[]): string {
  return segments.map((s) => '/' + String(s).replace(/~/g, '~0').replace(/\//g, '~1')).join('');
}
