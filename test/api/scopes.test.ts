/**
 * Memory scopes (issue 21): tidy disposes what its function created when the function throws;
 * tidy refuses an async function; tidyAsync follows its own async chain (AsyncLocalStorage), so
 * work that runs while it awaits (other code, a concurrent tidyAsync) never lands in its scope.
 * Each case failed on the global-stack implementation it replaces.
 */
import { describe, it, expect } from 'vitest';
import { setTimeout as sleep } from 'node:timers/promises';
import { tidy, tidyAsync, keep, zeros, memoryStats, TunekitError, type Tensor } from '../../lib/index.js';

const live = () => memoryStats().liveBytes;

describe('tidy', () => {
  it('disposes every tensor its function created when the function throws', () => {
    const before = live();
    let inner: Tensor | undefined;
    expect(() => tidy(() => {
      inner = zeros([1024]);
      zeros([256]).add(1);
      throw new Error('boom');
    })).toThrow('boom');
    expect(inner!.isDisposed).toBe(true);
    expect(live()).toBe(before);
  });

  it('an inner throw frees the inner scope only; the outer result and keep() survive', () => {
    let survivor: Tensor | undefined;
    const kept = tidy(() => {
      const a = zeros([8]);
      try {
        tidy(() => {
          survivor = keep(zeros([4]));
          zeros([16]);
          throw new Error('inner');
        });
      } catch { /* expected */ }
      return a;
    });
    expect(kept.isDisposed).toBe(false);
    expect(survivor!.isDisposed).toBe(false);
    kept.dispose();
    survivor!.dispose();
  });

  it('refuses an async function (ERR_VALUE naming tidyAsync) and frees what it created', () => {
    const before = live();
    let made: Tensor | undefined;
    let err: unknown;
    try {
      tidy(async () => {
        made = zeros([64]);
        await sleep(1);
      });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TunekitError);
    expect((err as TunekitError).code).toBe('ERR_VALUE');
    expect((err as Error).message).toMatch(/tidyAsync/);
    expect(made!.isDisposed).toBe(true);
    expect(live()).toBe(before);
  });
});

describe('tidyAsync', () => {
  it('scopes tensors created across awaits; the resolved value is kept', async () => {
    const before = live();
    let mid: Tensor | undefined;
    const out = await tidyAsync(async () => {
      const a = zeros([32]);
      await sleep(2);
      mid = a.add(1);
      await sleep(2);
      return mid.mul(2);
    });
    expect(mid!.isDisposed).toBe(true);
    expect(out.isDisposed).toBe(false);
    out.dispose();
    expect(live()).toBe(before);
  });

  it('does not take tensors created outside it while it awaits', async () => {
    const running = tidyAsync(async () => {
      zeros([8]);
      await sleep(30);
      return 1;
    });
    await sleep(5);
    const outsider = zeros([8]); // created by other code during the await, in no scope
    await running;
    expect(outsider.isDisposed).toBe(false);
    outsider.dispose();
  });

  it('two concurrent scopes stay apart: the one that ends first does not free the other\'s tensors', async () => {
    const a = tidyAsync(async () => {
      await sleep(2);
      const ta = zeros([8]).add(1);
      await sleep(40); // b ends meanwhile
      return ta;
    });
    const b = tidyAsync(async () => {
      await sleep(10);
      zeros([8]);
      return 'b';
    });
    expect(await b).toBe('b');
    const ta = await a;
    expect(ta.isDisposed).toBe(false);
    expect(ta.toArray()).toEqual(new Array(8).fill(1));
    ta.dispose();
  });

  it('disposes its tensors when the function rejects', async () => {
    const before = live();
    let made: Tensor | undefined;
    await expect(tidyAsync(async () => {
      made = zeros([128]);
      await sleep(1);
      throw new Error('async boom');
    })).rejects.toThrow('async boom');
    expect(made!.isDisposed).toBe(true);
    expect(live()).toBe(before);
  });

  it('a sync tidy inside tidyAsync, and tidyAsync inside tidy, hand results to the right parent', async () => {
    const outer = await tidyAsync(async () => {
      const kept = tidy(() => zeros([4]).add(2)); // returned to the async scope
      await sleep(1);
      return kept;
    });
    expect(outer.toArray()).toEqual([2, 2, 2, 2]);
    outer.dispose();

    let syncMade: Tensor | undefined;
    let p: Promise<Tensor> | undefined;
    tidy(() => {
      p = tidyAsync(async () => {
        syncMade = zeros([4]); // before the first await: in the async scope, not the sync one
        await sleep(1);
        return syncMade.add(3);
      });
      return undefined;
    });
    expect(syncMade!.isDisposed).toBe(false); // the sync tidy ended but the async scope owns it
    const r = await p!;
    expect(syncMade!.isDisposed).toBe(true);
    expect(r.toArray()).toEqual([3, 3, 3, 3]);
    r.dispose();
  });
});
