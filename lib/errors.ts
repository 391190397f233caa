/**
 * The one error class of tunekit. `code` is stable and machine-readable; `message` says what
 * was expected and what was received.
 *
 * @example
 * try { t.reshape([3, 5]); } catch (e) { if (e instanceof TunekitError && e.code === 'ERR_SHAPE') ... }
 */
export class TunekitError extends Error {
  readonly code: TunekitErrorCode;
  constructor(code: TunekitErrorCode, message: string) {
    super(message);
    this.name = 'TunekitError';
    this.code = code;
  }
}

/**
 * Every code a TunekitError can carry: thrown from TypeScript (checked by the compiler) and from
 * the addon (native/core/status.h, native/napi; test/api/error_codes.test.ts greps both, so a
 * code used anywhere is listed here).
 */
export type TunekitErrorCode =
  | 'ERR_SHAPE'
  | 'ERR_DTYPE'
  | 'ERR_OOM'
  | 'ERR_FORMAT'
  | 'ERR_BACKEND'
  | 'ERR_VALUE'
  | 'ERR_INDEX'
  | 'ERR_DISPOSED'
  | 'ERR_DEVICE'
  | 'ERR_CONFIG'
  | 'ERR_IO'
  | 'ERR_NOT_FOUND'
  | 'ERR_NAN'
  | 'ERR_STATE'
  /** work ended by its caller before it finished (tunekit serve: the client went away) */
  | 'ERR_CANCELLED'
  /** work that ran past its time limit (tunekit serve: a request's time limit) */
  | 'ERR_TIMEOUT'
  /** a size or count over a documented limit (checked before anything is allocated) */
  | 'ERR_LIMIT'
  /** a valid input tunekit does not implement (e.g. Mistral's sliding window beyond its length) */
  | 'ERR_UNSUPPORTED'
  /** a native error whose code the addon could not name (native/core/status.h's fallback: a bug to report) */
  | 'ERR_UNKNOWN';

/** Formats a value for "but received X" messages: short, typed. */
export function describe(value: unknown, depth = 0): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  // nested lists print two levels deep: a list nested 100,000 deep (hostile JSON) must not overflow the stack
  if (Array.isArray(value)) return depth >= 2 ? '[...]' : `[${value.slice(0, 8).map((v) => describe(v, depth + 1)).join(', ')}${value.length > 8 ? ', ...' : ''}]`;
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? value.slice(0, 57) + '...' : value);
  if (typeof value === 'object') return (value as object).constructor?.name ?? 'object';
  return String(value);
}
