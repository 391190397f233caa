/**
 * Memory scopes. Every tensor created inside `tidy(fn)` is disposed when fn returns, except the
 * tensors it returns and those passed to `keep()`. The trainer scopes every step this way.
 */
export interface Disposable {
  dispose(): void;
  readonly isDisposed: boolean;
}

const scopes: Set<Disposable>[] = [];

/** Registers a new tensor with the innermost scope (called by the Tensor constructor). */
export function track(t: Disposable): void {
  const top = scopes[scopes.length - 1];
  if (top) top.add(t);
}

/** Removes `t` from every open scope, so it outlives them. Returns t. */
export function keep<T extends Disposable>(t: T): T {
  for (const s of scopes) s.delete(t);
  return t;
}

function collect(value: unknown, out: Set<unknown>, depth = 0): void {
  if (value === null || value === undefined || depth > 4) return;
  if (typeof value !== 'object') return;
  if ('dispose' in (value as object) && 'isDisposed' in (value as object)) {
    out.add(value);
    return;
  }
  if (Array.isArray(value)) {
    for (const v of value) collect(v, out, depth + 1);
  } else if (value instanceof Map) {
    for (const v of value.values()) collect(v, out, depth + 1);
  } else if (Object.getPrototypeOf(value) === Object.prototype) {
    for (const v of Object.values(value as object)) collect(v, out, depth + 1);
  }
}

/**
 * Runs fn in a memory scope.
 * @example
 * const y = tidy(() => x.mul(2).add(1)); // intermediates freed, y kept
 */
export function tidy<T>(fn: () => T): T {
  const scope = new Set<Disposable>();
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } finally {
    scopes.pop();
  }
  const kept = new Set<unknown>();
  collect(result, kept);
  for (const t of scope) {
    if (kept.has(t)) {
      // returned tensors belong to the enclosing scope
      const parent = scopes[scopes.length - 1];
      if (parent) parent.add(t);
    } else if (!t.isDisposed) {
      t.dispose();
    }
  }
  return result;
}

/** Async variant of tidy: tensors created while fn runs (including across awaits) are scoped. */
export async function tidyAsync<T>(fn: () => Promise<T>): Promise<T> {
  const scope = new Set<Disposable>();
  scopes.push(scope);
  let result: T;
  try {
    result = await fn();
  } finally {
    const i = scopes.lastIndexOf(scope);
    if (i >= 0) scopes.splice(i, 1);
  }
  const kept = new Set<unknown>();
  collect(result, kept);
  for (const t of scope) {
    if (kept.has(t)) {
      const parent = scopes[scopes.length - 1];
      if (parent) parent.add(t);
    } else if (!t.isDisposed) t.dispose();
  }
  return result;
}
