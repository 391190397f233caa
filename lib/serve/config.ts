/**
 * The serve config: what `tunekit serve` reads from a YAML/JSON file and its flags (flags win).
 *
 * ```yaml
 * model: builtin:tunekit-gpt2-small
 * adapters:                 # name (the request's `model`) -> PEFT LoRA folder
 *   spam: runs/spam/adapter
 * host: 127.0.0.1           # any other address needs api_key (or TUNEKIT_API_KEY)
 * port: 8000
 * device: auto              # cpu | cuda | cuda:N | auto (the GPU only when its backend has every op serving runs)
 * limits: { max_batch: 16, max_tokens: 256, request_timeout_ms: 120000 }
 * ```
 * Relative paths resolve against the working directory (as tunekit train's config).
 */
import { readFileSync, statSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { parseDocument } from 'yaml';
import { TunekitError } from '../errors.js';
import { parseConfigOrThrow } from '../config_errors.js';

export const LimitsSchema = z.object({
  /** most sequences decoded together (1: one request at a time) */
  max_batch: z.number().int().min(1).max(1024).default(16),
  /** most generation requests (prompts) being served or queued; more get 429 */
  max_concurrent_requests: z.number().int().min(1).max(100_000).default(64),
  /** largest max_tokens a request may ask for (above: 400) */
  max_tokens: z.number().int().min(1).max(1 << 20).default(256),
  /** max_tokens of a completion that names none (OpenAI's default is 16); chat requests get what the context leaves, up to max_tokens */
  default_max_tokens: z.number().int().min(1).max(1 << 20).default(16),
  /** longest prompt in tokens (default: the model's context minus one) */
  max_prompt_tokens: z.number().int().min(1).max(1 << 24).optional(),
  /** most prompts in one completions request */
  max_prompts_per_request: z.number().int().min(1).max(1024).default(16),
  /** largest request body in bytes (above: 413) */
  max_body_bytes: z.number().int().min(1024).max(1 << 30).default(1 << 20),
  /** a request (queued + generating) that takes longer ends with 504 */
  request_timeout_ms: z.number().int().min(1).max(24 * 3600 * 1000).default(120_000),
  /** most prompt tokens (batch x longest prompt) one prefill step runs */
  max_prefill_tokens: z.number().int().min(1).max(1 << 24).default(4096),
  /** on shutdown, requests still running after this long are ended (503) */
  shutdown_timeout_ms: z.number().int().min(0).max(3600 * 1000).default(30_000),
  /** most adapters loaded at once */
  max_adapters: z.number().int().min(1).max(4096).default(64),
}).strict();

export const ServeConfigSchema = z.object({
  model: z.string().min(1).default('builtin:tunekit-gpt2-small'),
  /** the id /v1/models gives the base (default: the model folder's name) */
  served_model_name: z.string().min(1).max(128).optional(),
  adapters: z.record(z.string(), z.string().min(1)).default({}),
  host: z.string().min(1).default('127.0.0.1'),
  port: z.number().int().min(0).max(65535).default(8000),
  /** Bearer key every /v1 and /metrics request must carry (prefer the TUNEKIT_API_KEY variable: flags show in `ps`) */
  api_key: z.string().min(8).max(1024).optional(),
  /** POST /v1/load_lora_adapter and /v1/unload_lora_adapter (off by default: they read server paths) */
  allow_adapter_loading: z.boolean().default(false),
  /** native threads (default: all cores) */
  threads: z.number().int().min(1).max(1024).optional(),
  /**
   * where the model and adapters live and decode: as training.device (lib/tensor/device.ts
   * resolveDevice with SERVE_PATH): `cuda` without a usable GPU, or whose backend lacks an op
   * serving runs (the mixed-adapter loraBatchedLinear), is ERR_DEVICE before anything loads;
   * `auto` takes the GPU only when neither is so
   */
  device: z.string().regex(/^(cpu|cuda(:\d+)?|auto)$/, 'expected "cpu", "cuda", "cuda:N" or "auto"').default('auto'),
  limits: LimitsSchema.default(LimitsSchema.parse({})),
}).strict();

export type ServeConfig = z.output<typeof ServeConfigSchema>;
export type ServeLimits = z.output<typeof LimitsSchema>;

const MAX_CONFIG_BYTES = 1 << 20;

/** Reads a YAML or JSON serve config file (at most 1 MiB, a regular file, no duplicate keys). */
export function readServeConfigFile(path: string): unknown {
  let text: string;
  try {
    const st = statSync(path);
    if (!st.isFile()) throw new TunekitError('ERR_CONFIG', `serve config ${path} is not a regular file`);
    if (st.size > MAX_CONFIG_BYTES) throw new TunekitError('ERR_CONFIG', `serve config ${path} is ${st.size} bytes; expected at most ${MAX_CONFIG_BYTES}`);
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if (e instanceof TunekitError) throw e;
    const err = e as NodeJS.ErrnoException;
    throw new TunekitError(err.code === 'ENOENT' ? 'ERR_NOT_FOUND' : 'ERR_IO', `could not read serve config ${path}: ${err.message}`);
  }
  const doc = parseDocument(text, { uniqueKeys: true });
  if (doc.errors.length) {
    throw new TunekitError('ERR_CONFIG', `invalid YAML/JSON in serve config ${path}: ${doc.errors.map((e) => e.message.split('\n')[0]).join('; ')}`);
  }
  try {
    return doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    throw new TunekitError('ERR_CONFIG', `invalid YAML in serve config ${path}: ${(e as Error).message}`);
  }
}

/**
 * Validates a serve config (defaults filled; paths resolved against the working directory).
 * @example const cfg = parseServeConfig({ model: 'models/x', adapters: { sql: 'runs/sql/adapter' } });
 */
export function parseServeConfig(raw: unknown): ServeConfig {
  const cfg = parseConfigOrThrow(ServeConfigSchema, raw, 'serve config');
  const path = (p: string) => (p.startsWith('builtin:') || isAbsolute(p) ? p : resolve(p));
  return { ...cfg, model: path(cfg.model), adapters: Object.fromEntries(Object.entries(cfg.adapters).map(([n, p]) => [n, path(p)])) };
}

/** Whether a bind address only accepts connections from this machine. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127(\.\d{1,3}){3}$/.test(h) || h === '::ffff:127.0.0.1';
}
