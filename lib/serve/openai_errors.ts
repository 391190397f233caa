/**
 * Errors in OpenAI's shape, `{ "error": { "message", "type", "param", "code" } }`, with the HTTP
 * status OpenAI's API (and its clients' retry rules) give them: 400 bad request, 401 bad key,
 * 403 not allowed, 404 unknown model or route, 413 body too large, 415 not JSON, 429 server full,
 * 500 internal, 503 shutting down, 504 past the request's time limit.
 */
import { TunekitError } from '../errors.js';

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: string = status >= 500 ? 'server_error' : 'invalid_request_error',
    readonly code: string | null = null,
    readonly param: string | null = null,
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

/** The JSON body of an error response. */
export function errorBody(e: HttpError): { error: { message: string; type: string; param: string | null; code: string | null } } {
  return { error: { message: e.message, type: e.type, param: e.param, code: e.code } };
}

/** TunekitError code -> HTTP status, OpenAI error type and code. */
const BY_TUNEKIT_CODE: Record<string, [number, string, string]> = {
  ERR_NOT_FOUND: [404, 'invalid_request_error', 'not_found'],
  ERR_VALUE: [400, 'invalid_request_error', 'invalid_value'],
  ERR_CONFIG: [400, 'invalid_request_error', 'invalid_value'],
  ERR_FORMAT: [400, 'invalid_request_error', 'invalid_format'],
  ERR_SHAPE: [400, 'invalid_request_error', 'invalid_value'],
  ERR_LIMIT: [400, 'invalid_request_error', 'limit_exceeded'],
  ERR_UNSUPPORTED: [400, 'invalid_request_error', 'unsupported'],
  ERR_TIMEOUT: [504, 'timeout_error', 'timeout'],
  ERR_CANCELLED: [503, 'server_error', 'cancelled'],
};

/** Fastify's own errors (body parsing, limits) -> codes in the same words. */
const BY_FASTIFY_CODE: Record<string, string> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'request_too_large',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported_media_type',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'invalid_content_length',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'invalid_json',
  FST_ERR_CTP_INVALID_JSON_BODY: 'invalid_json',
};

/**
 * Any thrown value as an HttpError: our own pass through, TunekitErrors by code, Fastify's 4xx
 * errors (malformed JSON, body too large, wrong content type) with their status, anything else a
 * 500 whose message does not leak internals beyond the error's own message.
 * @example reply.code(h.status).send(errorBody(toHttpError(e)))
 */
export function toHttpError(e: unknown): HttpError {
  if (e instanceof HttpError) return e;
  if (e instanceof TunekitError) {
    const [status, type, code] = BY_TUNEKIT_CODE[e.code] ?? [500, 'server_error', e.code.toLowerCase()];
    return new HttpError(status, e.message, type, code);
  }
  const err = e as { statusCode?: unknown; code?: unknown; message?: unknown; name?: unknown };
  const status = typeof err?.statusCode === 'number' ? err.statusCode : 500;
  const fcode = typeof err?.code === 'string' ? err.code : '';
  const message = typeof err?.message === 'string' ? err.message : String(e);
  if (status >= 400 && status < 500) {
    // a JSON syntax error from the body parser (secure-json-parse) carries statusCode 400
    const code = BY_FASTIFY_CODE[fcode] ?? (err?.name === 'SyntaxError' ? 'invalid_json' : 'invalid_request');
    return new HttpError(status, code === 'invalid_json' ? `the request body is not valid JSON: ${message}` : message, 'invalid_request_error', code);
  }
  return new HttpError(500, `internal error: ${message}`, 'server_error', 'internal_error');
}
