/**
 * The batch engine without HTTP: mixed-adapter batches give each sequence the tokens that
 * generate() gives it alone with its adapter (greedy), sequences join a running batch and leave
 * it at different times, and cancelled or timed-out sequences leave without disturbing the rest.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { makeServeWorld, type ServeWorld, type Arch } from './helpers.js';
import { loadPretrainedSync, type PretrainedModel } from '../../lib/models/index.js';
import { Tokenizer } from '../../lib/tokenizer/index.js';
import { loadPeftFolderSync } from '../../lib/peft/index.js';
import { generate } from '../../lib/models/generate.js';
import { AdapterSet } from '../../lib/serve/adapters.js';
import { BatchEngine, type SequenceRequest } from '../../lib/serve/engine.js';

const worlds = new Map<Arch, { w: ServeWorld; tok: Tokenizer }>();
let w: ServeWorld;
let tok: Tokenizer;
beforeAll(() => {
  for (const arch of ['gpt2', 'llama'] as Arch[]) {
    const world = makeServeWorld(arch);
    worlds.set(arch, { w: world, tok: Tokenizer.fromFolderSync(world.modelDir) });
  }
});
afterAll(() => { for (const { w: world } of worlds.values()) world.cleanup(); });

function use(arch: Arch): void {
  ({ w, tok } = worlds.get(arch)!);
}

const PROMPTS = ['Hello there', 'The spam filter', 'free money now', 'a', 'Meeting at noon tomorrow please', 'win a prize'];
const NAMES: (string | null)[] = ['alpha', 'beta', 'gamma', null, 'beta', 'alpha'];

async function alone(name: string | null, prompt: string, maxNewTokens: number): Promise<number[]> {
  let { model } = loadPretrainedSync(w.modelDir, { task: 'causal_lm' });
  if (name) model = loadPeftFolderSync(model, w.adapterDirs[name]!) as unknown as PretrainedModel;
  const ids = tok.encode(prompt, { addSpecialTokens: false }).ids;
  const r = await generate(model, [ids], { tokenizer: tok, maxNewTokens, temperature: 0, eosTokenId: tok.eosTokenId ?? null });
  model.dispose();
  return r.sequences[0]!;
}

function request(set: AdapterSet, i: number, maxNewTokens: number): SequenceRequest {
  const name = NAMES[i]!;
  return {
    promptIds: tok.encode(PROMPTS[i]!, { addSpecialTokens: false }).ids, slot: name ? set.slotOf(name)! : -1, adapter: name ?? 'base',
    maxNewTokens, temperature: 0, topP: 1, topK: 0, repetitionPenalty: 1, seed: 0, stop: [], deadline: Date.now() + 60_000,
  };
}

describe('BatchEngine', () => {
  it.each(['gpt2', 'llama'] as Arch[])('%s: mixed-adapter batches equal generate() alone with each adapter (greedy), with joins and leaves', async (arch) => {
    use(arch);
    const lens = PROMPTS.map((_, i) => 6 + 3 * (i % 3));
    const expected = await Promise.all(PROMPTS.map((p, i) => alone(NAMES[i]!, p, lens[i]!)));
    // the adapters really change the tokens: otherwise this test could not fail
    expect(new Set(expected.map((e) => JSON.stringify(e.slice(0, 6)))).size).toBeGreaterThan(3);
    const { model } = loadPretrainedSync(w.modelDir, { task: 'causal_lm' });
    const set = new AdapterSet(model);
    for (const n of ['alpha', 'beta', 'gamma']) await set.load(n, w.adapterDirs[n]!);
    const eng = new BatchEngine(model, tok, set, { maxBatch: 4, maxPrefillTokens: 4096 });
    // three now, three more while those decode (they join the running batch)
    const first = [0, 1, 2].map((i) => eng.submit(request(set, i, lens[i]!)));
    await new Promise((r) => setTimeout(r, 5));
    const later = [3, 4, 5].map((i) => eng.submit(request(set, i, lens[i]!)));
    const res = await Promise.all([...first, ...later].map((h) => h.result));
    res.forEach((r, i) => {
      const eosAt = expected[i]!.indexOf(tok.eosTokenId!);
      expect(r.tokens, `sequence ${i} (${NAMES[i] ?? 'base'})`).toEqual(eosAt >= 0 ? expected[i]!.slice(0, eosAt + 1) : expected[i]);
      expect(r.text).toBe(tok.decode(r.tokens, { skipSpecialTokens: true }));
    });
    expect(eng.stats.mixedSteps).toBeGreaterThan(0);
    expect(eng.stats.maxAdaptersInStep).toBeGreaterThanOrEqual(3);
    expect(eng.stats.joinsIntoRunning).toBeGreaterThan(0);
    set.dispose();
    model.dispose();
  });

  it('an adapter loads while the engine decodes (its files are read between decode steps); its name is taken while it loads', async () => {
    use('gpt2');
    const { model } = loadPretrainedSync(w.modelDir, { task: 'causal_lm' });
    const set = new AdapterSet(model, 2);
    await set.load('alpha', w.adapterDirs.alpha!);
    const eng = new BatchEngine(model, tok, set, { maxBatch: 4, maxPrefillTokens: 4096 });
    const running = eng.submit(request(set, 0, 40)); // NAMES[0]: alpha
    await new Promise((r) => setTimeout(r, 5));
    const stepsBefore = eng.stats.decodeSteps;
    const loading = set.load('beta', w.adapterDirs.beta!);
    // while beta's files are read: the same name again, or one more adapter past max 2, is refused
    await expect(set.load('beta', w.adapterDirs.beta!)).rejects.toMatchObject({ code: 'ERR_VALUE' });
    await expect(set.load('gamma', w.adapterDirs.gamma!)).rejects.toMatchObject({ code: 'ERR_LIMIT' });
    const info = await loading;
    expect(info).toMatchObject({ name: 'beta', slot: 1 });
    const r = await running.result;
    expect(r.tokens).toEqual((await alone('alpha', PROMPTS[0]!, 40)).slice(0, r.tokens.length));
    expect(eng.stats.decodeSteps).toBeGreaterThan(stepsBefore);
    // beta serves as generate() alone with it
    const b = await eng.submit(request(set, 1, 8)).result; // NAMES[1]: beta
    const expectedB = await alone('beta', PROMPTS[1]!, 8);
    expect(b.tokens).toEqual(expectedB.slice(0, b.tokens.length));
    set.dispose();
    model.dispose();
  });

  it('a cancelled or timed-out sequence leaves the batch; the others are untouched', async () => {
    use('gpt2');
    const { model } = loadPretrainedSync(w.modelDir, { task: 'causal_lm' });
    const set = new AdapterSet(model);
    for (const n of ['alpha', 'beta', 'gamma']) set.loadSync(n, w.adapterDirs[n]!); // the blocking form fills the same slots
    const eng = new BatchEngine(model, tok, set, { maxBatch: 8, maxPrefillTokens: 4096 });
    const keep = eng.submit(request(set, 1, 12));
    const cancelled = eng.submit(request(set, 0, 200));
    const late = eng.submit({ ...request(set, 2, 200), deadline: Date.now() - 1 });
    cancelled.cancel('the client disconnected');
    await expect(cancelled.result).rejects.toMatchObject({ code: 'ERR_CANCELLED', message: 'the client disconnected' });
    await expect(late.result).rejects.toMatchObject({ code: 'ERR_TIMEOUT' });
    const r = await keep.result;
    const expected = await alone('beta', PROMPTS[1]!, 12);
    expect(r.tokens).toEqual(expected.slice(0, r.tokens.length));
    expect(eng.stats.cancelled).toBe(1);
    expect(eng.stats.timedOut).toBe(1);
    await eng.idle();
    expect(eng.load).toEqual({ running: 0, waiting: 0 });
    set.dispose();
    model.dispose();
  });
});
