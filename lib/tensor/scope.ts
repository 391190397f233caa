/**
 * Memory scopes. Every tensor created inside `tidy(fn)` is disposed when fn returns or throws,
 * except the tensors it returns and those passed to `keep()`. The trainer scopes every step this
 * way. `tidyAsync(fn)` does the same for an async fn, across its awaits, and only for the tensors
 * created by that fn's own async chain: the scope travels with the async context
 * (AsyncLocalStorage), so other work running while fn awaits (another request, another
 * tidyAsync) never lands in it.
 *
 * Scopes form a tree (each has a parent: the scope that was current when it opened). The current
 * scope is the innermost of the synchronous stack (tidy) and the async context's scope
 * (tidyAsync). A scope that has closed hands tensors created later in its context (a promise
 * left running by a finished tidyAsync) to its nearest open ancestor, or to nobody.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { TunekitError } from '../errors.js';

export interface Disposable {
  dispose(): void;
  readonly isDisposed: boolean;
}

interface Scope {
  readonly tensors: Set<Disposable>;
  readonly parent: Scope | undefined;
  open: boolean;
}

/** Scopes opened by tidy(): synchronous, so a plain stack is exact. */
const syncStack: Scope[] = [];
/**
 * Scopes opened by tidyAsync(). Created on first use: on Node 20 an AsyncLocalStorage in use
 * turns on promise hooks for the whole process, which code that never calls tidyAsync should not pay.
 */
let asyncScopes: AsyncLocalStorage<Scope> | undefined;
/** The scope each tracked tensor belongs to (a tensor is in at most one), for keep() and hand-over. */
const owner = new WeakMap<Disposable, Scope>();

function isAncestor(a: Scope, of: Scope): boolean {
  for (let s = of.parent; s; s = s.parent) if (s === a) return true;
  return false;
}

function openOrAncestor(s: Scope | undefined): Scope | undefined {
  while (s && !s.open) s = s.parent;
  return s;
}

function currentScope(): Scope | undefined {
  const top = syncStack[syncStack.length - 1];
  const ctx = asyncScopes?.getStore();
  // tidyAsync called inside tidy: its scope (a descendant of the stack's top) is the inner one
  const cur = top && ctx && isAncestor(top, ctx) ? ctx : (top ?? ctx);
  return openOrAncestor(cur);
}

function adopt(scope: Scope, t: Disposable): void {
  scope.tensors.add(t);
  owner.set(t, scope);
}

/** Registers a new tensor with the current scope (called by the Tensor constructor). */
export function track(t: Disposable): void {
  const s = currentScope();
  if (s) adopt(s, t);
}

/** Takes `t` out of its scope, so it outlives every scope open now. Returns t. */
export function keep<T extends Disposable>(t: T): T {
  const s = owner.get(t);
  if (s) {
    s.tensors.delete(t);
    owner.delete(t);
  }
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
 * Closes a scope: its tensors are disposed, except (when fn returned) those found in the result
 * (arrays, Maps and plain objects, 4 levels deep), which move to the nearest open ancestor.
 */
function close(scope: Scope, returned: { value: unknown } | null): void {
  scope.open = false;
  const kept = new Set<unknown>();
  if (returned) collect(returned.value, kept);
  const parent = openOrAncestor(scope.parent);
  for (const t of scope.tensors) {
    owner.delete(t);
    if (kept.has(t)) {
      if (parent) adopt(parent, t);
    } else if (!t.isDisposed) {
      t.dispose();
    }
  }
  scope.tensors.clear();
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return v !== null && (typeof v === 'object' || typeof v === 'function') && typeof (v as { then?: unknown }).then === 'function';
}

/**
 * Runs fn in a memory scope: the tensors it creates are disposed when it returns (except those
 * it returns) or throws (all of them). fn must be synchronous: use tidyAsync for an async fn.
 * @example
 * const y = tidy(() => x.mul(2).add(1)); // intermediates freed, y kept
 */
export function tidy<T>(fn: () => T): T {
  const scope: Scope = { tensors: new Set(), parent: currentScope(), open: true };
  syncStack.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    close(scope, null);
    throw e;
  } finally {
    syncStack.pop(); // nested tidy calls are balanced: the top is this scope
  }
  if (isThenable(result)) {
    close(scope, null);
    // the promise's own failure is reported through the error below, not as an unhandled rejection
    if (result instanceof Promise) result.catch(() => {});
    throw new TunekitError('ERR_VALUE', 'tidy(fn): fn returned a Promise; tensors created after its first await would escape the scope. Use tidyAsync(fn) for an async fn');
  }
  close(scope, { value: result });
  return result;
}

/**
 * Runs an async fn in a memory scope that follows fn's async chain across awaits: the tensors
 * fn creates are disposed when its promise settles (except those it resolves with). Tensors
 * created meanwhile by other code (other requests, another tidyAsync) are not in it.
 * @example
 * const logits = await tidyAsync(async () => { const x = await loadBatch(); return model.forward({ inputIds: x }).logits; });
 */
export async function tidyAsync<T>(fn: () => Promise<T>): Promise<T> {
  asyncScopes ??= new AsyncLocalStorage<Scope>();
  const scope: Scope = { tensors: new Set(), parent: currentScope(), open: true };
  let result: T;
  try {
    result = await asyncScopes.run(scope, fn);
  } catch (e) {
    close(scope, null);
    throw e;
  }
  close(scope, { value: result });
  return result;
}
