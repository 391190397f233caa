/**
 * Request bodies of the OpenAI-compatible endpoints, as zod schemas (the project's validation:
 * problems are reported in config_errors' words, naming the field). Fields OpenAI defines that
 * tunekit does not implement are accepted only at their neutral value (n 1, echo false,
 * presence_penalty 0, ...), so a client never silently gets something other than it asked for;
 * unknown fields are refused by name.
 */
import { z } from 'zod';
import { issueLines, type ConfigIssue } from '../config_errors.js';
import { HttpError } from './openai_errors.js';

/** OpenAI allows up to 4 stop strings. */
export const MAX_STOP_STRINGS = 4;
/** Longest stop string (characters). */
export const MAX_STOP_CHARS = 256;
/** Most messages in one chat request. */
export const MAX_MESSAGES = 1024;

const nullish = <T extends z.ZodType>(t: T) => t.nullable().optional();

const stop = nullish(z.union([
  z.string().min(1).max(MAX_STOP_CHARS),
  z.array(z.string().min(1).max(MAX_STOP_CHARS)).max(MAX_STOP_STRINGS),
]));

/** Fields both endpoints share. */
const common = {
  model: z.string().min(1).max(256),
  max_tokens: nullish(z.number().int().min(1)),
  temperature: nullish(z.number().min(0).max(2)),
  top_p: nullish(z.number().gt(0).max(1)),
  /** vLLM's extension: sample among the k most likely tokens (0 or -1: off) */
  top_k: nullish(z.number().int().min(-1)),
  /** vLLM's extension: transformers' repetition penalty (1: off) */
  repetition_penalty: nullish(z.number().gt(0).max(100)),
  seed: nullish(z.number().int().min(-(2 ** 53) + 1).max(2 ** 53 - 1)),
  stop,
  stream: nullish(z.boolean()),
  stream_options: nullish(z.object({ include_usage: z.boolean().optional() }).strict()),
  n: nullish(z.literal(1)),
  user: z.string().max(256).optional(),
  presence_penalty: nullish(z.literal(0)),
  frequency_penalty: nullish(z.literal(0)),
  logit_bias: nullish(z.record(z.string(), z.number()).refine((m) => Object.keys(m).length === 0, 'logit_bias is not supported (expected an empty mapping or null)')),
};

const tokenIds = z.array(z.number().int().min(0)).min(1);

export const CompletionRequestSchema = z.object({
  ...common,
  /** one prompt (text or token ids) or a list of them: one choice each */
  prompt: z.union([z.string(), z.array(z.string()).min(1), tokenIds, z.array(tokenIds).min(1)]),
  echo: nullish(z.literal(false)),
  logprobs: z.null().optional(),
  best_of: nullish(z.literal(1)),
  suffix: z.null().optional(),
}).strict();

const textPart = z.object({ type: z.literal('text'), text: z.string() }).strict();

const message = z.object({
  role: z.enum(['system', 'developer', 'user', 'assistant']),
  content: z.union([z.string(), z.array(textPart).max(256)]),
  name: z.string().max(256).optional(),
}).strict();

export const ChatRequestSchema = z.object({
  ...common,
  messages: z.array(message).min(1).max(MAX_MESSAGES),
  max_completion_tokens: nullish(z.number().int().min(1)),
  logprobs: nullish(z.literal(false)),
  top_logprobs: z.null().optional(),
  response_format: nullish(z.object({ type: z.literal('text') }).strict()),
  tools: nullish(z.array(z.unknown()).max(0)),
  tool_choice: nullish(z.literal('none')),
  parallel_tool_calls: z.boolean().optional(),
}).strict();

export const LoadAdapterSchema = z.object({ lora_name: z.string().min(1).max(128), lora_path: z.string().min(1).max(4096) }).strict();
export const UnloadAdapterSchema = z.object({ lora_name: z.string().min(1).max(128) }).strict();

export type CompletionRequest = z.output<typeof CompletionRequestSchema>;
export type ChatRequest = z.output<typeof ChatRequestSchema>;

/**
 * Parses a request body or throws a 400 HttpError listing every problem (param: the first one's field).
 * @example const body = parseRequest(ChatRequestSchema, request.body);
 */
export function parseRequest<S extends z.ZodType>(schema: S, body: unknown): z.output<S> {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new HttpError(400, `expected a JSON object as the request body but received ${body === null ? 'null' : Array.isArray(body) ? 'an array' : typeof body}`, 'invalid_request_error', 'invalid_request');
  }
  const r = schema.safeParse(body, { reportInput: true });
  if (r.success) return r.data;
  const issues = r.error.issues as ConfigIssue[];
  const first = issues[0]!;
  const param = [...first.path, ...(first.code === 'unrecognized_keys' ? [first.keys[0]!] : [])].map(String).join('.') || null;
  const lines = issueLines(issues);
  const code = first.code === 'unrecognized_keys' ? 'unknown_parameter' : 'invalid_value';
  throw new HttpError(400, `invalid request: ${lines.join('; ')}`, 'invalid_request_error', code, param);
}
