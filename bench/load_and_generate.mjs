// Load time of a 124M GPT-2 checkpoint written by transformers, and batch-1 generation tokens/s.
// Usage: bench/load_and_generate.sh (writes the checkpoint with the oracle venv, then runs this).
import { loadPretrainedSync, generate, getNumThreads } from '../dist/index.js';

const dir = process.argv[2];
const t0 = performance.now();
const { model } = loadPretrainedSync(dir, { task: 'causal_lm' });
const loadS = (performance.now() - t0) / 1000;
const prompt = [Array.from({ length: 16 }, (_, i) => (i * 97) % 50257)];
const n = 64;
await generate(model, prompt, { maxNewTokens: 4, temperature: 0 }); // warm-up
const t1 = performance.now();
const out = await generate(model, prompt, { maxNewTokens: n, temperature: 0, eosTokenId: null });
const genS = (performance.now() - t1) / 1000;
console.log(JSON.stringify({ params: model.countParameters(), load_seconds: +loadS.toFixed(3), generated: out.sequences[0].length, gen_tokens_per_s: +(out.sequences[0].length / genS).toFixed(1), threads: getNumThreads() }));
