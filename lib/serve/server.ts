/**
 * `tunekit serve`: an OpenAI-compatible HTTP server for one base model and many LoRA adapters.
 *
 *   POST /v1/completions, /v1/chat/completions   (stream: server-sent events, as OpenAI's)
 *   GET  /v1/models                               (the base and each adapter)
 *   POST /v1/load_lora_adapter, /v1/unload_lora_adapter   (vLLM's names; off unless allowed)
 *   GET  /health, /metrics                        (Prometheus text)
 *
 * The request's `model` names the adapter (or the base); requests for different adapters share
 * the scheduler's batches (engine.ts).
 *
 * Fastify rather than Node's http: body-size limits, JSON parsing that refuses __proto__
 * poisoning, content-type checks, one error handler, keep-alive handling and a close() that
 * waits for requests in flight are all the framework's, tested, rather than ours to get right.
 *
 * Limits (config.ts `limits`): body size (413), max_tokens and prompt length (400), requests in
 * flight (429), time per request (504). A client that disconnects cancels its sequences. close()
 * drains: new requests get 503, running ones finish (or end with 503 after shutdown_timeout_ms).
 * The server binds 127.0.0.1 unless told otherwise, and any other address needs an API key.
 */
import { randomUUID, createHash, timingSafeEqual } from 'node:crypto';
import { basename, resolve as resolvePath } from 'node:path';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { TunekitError } from '../errors.js';
import { setNumThreads } from '../backend.js';
import { loadPretrained } from '../models/loader.js';
import { resolveDevice, SERVE_PATH } from '../tensor/device.js';
import { resolveModelPath } from '../models/builtin.js';
import { maxSequenceLength, type PretrainedModel } from '../models/common.js';
import { Tokenizer } from '../tokenizer/index.js';
import { AdapterSet, type AdapterInfo } from './adapters.js';
import { BatchEngine, type SequenceHandle, type SequenceResult } from './engine.js';
import { HttpError, errorBody, toHttpError } from './openai_errors.js';
import { ServerMetrics } from './metrics.js';
import { isLoopbackHost, parseServeConfig, type ServeConfig, type ServeLimits } from './config.js';
import {
  parseRequest, CompletionRequestSchema, ChatRequestSchema, LoadAdapterSchema, UnloadAdapterSchema,
  type CompletionRequest, type ChatRequest,
} from './schemas.js';
import '../peft/index.js';

type Kind = 'completion' | 'chat';

/** One generation request, reduced to what the engine needs. */
interface Job {
  kind: Kind;
  model: string;
  slot: number;
  prompts: number[][];
  maxTokens: number;
  temperature: number;
  topP: number;
  topK: number;
  repetitionPenalty: number;
  seed: number;
  stop: string[];
  stream: boolean;
  includeUsage: boolean;
}

export class TunekitServer {
  private readonly app: FastifyInstance;
  private readonly metrics = new ServerMetrics();
  private inflight = 0;
  private draining = false;
  private closing: Promise<void> | null = null;
  private readonly keyDigest: Buffer | null;
  private readonly created = Math.floor(Date.now() / 1000);
  /** the address the server listens on, e.g. http://127.0.0.1:8000 */
  url = '';
  /** where the model decodes and why, e.g. "cpu (auto: no CUDA device: ...)" or "cuda:0 (NVIDIA H100)" */
  deviceNote = '';

  private constructor(
    private readonly config: ServeConfig,
    readonly modelName: string,
    private readonly model: PretrainedModel,
    private readonly tokenizer: Tokenizer,
    readonly adapters: AdapterSet,
    readonly engine: BatchEngine,
    private readonly limits: ServeLimits & { max_prompt_tokens: number },
  ) {
    this.keyDigest = config.api_key ? digest(config.api_key) : null;
    this.app = Fastify({
      bodyLimit: limits.max_body_bytes,
      // draining is answered in OpenAI's shape by our own handler, not Fastify's plain 503
      return503OnClosing: false,
      // a request whose body takes longer than this to arrive is dropped (slow clients)
      requestTimeout: 30_000,
      logger: false,
    });
    this.routes();
  }

  /**
   * Loads the model and adapters and starts listening.
   * @example const server = await TunekitServer.start({ model: 'builtin:tunekit-gpt2-small', adapters: { spam: 'runs/spam/adapter' } });
   */
  static async start(rawConfig: unknown): Promise<TunekitServer> {
    const config = parseServeConfig(rawConfig);
    const apiKey = config.api_key ?? (process.env.TUNEKIT_API_KEY || undefined); // an empty variable is no key
    if (apiKey !== undefined && apiKey.length < 8) throw new TunekitError('ERR_CONFIG', 'serve: the API key must be at least 8 characters');
    if (!isLoopbackHost(config.host) && !apiKey) {
      throw new TunekitError('ERR_CONFIG', `serve: binding ${config.host} accepts connections from other machines; set an API key (TUNEKIT_API_KEY, --api-key or api_key) that clients send as 'Authorization: Bearer <key>', or bind 127.0.0.1`);
    }
    // before anything loads: `cuda` without a usable GPU, or whose backend lacks an op serving runs, stops here
    const device = resolveDevice(config.device, 'serve device', { path: SERVE_PATH });
    if (config.threads) setNumThreads(config.threads);
    const dir = resolveModelPath(config.model);
    const tokenizer = await Tokenizer.fromFolder(dir);
    const { model } = await loadPretrained(dir, { task: 'causal_lm' });
    // adapters loaded later are packed beside the base's weights (AdapterSet: on the model's device)
    try {
      model.to(device.device);
    } catch (e) {
      model.dispose();
      throw e;
    }
    const context = maxSequenceLength(model);
    const limits = { ...config.limits, max_prompt_tokens: Math.min(config.limits.max_prompt_tokens ?? context - 1, context - 1) };
    const adapters = new AdapterSet(model, limits.max_adapters);
    const modelName = config.served_model_name ?? (config.model.startsWith('builtin:') ? config.model.slice('builtin:'.length) : basename(resolvePath(dir)));
    try {
      for (const [name, path] of Object.entries(config.adapters)) {
        if (name === modelName) throw new TunekitError('ERR_CONFIG', `serve: adapter name '${name}' is the base model's name`);
        await adapters.load(name, path);
      }
    } catch (e) {
      adapters.dispose();
      model.dispose();
      throw e;
    }
    const engine = new BatchEngine(model, tokenizer, adapters, { maxBatch: limits.max_batch, maxPrefillTokens: limits.max_prefill_tokens });
    const server = new TunekitServer({ ...config, api_key: apiKey }, modelName, model, tokenizer, adapters, engine, limits);
    const address = await server.app.listen({ host: config.host, port: config.port });
    server.url = address;
    server.deviceNote = device.note;
    return server;
  }

  /**
   * Stops accepting work and drains: new requests get 503, requests in flight finish; after
   * shutdown_timeout_ms the rest are ended (503). Frees the model. Safe to call twice.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.draining = true;
      const timer = setTimeout(() => this.engine.cancelAll('the server is shutting down'), this.limits.shutdown_timeout_ms);
      try {
        await this.app.close();
        await this.engine.idle();
      } finally {
        clearTimeout(timer);
        this.adapters.dispose();
        this.model.dispose();
      }
    })();
    return this.closing;
  }

  /** Loads an adapter while serving: its files are read while decoding goes on, then it joins between two decode steps. */
  async loadAdapter(name: string, path: string): Promise<AdapterInfo> {
    if (name === this.modelName) throw new TunekitError('ERR_VALUE', `adapter name '${name}' is the base model's name`);
    return this.adapters.load(name, resolvePath(path));
  }

  /**
   * Unloads an adapter: new requests for it get 404 at once; the slot is freed once no running
   * or queued sequence uses it.
   */
  async unloadAdapter(name: string): Promise<void> {
    const slot = this.adapters.slotOf(name);
    if (slot === undefined) throw new TunekitError('ERR_NOT_FOUND', `no adapter '${name}' is loaded`);
    this.unloading.add(name);
    try {
      while (this.engine.slotsInUse().has(slot)) await new Promise((r) => setTimeout(r, 10));
      this.adapters.unload(name);
    } finally {
      this.unloading.delete(name);
    }
  }
  private readonly unloading = new Set<string>();

  // ------------------------------------------------------------------------------------------

  private routes(): void {
    const app = this.app;
    app.setErrorHandler((err, req, reply) => this.sendError(req, reply, toHttpError(err)));
    app.setNotFoundHandler((req, reply) => this.sendError(req, reply, new HttpError(404, `no route ${req.method} ${req.url.split('?')[0]}`, 'invalid_request_error', 'not_found')));
    // JSON only: Fastify's default text/plain parser would hand a string to the handlers (415 instead)
    app.removeContentTypeParser('text/plain');
    app.addHook('onRequest', async (req, reply) => {
      (req as { startedAt?: number }).startedAt = performance.now();
      // while draining, a finished response also ends its keep-alive connection: an idle
      // connection a client keeps open would otherwise hold close() until the client drops it
      const socket = req.raw.socket; // (a finished response no longer points at its socket)
      reply.raw.once('finish', () => { if (this.draining) socket.destroySoon(); });
      if (req.url === '/health' || !this.keyDigest) return;
      const auth = req.headers.authorization;
      const given = typeof auth === 'string' && auth.startsWith('Bearer ') ? auth.slice(7).trim() : null;
      if (!given || !timingSafeEqual(digest(given), this.keyDigest)) {
        throw new HttpError(401, given ? 'incorrect API key provided' : "missing API key: send 'Authorization: Bearer <key>'", 'invalid_request_error', 'invalid_api_key');
      }
    });
    app.addHook('onResponse', async (req, reply) => this.observe(req, reply.statusCode));

    app.get('/health', async (_req, reply) => {
      const body = { status: this.draining ? 'draining' : 'ok', model: this.modelName, adapters: this.adapters.list().length, ...this.engine.load };
      return reply.code(this.draining ? 503 : 200).send(body);
    });
    app.get('/metrics', async (_req, reply) => reply.type('text/plain; version=0.0.4').send(
      this.metrics.render(this.engine.stats, this.engine.load, this.adapters.list().length, this.inflight)));
    app.get('/v1/models', async () => ({
      object: 'list',
      data: [
        { id: this.modelName, object: 'model', created: this.created, owned_by: 'tunekit', root: this.modelName, parent: null },
        ...this.adapters.list().filter((a) => !this.unloading.has(a.name)).map((a) => ({ id: a.name, object: 'model', created: this.created, owned_by: 'tunekit', root: this.modelName, parent: this.modelName })),
      ],
    }));
    app.post('/v1/completions', (req, reply) => this.generate('completion', req, reply));
    app.post('/v1/chat/completions', (req, reply) => this.generate('chat', req, reply));
    app.post('/v1/load_lora_adapter', async (req, reply) => {
      this.checkAdapterLoading();
      const body = parseRequest(LoadAdapterSchema, req.body);
      const info = await this.loadAdapter(body.lora_name, body.lora_path);
      return reply.send({ object: 'model', id: info.name, loaded: true, layers: info.layers, rank: info.rank });
    });
    app.post('/v1/unload_lora_adapter', async (req, reply) => {
      this.checkAdapterLoading();
      const body = parseRequest(UnloadAdapterSchema, req.body);
      await this.unloadAdapter(body.lora_name);
      return reply.send({ object: 'model', id: body.lora_name, deleted: true });
    });
  }

  private checkAdapterLoading(): void {
    if (!this.config.allow_adapter_loading) {
      throw new HttpError(403, 'loading and unloading adapters over HTTP is off (start the server with --allow-adapter-loading)', 'permission_error', 'adapter_loading_disabled');
    }
  }

  private observe(req: FastifyRequest, status: number): void {
    const started = (req as { startedAt?: number }).startedAt ?? performance.now();
    const endpoint = req.routeOptions?.url ?? 'unknown';
    this.metrics.observe(endpoint, status, (performance.now() - started) / 1000);
  }

  private sendError(req: FastifyRequest, reply: FastifyReply, e: HttpError): FastifyReply {
    return reply.code(e.status).send(errorBody(e));
  }

  /** Turns a validated body into a Job: model -> slot, prompts tokenized and checked against the limits. */
  private job(kind: Kind, body: CompletionRequest | ChatRequest): Job {
    const slot = body.model === this.modelName ? -1 : this.unloading.has(body.model) ? undefined : this.adapters.slotOf(body.model);
    if (slot === undefined) {
      const have = [this.modelName, ...this.adapters.list().map((a) => a.name)];
      throw new HttpError(404, `the model '${body.model}' does not exist (served: ${have.slice(0, 20).join(', ')}${have.length > 20 ? ', ...' : ''})`, 'invalid_request_error', 'model_not_found', 'model');
    }
    const L = this.limits;
    const prompts = kind === 'chat' ? [this.chatPrompt(body as ChatRequest)] : this.completionPrompts(body as CompletionRequest);
    const context = maxSequenceLength(this.model);
    const longest = Math.max(...prompts.map((p) => p.length));
    const asked = kind === 'chat' ? ((body as ChatRequest).max_completion_tokens ?? body.max_tokens) : body.max_tokens;
    const param = kind === 'chat' && (body as ChatRequest).max_completion_tokens != null ? 'max_completion_tokens' : 'max_tokens';
    if (asked != null && asked > L.max_tokens) {
      throw new HttpError(400, `${param} ${asked} is over this server's limit of ${L.max_tokens}`, 'invalid_request_error', 'limit_exceeded', param);
    }
    // the last new token is never fed back: a prompt of P tokens and M new ones need P + M - 1 positions
    const room = context - longest + 1;
    const maxTokens = asked ?? Math.min(kind === 'chat' ? L.max_tokens : L.default_max_tokens, room);
    if (maxTokens > room) {
      throw new HttpError(400, `this model's context is ${context} tokens; the prompt has ${longest} and ${param} asks for ${maxTokens} more (at most ${room} fit)`, 'invalid_request_error', 'context_length_exceeded', param);
    }
    const stop = body.stop == null ? [] : typeof body.stop === 'string' ? [body.stop] : body.stop;
    const topK = body.top_k ?? 0;
    return {
      kind, model: body.model, slot, prompts, maxTokens,
      // OpenAI's defaults: temperature 1, top_p 1
      temperature: body.temperature ?? 1, topP: body.top_p ?? 1, topK: topK < 0 ? 0 : topK,
      repetitionPenalty: body.repetition_penalty ?? 1,
      seed: body.seed ?? Math.floor(Math.random() * 2 ** 31), stop,
      stream: body.stream === true, includeUsage: body.stream_options?.include_usage === true,
    };
  }

  private checkPromptLength(ids: number[], which: string): number[] {
    if (ids.length === 0) throw new HttpError(400, `${which} is empty (no tokens)`, 'invalid_request_error', 'invalid_value', which);
    if (ids.length > this.limits.max_prompt_tokens) {
      throw new HttpError(400, `${which} has more than ${this.limits.max_prompt_tokens} tokens, this server's prompt limit`, 'invalid_request_error', 'context_length_exceeded', which);
    }
    return ids;
  }

  private completionPrompts(body: CompletionRequest): number[][] {
    const p = body.prompt;
    const list: (string | number[])[] = typeof p === 'string' ? [p] : p.length && typeof p[0] === 'number' ? [p as number[]] : (p as (string | number[])[]);
    if (list.length > this.limits.max_prompts_per_request) {
      throw new HttpError(400, `${list.length} prompts in one request; this server takes at most ${this.limits.max_prompts_per_request}`, 'invalid_request_error', 'limit_exceeded', 'prompt');
    }
    const V = this.model.config.vocabSize;
    return list.map((item, i) => {
      const which = list.length > 1 ? `prompt[${i}]` : 'prompt';
      if (typeof item !== 'string') {
        const bad = item.find((t) => t >= V);
        if (bad !== undefined) throw new HttpError(400, `${which}: token id ${bad} is outside the vocabulary [0, ${V})`, 'invalid_request_error', 'invalid_value', 'prompt');
        return this.checkPromptLength(item, which);
      }
      // only as many ids as the limit needs are tokenized: a huge prompt costs no more than the limit
      const ids = this.tokenizer.encode(item, { addSpecialTokens: false, maxLength: this.limits.max_prompt_tokens + 1 }).ids;
      return this.checkPromptLength(ids, which);
    });
  }

  private chatPrompt(body: ChatRequest): number[] {
    if (this.tokenizer.chatTemplate === null) {
      throw new HttpError(400, `the model '${this.modelName}' has no chat template (tokenizer_config.json chat_template); use /v1/completions`, 'invalid_request_error', 'no_chat_template');
    }
    const messages = body.messages.map((m) => ({ role: m.role, content: typeof m.content === 'string' ? m.content : m.content.map((p) => p.text).join('') }));
    return this.checkPromptLength(this.tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true, tokenize: true }), 'messages');
  }

  private async generate(kind: Kind, req: FastifyRequest, reply: FastifyReply): Promise<void> {
    if (this.draining) throw new HttpError(503, 'the server is shutting down', 'server_error', 'shutting_down');
    const body = parseRequest(kind === 'chat' ? ChatRequestSchema : CompletionRequestSchema, req.body);
    const job = this.job(kind, body);
    if (this.inflight + job.prompts.length > this.limits.max_concurrent_requests) {
      throw new HttpError(429, `the server is serving ${this.inflight} prompts, its limit is ${this.limits.max_concurrent_requests}; retry later`, 'rate_limit_error', 'too_many_requests');
    }
    const id = `${kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${randomUUID().replace(/-/g, '')}`;
    const created = Math.floor(Date.now() / 1000);
    const deadline = Date.now() + this.limits.request_timeout_ms;
    this.inflight += job.prompts.length;
    const handles: SequenceHandle[] = [];
    let finished = false;
    // a client that goes away before the response is complete cancels its sequences
    reply.raw.on('close', () => {
      if (!finished) for (const h of handles) h.cancel('the client disconnected');
    });
    const sse = job.stream ? new SseWriter(reply) : null;
    try {
      job.prompts.forEach((promptIds, index) => {
        if (sse && kind === 'chat') sse.send(chunk(job, id, created, index, { role: 'assistant', content: '' }, null));
        handles.push(this.engine.submit({
          promptIds, slot: job.slot, adapter: job.model, maxNewTokens: job.maxTokens, temperature: job.temperature,
          topP: job.topP, topK: job.topK, repetitionPenalty: job.repetitionPenalty, seed: job.seed + index, stop: job.stop, deadline,
          onText: sse ? (text) => sse.send(chunk(job, id, created, index, kind === 'chat' ? { content: text } : text, null)) : undefined,
        }));
      });
      const results = await settleAll(handles);
      if (sse) {
        results.forEach((r, index) => sse.send(chunk(job, id, created, index, kind === 'chat' ? {} : '', r.finishReason)));
        if (job.includeUsage) sse.send({ id, object: objectOf(job), created, model: job.model, choices: [], usage: usage(results) });
        sse.end();
      } else {
        await reply.send(kind === 'chat'
          ? { id, object: 'chat.completion', created, model: job.model, choices: results.map((r, index) => ({ index, message: { role: 'assistant', content: r.text }, logprobs: null, finish_reason: r.finishReason })), usage: usage(results) }
          : { id, object: 'text_completion', created, model: job.model, choices: results.map((r, index) => ({ index, text: r.text, logprobs: null, finish_reason: r.finishReason })), usage: usage(results) });
      }
    } catch (e) {
      if (!sse) throw e;
      sse.fail(toHttpError(e)); // headers are sent: the error goes in the stream, as OpenAI's does
    } finally {
      finished = true;
      this.inflight -= job.prompts.length;
    }
  }
}

/** Awaits every sequence; on the first failure cancels the others and throws it. */
async function settleAll(handles: SequenceHandle[]): Promise<SequenceResult[]> {
  try {
    return await Promise.all(handles.map((h) => h.result));
  } catch (e) {
    for (const h of handles) h.cancel('another prompt of the request failed');
    await Promise.allSettled(handles.map((h) => h.result));
    throw e;
  }
}

function usage(results: SequenceResult[]): { prompt_tokens: number; completion_tokens: number; total_tokens: number } {
  const prompt = results.reduce((s, r) => s + r.promptTokens, 0);
  const completion = results.reduce((s, r) => s + r.tokens.length, 0);
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

function objectOf(job: Job): string {
  return job.kind === 'chat' ? 'chat.completion.chunk' : 'text_completion';
}

/** One streamed chunk: a text piece (completions) or a delta (chat), with finish_reason on the last. */
function chunk(job: Job, id: string, created: number, index: number, piece: string | Record<string, string>, finish: string | null): Record<string, unknown> {
  const choice = job.kind === 'chat'
    ? { index, delta: piece, logprobs: null, finish_reason: finish }
    : { index, text: piece, logprobs: null, finish_reason: finish };
  return { id, object: objectOf(job), created, model: job.model, choices: [choice] };
}

/**
 * Server-sent events on a hijacked reply: `data: <json>` events, then `data: [DONE]`. (Fastify
 * still runs the onResponse hook for a hijacked reply, which counts it in the metrics.)
 */
class SseWriter {
  private open = true;
  constructor(private readonly reply: FastifyReply) {
    reply.hijack();
    reply.raw.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive' });
    reply.raw.on('close', () => { this.open = false; });
  }
  send(obj: unknown): void {
    if (this.open && !this.reply.raw.writableEnded) this.reply.raw.write(`data: ${JSON.stringify(obj)}\n\n`);
  }
  end(): void {
    if (this.open && !this.reply.raw.writableEnded) this.reply.raw.end('data: [DONE]\n\n');
  }
  fail(e: HttpError): void {
    this.send(errorBody(e));
    if (this.open && !this.reply.raw.writableEnded) this.reply.raw.end('data: [DONE]\n\n');
  }
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

export type { ServeConfig, ServeLimits };
