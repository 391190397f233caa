/**
 * The configuration of `tunekit train`: a YAML or JSON file (or an object) validated with zod.
 * Field names follow the ecosystem (PEFT's `r`, `lora_alpha`, ...), defaults follow PEFT and
 * the QLoRA recipe (see docs/REFERENCE facts), and every invalid field is reported at once.
 *
 * ```yaml
 * model: builtin:gpt2-tiny            # or a Hugging Face folder
 * task: seq_cls                       # causal_lm | seq_cls | token_cls
 * method: lora                        # full | lora | qlora | adalora | prompt_tuning | p_tuning | prefix_tuning | reward | dpo | ppo
 * peft: { r: 8, lora_alpha: 16, target_modules: [c_attn] }
 * dataset: { path: builtin:spam-assassin, max_length: 256 }
 * training: { epochs: 3, batch_size: 16, lr: 2.0e-4, schedule: cosine, warmup_ratio: 0.06 }
 * output_dir: runs/spam-lora
 * ```
 */

import { readFileSync, statSync } from 'node:fs';
import { extname, isAbsolute, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import { z } from 'zod';
import { TunekitError } from '../errors.js';
import { issueLines, configProblemsError, type ConfigIssue } from '../config_errors.js';
import { peftMethodFor, peftMethods } from '../peft/index.js';

// ---------------------------------------------------------------------------------------------
// Method blocks: each PEFT method's `peft:` schema is its own folder's (lib/peft/<method>/config.ts),
// found in the registry under the config's `method` (lib/peft/index.ts registers every method).

const posInt = z.number().int().positive();
const nonNegInt = z.number().int().nonnegative();

/** RLHF method settings (reward, dpo, ppo). Adapters for these go in `peft` (LoRA fields). */
export const RlhfSchema = z.strictObject({
  /** DPO temperature. */
  beta: z.number().positive().default(0.1),
  /** PPO: KL penalty, GAE, clipping, epochs per batch. */
  kl_coef: z.number().nonnegative().default(0.05),
  /** PPO: adaptive KL control (Ziegler et al. 2019): the KL per sequence (nats, summed over tokens) to steer kl_coef toward; null keeps kl_coef fixed. */
  kl_target: z.number().positive().nullable().default(null),
  /** PPO: rollouts over which the adaptive controller changes kl_coef by at most about 20% (TRL's 10000). */
  kl_horizon: z.number().positive().default(10000),
  gamma: z.number().min(0).max(1).default(1),
  lam: z.number().min(0).max(1).default(0.95),
  cliprange: z.number().positive().default(0.2),
  cliprange_value: z.number().positive().default(0.2),
  ppo_epochs: posInt.default(4),
  /** PPO: path of the trained reward model (folder). */
  reward_model: z.string().min(1).optional(),
  /** PPO: tokens generated per rollout. */
  max_new_tokens: posInt.default(32),
});

export type RlhfConfig = z.output<typeof RlhfSchema>;
/** A method's parsed `peft` block: its schema's output (the types are in lib/peft/<method>/config.ts, e.g. LoraConfig). */
export type PeftBlock = Record<string, unknown>;

/** Methods that take no `peft` block: full fine-tuning, and the README's baseline where only the task head trains. */
const NO_ADAPTER_METHODS = ['full', 'head_only'] as const;
/** RLHF objectives: their adapter block is LoRA's schema (`peft: null`: full fine-tuning). */
const RLHF_METHODS = ['reward', 'dpo', 'ppo'] as const;
/**
 * Every `method:` value: the above and each registered PEFT method, in registry order (lora,
 * qlora, adalora, ...). Read at validation time, so a method registered later is accepted too.
 */
export function methodNames(): string[] {
  return [...NO_ADAPTER_METHODS, ...peftMethods(), ...RLHF_METHODS];
}
export type Method = (typeof NO_ADAPTER_METHODS)[number] | (typeof RLHF_METHODS)[number] | (string & {});

/** `method:`: a name from methodNames() (the same words as a z.enum's error). */
const MethodSchema = z.string().superRefine((v, ctx) => {
  const names = methodNames();
  if (!names.includes(v)) ctx.addIssue({ code: 'custom', message: `expected one of ${names.map((n) => JSON.stringify(n)).join(' | ')} but received string ${JSON.stringify(v)}`, input: v });
});
export const TASKS = ['causal_lm', 'seq_cls', 'token_cls', 'image_cls'] as const;
export type Task = (typeof TASKS)[number];

const isRlhfMethod = (method: string): boolean => (RLHF_METHODS as readonly string[]).includes(method);

/** The schema of the `peft` block for a method (null: the method takes no peft block). */
function peftSchemaFor(method: string): z.ZodType | null {
  if ((NO_ADAPTER_METHODS as readonly string[]).includes(method)) return null;
  return peftMethodFor(isRlhfMethod(method) ? 'lora' : method).schema;
}

// ---------------------------------------------------------------------------------------------
// Top level

export const DatasetSchema = z.strictObject({
  /** A file (.jsonl, .json, .csv) or "builtin:spam-assassin" | "builtin:sotu" | "builtin:moby-dick". */
  path: z.string().min(1),
  format: z.enum(['jsonl', 'json', 'csv']).optional(),
  /** Record format; detected from the first record when omitted. */
  record_format: z.enum(['text', 'prompt_completion', 'alpaca', 'chat', 'labelled', 'preference']).optional(),
  text_field: z.string().min(1).default('text'),
  /** Image classification: the field of a JSONL/CSV record holding the image path (relative to the file). */
  image_field: z.string().min(1).default('image'),
  /** Image classification: training-time augmentation, seeded from training.seed (eval images are never augmented). */
  augment: z.strictObject({
    /** shift images by up to this many pixels (pad with black, crop back at a random offset) */
    random_crop: nonNegInt.default(0),
    /** mirror left-right with probability 1/2 (not for digits or text) */
    horizontal_flip: z.boolean().default(false),
  }).optional(),
  label_field: z.string().min(1).default('label'),
  max_length: posInt.default(512),
  packing: z.boolean().default(false),
  /**
   * Which part of a too-long example is kept. keep_start (default) cuts the end; keep_end cuts the
   * start (causal LM: keeps prompt/completion answers and the question); keep_start_and_end
   * (sequence classification) keeps the first three quarters of max_length and the last quarter
   * (head + tail, as Sun et al. 2019 for long documents: an e-mail's closing lines carry signal).
   */
  truncation: z.enum(['keep_start', 'keep_end', 'keep_start_and_end']).default('keep_start'),
  /** Causal LM: end each example with the EOS token (learnt as a target). Default: on, except for chat records. */
  add_eos: z.boolean().optional(),
  /**
   * Causal LM with prompt/completion records: score the eval split as multiple choice (accuracy
   * and F1 of the most likely answer). `auto`: when the completions are 2..16 fixed answers.
   */
  choices: z.union([z.enum(['auto', 'off']), z.array(z.string().min(1)).min(2)]).default('auto'),
  on_error: z.enum(['fail', 'skip']).default('fail'),
  /** Bytes that are not valid UTF-8: `fail` names the line; `replace` reads them as U+FFFD and reports the count. */
  invalid_utf8: z.enum(['fail', 'replace']).default('fail'),
  /** Held-out evaluation data: a separate file, or a seeded split of `path` (ignored for built-ins, which have fixed splits). */
  eval: z
    .strictObject({
      path: z.string().min(1).optional(),
      fraction: z.number().gt(0).lt(1).optional(),
      size: posInt.optional(),
      seed: z.number().int().default(42),
    })
    .superRefine((v, ctx) => {
      const n = [v.path, v.fraction, v.size].filter((x) => x !== undefined).length;
      if (n > 1) ctx.addIssue({ code: 'custom', path: [], message: `expected only one of path, fraction or size but received ${n}` });
    })
    .prefault({}),
});

export const TrainingSchema = z
  .strictObject({
    epochs: z.number().positive().default(3),
    /** When set, training stops after this many optimizer steps (overrides epochs). */
    max_steps: posInt.optional(),
    batch_size: posInt.default(8),
    grad_accum: posInt.default(1),
    lr: z.number().positive().default(2e-4),
    weight_decay: z.number().nonnegative().default(0),
    warmup_steps: nonNegInt.default(0),
    warmup_ratio: z.number().min(0).lt(1).default(0),
    schedule: z.enum(['constant', 'linear', 'cosine']).default('linear'),
    max_grad_norm: z.number().positive().nullable().default(1),
    /** Evaluate every N optimizer steps (0: at the end of each epoch only). */
    eval_every: nonNegInt.default(0),
    /** Save a checkpoint every N optimizer steps (0: at the end of each epoch only). */
    save_every: nonNegInt.default(0),
    early_stopping: z
      .strictObject({
        patience: posInt,
        metric: z.string().min(1).default('eval_loss'),
        mode: z.enum(['min', 'max']).default('min'),
        min_delta: z.number().nonnegative().default(0),
      })
      .nullable()
      .default(null),
    seed: z.number().int().default(42),
    /** Native thread pool size (0: all cores). */
    threads: nonNegInt.default(0),
    /** Matrix products with weights in bf16 (PyTorch's autocast; weights, gradients, optimizer state stay f32) or f32. */
    dtype: z.enum(['f32', 'bf16']).default('f32'),
    device: z.string().regex(/^(cpu|cuda(:\d+)?|auto)$/, 'expected "cpu", "cuda", "cuda:N" or "auto"').default('auto'),
  })
  ;

export const LoggingSchema = z.strictObject({
  /** Log training metrics every N optimizer steps. */
  every: posInt.default(10),
  /** 'auto': a progress bar on a terminal, plain lines otherwise. */
  progress: z.enum(['auto', 'bar', 'plain', 'none']).default('auto'),
  plot: z.boolean().default(true),
});

/**
 * Data-parallel training (lib/train/distributed, docs/distributed.md). Left out of checkpoints'
 * run config: the number of ranks is checked on resume by itself, and a new timeout may resume.
 */
export const DistributedSchema = z.strictObject({
  /** Ranks `tunekit train` starts on this machine through mpirun (--nproc); under an MPI launcher its rank count is used. */
  nproc: posInt.default(1),
  /** Seconds a rank waits for the others in a collective before the job stops with ERR_TIMEOUT (must exceed rank 0's longest evaluation or checkpoint save). */
  timeout_s: z.number().positive().default(1800),
  /** Gradient bucket size in MiB (PyTorch DDP's bucket_cap_mb; the first bucket is at most 1 MiB). */
  bucket_mb: z.number().positive().default(25),
});

const TopSchema = z.strictObject({
  /** A Hugging Face folder or "builtin:<name>". */
  model: z.string().min(1),
  task: z.enum(TASKS).default('causal_lm'),
  method: MethodSchema.default('lora'),
  peft: z.record(z.string(), z.unknown()).nullable().optional(),
  rlhf: z.record(z.string(), z.unknown()).optional(),
  /** Base-weight quantization; defaults to nf4 for qlora, none otherwise. */
  quantization: z.enum(['none', 'nf4']).optional(),
  dataset: DatasetSchema,
  training: TrainingSchema.prefault({}),
  output_dir: z.string().min(1).default('runs/tunekit'),
  logging: LoggingSchema.prefault({}),
  distributed: DistributedSchema.optional(),
});

type Top = z.output<typeof TopSchema>;

/** A validated training configuration with every default filled. */
export interface TrainConfig extends Omit<Top, 'peft' | 'rlhf' | 'quantization'> {
  /** The method's block (null for full fine-tuning, or RLHF without adapters). */
  peft: PeftBlock | null;
  /** Present for reward, dpo and ppo. */
  rlhf: RlhfConfig | null;
  quantization: 'none' | 'nf4';
  /** The file the config was read from, if any. */
  configPath?: string;
}

// ---------------------------------------------------------------------------------------------
// Errors

function configError(source: string, lines: string[]): TunekitError {
  return configProblemsError(`training config ${source}`, lines);
}

// ---------------------------------------------------------------------------------------------
// Loading

/** Config files are small; anything bigger is not a config (and is not read whole). */
const MAX_CONFIG_BYTES = 1 << 20;
/** YAML aliases a config may expand (an alias bomb expands exponentially; yaml's default is 100). */
const MAX_YAML_ALIASES = 100;

function readConfigFile(path: string): unknown {
  let text: string;
  try {
    // only regular files: a FIFO or a device would block or never end
    const st = statSync(path);
    if (!st.isFile()) throw new TunekitError('ERR_CONFIG', `config ${path} is not a regular file (${st.isDirectory() ? 'a folder' : 'a special file'})`);
    if (st.size > MAX_CONFIG_BYTES) throw new TunekitError('ERR_CONFIG', `config ${path} is ${st.size} bytes; expected at most ${MAX_CONFIG_BYTES} (a config file, not data)`);
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if (e instanceof TunekitError) throw e;
    const err = e as NodeJS.ErrnoException;
    throw new TunekitError(err.code === 'ENOENT' ? 'ERR_NOT_FOUND' : 'ERR_IO', `Could not read config file ${path}: ${err.message}`);
  }
  const isJson = extname(path).toLowerCase() === '.json';
  if (isJson) {
    try {
      JSON.parse(text);
    } catch (e) {
      throw new TunekitError('ERR_CONFIG', `Invalid JSON in config file ${path}: ${(e as Error).message}`);
    }
  }
  // JSON is read through the YAML parser too (JSON is YAML 1.2): JSON.parse silently keeps the
  // last of two equal keys, YAML refuses duplicates with their line and column.
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const lines = doc.errors.map((e) => {
      const pos = e.linePos?.[0];
      return `${path}${pos ? `:${pos.line}:${pos.col}` : ''}: ${(e.message.split('\n')[0] ?? '').replace(/:\s*$/, '')}`;
    });
    throw new TunekitError('ERR_CONFIG', `Invalid ${isJson ? 'JSON' : 'YAML'} in config file:\n${lines.map((l) => `  - ${l}`).join('\n')}`);
  }
  try {
    return doc.toJS({ maxAliasCount: MAX_YAML_ALIASES });
  } catch (e) {
    // yaml throws a ReferenceError when aliases expand past maxAliasCount (an alias bomb)
    throw new TunekitError('ERR_CONFIG', `Invalid YAML in config file ${path}: ${(e as Error).message} (at most ${MAX_YAML_ALIASES} alias expansions)`);
  }
}

/**
 * Paths in configs and flags resolve against the working directory, as transformers'
 * TrainingArguments, axolotl and LLaMA-Factory do: a README command run from the project root
 * means the same files whichever folder the config sits in.
 */
function resolvePath(p: string): string {
  return p.startsWith('builtin:') || isAbsolute(p) ? p : resolve(p);
}

/** A command-line flag's value, set into the raw config before validation (so flags get the same checks as files). */
export interface ConfigOverride {
  /** the field it sets, e.g. ['training', 'max_steps'] */
  path: string[];
  /** the raw value (numeric strings become numbers; anything else stays for the schema to refuse) */
  value: unknown;
  /** how the user spelt it, e.g. '--max-steps' */
  flag: string;
}

/** A copy of `raw` with each override set at its path (objects created on the way). */
function withOverrides(raw: Record<string, unknown>, overrides: ConfigOverride[]): Record<string, unknown> {
  const out = structuredClone(raw);
  for (const o of overrides) {
    let node = out;
    for (const k of o.path.slice(0, -1)) {
      const next = node[k];
      node = next && typeof next === 'object' && !Array.isArray(next) ? (next as Record<string, unknown>) : (node[k] = {});
    }
    const v = typeof o.value === 'string' && o.value.trim() !== '' && Number.isFinite(Number(o.value)) ? Number(o.value) : o.value;
    node[o.path.at(-1)!] = v;
  }
  return out;
}

/** "training.max_steps: expected ..." -> "--max-steps (training.max_steps): expected ..." for a field set by a flag. */
function nameFlag(problem: string, overrides: ConfigOverride[]): string {
  for (const o of overrides) {
    const field = o.path.join('.');
    if (problem.startsWith(`${field}:`)) return `${o.flag} (${field})${problem.slice(field.length)}`;
  }
  return problem;
}

/**
 * Validates a training config (a file path or an already-parsed object) and fills defaults.
 * Relative paths (model, dataset, eval, output_dir, reward_model) resolve against the working
 * directory, whichever folder the config file sits in. Every invalid field is listed in one
 * TunekitError('ERR_CONFIG').
 *
 * @example
 * const cfg = loadConfig('examples/spam-lora.yaml');
 * cfg.peft;               // { r: 8, lora_alpha: 16, lora_dropout: 0, ... }
 * cfg.training.schedule;  // 'linear'
 * loadConfig({ model: 'builtin:gpt2-tiny', dataset: { path: 'builtin:sotu' } });
 */
export function loadConfig(pathOrObject: string | Record<string, unknown>, opts: { overrides?: ConfigOverride[] } = {}): TrainConfig {
  const fromFile = typeof pathOrObject === 'string';
  const source = fromFile ? pathOrObject : '(object)';
  const parsed = fromFile ? readConfigFile(pathOrObject) : pathOrObject;
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw configError(source, [`(top level): expected a mapping of settings but received ${parsed === null ? 'null' : Array.isArray(parsed) ? 'a list' : typeof parsed}`]);
  }
  const overrides = opts.overrides ?? [];
  const raw = overrides.length ? withOverrides(parsed as Record<string, unknown>, overrides) : parsed;

  const problems: string[] = [];
  const top = TopSchema.safeParse(raw, { reportInput: true });
  if (!top.success) problems.push(...issueLines(top.error.issues as ConfigIssue[]));

  // The peft / rlhf blocks depend on the method: validate them even when other fields failed,
  // so that one run of the command lists everything.
  const rawObj = raw as Record<string, unknown>;
  const methodParse = MethodSchema.default('lora').safeParse(rawObj['method']);
  const method = methodParse.success ? methodParse.data : null;
  let peft: PeftBlock | null = null;
  let rlhf: RlhfConfig | null = null;
  if (method) {
    const schema = peftSchemaFor(method);
    const block = rawObj['peft'];
    const rlhfMethod = isRlhfMethod(method);
    if (schema === null) {
      if (block !== undefined && block !== null) problems.push(`peft: expected no peft block for method "${method}" but received a mapping`);
    } else if (block === null && rlhfMethod) {
      peft = null; // RLHF with full fine-tuning
    } else if (block === undefined || (typeof block === 'object' && block !== null && !Array.isArray(block))) {
      const r = schema.safeParse(block ?? {}, { reportInput: true });
      if (r.success) peft = r.data as PeftBlock;
      else problems.push(...issueLines(r.error.issues as ConfigIssue[], ['peft']));
      // training a config that PEFT marks as saved-for-inference would train nothing (LoRA) or serve a fixed prompt
      if (peft?.inference_mode === true) problems.push('peft.inference_mode: expected false for training (true freezes the adapter; PEFT writes it into saved folders) but received true');
    }
    if (rlhfMethod) {
      const rb = rawObj['rlhf'];
      if (rb === undefined || (typeof rb === 'object' && rb !== null && !Array.isArray(rb))) {
        const r = RlhfSchema.safeParse(rb ?? {}, { reportInput: true });
        if (r.success) rlhf = r.data;
        else problems.push(...issueLines(r.error.issues as ConfigIssue[], ['rlhf']));
      }
      if (method === 'ppo' && rlhf && !rlhf.reward_model) problems.push('rlhf.reward_model: expected the path of a trained reward model for method "ppo" but received nothing');
    } else if (rawObj['rlhf'] !== undefined) {
      problems.push(`rlhf: expected no rlhf block for method "${method}" (only reward, dpo, ppo) but received a mapping`);
    }
  }

  // Cross-field checks on the raw values, so they are reported alongside field errors.
  const tr = rawObj['training'] as Record<string, unknown> | undefined;
  if (tr && typeof tr === 'object' && typeof tr['warmup_steps'] === 'number' && typeof tr['warmup_ratio'] === 'number' && tr['warmup_steps'] > 0 && tr['warmup_ratio'] > 0) {
    problems.push(`training.warmup_steps: expected warmup_steps or warmup_ratio but received both (${tr['warmup_steps']} and ${tr['warmup_ratio']})`);
  }

  let quantization: 'none' | 'nf4' = 'none';
  if (top.success) {
    const q = top.data.quantization;
    quantization = q ?? (top.data.method === 'qlora' ? 'nf4' : 'none');
    if (top.data.method === 'qlora' && q === 'none') problems.push('quantization: expected "nf4" for method "qlora" (QLoRA trains adapters on a 4-bit base), but received "none"');
    if (quantization === 'nf4' && (top.data.method === 'full' || top.data.method === 'head_only')) problems.push('quantization: expected "none" for method "full" (4-bit weights cannot be trained) but received "nf4"');
    const trunc = top.data.dataset.truncation;
    if (trunc === 'keep_start_and_end' && top.data.task !== 'seq_cls') {
      problems.push(`dataset.truncation: expected "keep_start" or "keep_end" for task "${top.data.task}" ("keep_start_and_end" is for seq_cls) but received "keep_start_and_end"`);
    }
    if (trunc !== 'keep_start' && (top.data.task === 'token_cls' || top.data.task === 'image_cls')) {
      problems.push(`dataset.truncation: expected "keep_start" for task "${top.data.task}" (its examples are cut at the end) but received "${trunc}"`);
    }
    if (top.data.task === 'causal_lm' && top.data.dataset.record_format === 'labelled') {
      problems.push('dataset.record_format: expected a text, prompt/completion, alpaca or chat format for task "causal_lm" but received "labelled" (use task "seq_cls")');
    }
  }

  if (problems.length > 0 || !top.success) throw configError(source, problems.map((p) => nameFlag(p, overrides)));

  const data = top.data;
  const cfg: TrainConfig = { ...data, peft, rlhf, quantization };
  if (fromFile) cfg.configPath = resolve(pathOrObject);
  cfg.model = resolvePath(cfg.model);
  cfg.dataset = { ...cfg.dataset, path: resolvePath(cfg.dataset.path) };
  if (cfg.dataset.eval.path) cfg.dataset.eval = { ...cfg.dataset.eval, path: resolvePath(cfg.dataset.eval.path) };
  cfg.output_dir = resolvePath(cfg.output_dir);
  if (cfg.rlhf?.reward_model) cfg.rlhf = { ...cfg.rlhf, reward_model: resolvePath(cfg.rlhf.reward_model) };
  return cfg;
}

/**
 * The number of warm-up steps a config asks for, given the total number of optimizer steps.
 *
 * @example
 * warmupStepsFor(cfg.training, 1000); // 60 with warmup_ratio 0.06
 */
export function warmupStepsFor(training: TrainConfig['training'], totalSteps: number): number {
  return training.warmup_steps > 0 ? training.warmup_steps : Math.ceil(training.warmup_ratio * totalSteps);
}
