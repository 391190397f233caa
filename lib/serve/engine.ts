/**
 * Continuous batching across adapters (vLLM's scheduler, S-LoRA / Punica's mixed-adapter batch):
 * requests wait in a queue; between decode steps the scheduler admits as many as the batch has
 * room for, runs their prompts (one batched prefill, left-padded), then joins them to the running
 * batch; every decode step is one forward of the base for all running sequences, each row
 * applying its own adapter through MultiLoraLinear. Each sequence keeps its own rows of the KV
 * cache (kv_batch.ts); a sequence that ends, is cancelled (client gone) or runs out of time
 * leaves the batch at the next step.
 *
 * Tokens are chosen with generate()'s own chooseToken from each sequence's own settings and its
 * own seeded Rng, so a sequence's tokens do not depend on what else shares the batch (up to the
 * float rounding of a batched GEMM, which never changed a greedy token in the tests).
 *
 * The loop runs on the event loop's thread: each step is a synchronous native forward and the
 * loop yields (setImmediate) between steps, so HTTP traffic is served between steps.
 */
import { TunekitError } from '../errors.js';
import { Tensor } from '../tensor/tensor.js';
import { tensor } from '../tensor/creation.js';
import { tidy, keep } from '../tensor/scope.js';
import { noGrad } from '../autograd/tape.js';
import { inferenceMode } from '../nn/module.js';
import * as F from '../autograd/ops.js';
import { Rng } from '../data/rng.js';
import { chooseToken, type Settings } from '../models/generate.js';
import type { TokenizerLike } from '../data/types.js';
import type { LayerKV, PretrainedModel } from '../models/common.js';
import type { AdapterSet } from './adapters.js';
import { TextStream } from './text_stream.js';
import { gatherKvRows, disposeKv, batchMask, type RowSource } from './kv_batch.js';

export type FinishReason = 'stop' | 'length';

/** What a caller asks for: one prompt, one adapter slot, decoding settings. */
export interface SequenceRequest {
  promptIds: number[];
  /** adapter slot (-1: the base model) and its name (for errors and metrics) */
  slot: number;
  adapter: string;
  maxNewTokens: number;
  temperature: number;
  topP: number;
  topK: number;
  repetitionPenalty: number;
  seed: number;
  /** text stop strings (OpenAI `stop`): generation ends before the first one */
  stop: string[];
  /** ms since the epoch after which the sequence is ended with a timeout error */
  deadline: number;
  /** called with each settled piece of text (streaming) */
  onText?: (text: string) => void;
}

export interface SequenceResult {
  text: string;
  tokens: number[];
  finishReason: FinishReason;
  promptTokens: number;
}

/** A submitted sequence: its result, and a way to cancel it (client disconnect). */
export interface SequenceHandle {
  result: Promise<SequenceResult>;
  cancel(reason?: string): void;
}

export interface EngineOptions {
  /** most sequences in the running batch (1 = one request at a time) */
  maxBatch: number;
  /** most prompt tokens (batch x longest prompt, padding included) one prefill may run */
  maxPrefillTokens: number;
}

/** Counters the metrics endpoint reports. */
export interface EngineStats {
  prefills: number;
  decodeSteps: number;
  /** sum over decode steps of the batch size (mean batch = rowsDecoded / decodeSteps) */
  rowsDecoded: number;
  /** decode steps whose batch held two or more different adapters (the base counts as one) */
  mixedSteps: number;
  /** most different adapters in one decode step */
  maxAdaptersInStep: number;
  /** prefills that joined a batch already decoding (continuous batching) */
  joinsIntoRunning: number;
  promptTokens: number;
  generatedTokens: number;
  finished: number;
  cancelled: number;
  timedOut: number;
  failed: number;
}

class Sequence {
  readonly generated: number[] = [];
  readonly seen: number[];
  readonly text: TextStream;
  readonly settings: Settings;
  readonly rng: Rng;
  /** cached real tokens of this sequence (prompt + fed tokens) */
  len = 0;
  /** the last chosen token, not yet fed back */
  pending = -1;
  done = false;
  cancelled: string | null = null;
  constructor(readonly req: SequenceRequest, tokenizer: TokenizerLike, eos: Set<number>, pad: number,
    readonly resolve: (r: SequenceResult) => void, readonly reject: (e: Error) => void) {
    this.seen = [...req.promptIds];
    this.text = new TextStream(tokenizer, req.stop);
    this.settings = {
      maxNewTokens: req.maxNewTokens, temperature: req.temperature, topK: req.topK, topP: req.topP,
      penalty: req.repetitionPenalty, eos, stops: [], pad,
    };
    this.rng = new Rng(req.seed);
  }
}

export class BatchEngine {
  private readonly waiting: Sequence[] = [];
  private running: Sequence[] = [];
  /** the running batch's cache; row b belongs to running[b] */
  private cache: LayerKV[] = [];
  private cacheT = 0;
  private loopActive = false;
  private idleWaiters: (() => void)[] = [];
  private readonly eos: Set<number>;
  private readonly pad: number;
  readonly stats: EngineStats = {
    prefills: 0, decodeSteps: 0, rowsDecoded: 0, mixedSteps: 0, maxAdaptersInStep: 0, joinsIntoRunning: 0,
    promptTokens: 0, generatedTokens: 0, finished: 0, cancelled: 0, timedOut: 0, failed: 0,
  };

  constructor(private readonly model: PretrainedModel, private readonly tokenizer: TokenizerLike,
    private readonly adapters: AdapterSet, private readonly opts: EngineOptions) {
    if (model.task !== 'causal_lm') throw new TunekitError('ERR_VALUE', `serve: expected a causal LM but the model's task is '${model.task}'`);
    if (!Number.isInteger(opts.maxBatch) || opts.maxBatch < 1) throw new TunekitError('ERR_VALUE', `serve: maxBatch must be an integer >= 1 but is ${opts.maxBatch}`);
    // as tunekit generate: the tokenizer's EOS ends a sequence
    const eos = tokenizer.eosTokenId ?? model.config.eosTokenId;
    this.eos = new Set(eos === null || eos === undefined ? [] : [eos]);
    this.pad = model.config.padTokenId ?? model.config.eosTokenId ?? 0;
  }

  /** Sequences running and waiting. */
  get load(): { running: number; waiting: number } {
    return { running: this.running.length, waiting: this.waiting.length };
  }

  /** Slots used by any sequence running or waiting. */
  slotsInUse(): Set<number> {
    return new Set([...this.running, ...this.waiting].map((s) => s.req.slot));
  }

  /**
   * Queues a sequence. Its prompt must fit the model with maxNewTokens (the server checks).
   * @example const h = engine.submit({ promptIds, slot: 0, adapter: 'sql', maxNewTokens: 16, temperature: 0, ... });
   */
  submit(req: SequenceRequest): SequenceHandle {
    let seq!: Sequence;
    const result = new Promise<SequenceResult>((resolve, reject) => {
      seq = new Sequence(req, this.tokenizer, this.eos, this.pad, resolve, reject);
    });
    this.waiting.push(seq);
    this.kick();
    return {
      result,
      cancel: (reason = 'cancelled') => {
        if (!seq.done && !seq.cancelled) seq.cancelled = reason;
        this.kick(); // a queued sequence is dropped at the next step even when nothing runs
      },
    };
  }

  /** Ends every sequence with an error (shutdown after the drain timeout). */
  cancelAll(reason: string): void {
    for (const s of [...this.running, ...this.waiting]) if (!s.done && !s.cancelled) s.cancelled = reason;
    this.kick();
  }

  /** Resolves when nothing runs or waits. */
  idle(): Promise<void> {
    if (!this.loopActive && !this.running.length && !this.waiting.length) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  private kick(): void {
    if (this.loopActive) return;
    this.loopActive = true;
    void this.loop();
  }

  private async loop(): Promise<void> {
    try {
      while (this.running.length || this.waiting.length) {
        this.step();
        await new Promise<void>((r) => setImmediate(r));
      }
    } finally {
      this.loopActive = false;
      disposeKv(this.cache);
      this.cacheT = 0;
      for (const w of this.idleWaiters.splice(0)) w();
    }
  }

  /** One scheduler iteration: drop ended sequences, admit and prefill, rebuild the batch, decode. */
  private step(): void {
    const now = Date.now();
    for (const s of [...this.running, ...this.waiting]) {
      if (s.done) continue;
      if (s.cancelled) this.fail(s, new TunekitError('ERR_CANCELLED', s.cancelled), 'cancelled');
      else if (now > s.req.deadline) this.fail(s, new TunekitError('ERR_TIMEOUT', `request ran past its time limit (adapter '${s.req.adapter}', ${s.generated.length} tokens generated)`), 'timedOut');
    }
    for (let i = this.waiting.length - 1; i >= 0; i--) if (this.waiting[i]!.done) this.waiting.splice(i, 1);

    let joining = this.admit();
    let prefillCache: LayerKV[] = [];
    try {
      if (joining.length) {
        try {
          prefillCache = this.prefill(joining);
        } catch (e) {
          // a failed prefill ends the sequences it held; the running batch is untouched
          for (const s of joining) this.fail(s, asError(e), 'failed');
          disposeKv(prefillCache);
          joining = [];
        }
      }
      this.rebuildBatch(joining, prefillCache);
    } catch (e) {
      for (const s of joining) this.fail(s, asError(e), 'failed');
      this.resetBatchOnError(e);
    } finally {
      disposeKv(prefillCache);
    }
    if (!this.running.length) return;
    try {
      this.decode();
    } catch (e) {
      this.resetBatchOnError(e);
    }
  }

  /** Takes waiting sequences while the batch has room and the prefill budget allows (at least one). */
  private admit(): Sequence[] {
    const out: Sequence[] = [];
    let longest = 0;
    while (this.waiting.length && this.running.length + out.length < this.opts.maxBatch) {
      const next = this.waiting[0]!;
      const L = Math.max(longest, next.req.promptIds.length);
      if (out.length && (out.length + 1) * L > this.opts.maxPrefillTokens) break;
      out.push(this.waiting.shift()!);
      longest = L;
    }
    return out;
  }

  /** Runs the joining prompts as one left-padded batch; chooses each one's first token. */
  private prefill(seqs: Sequence[]): LayerKV[] {
    const B = seqs.length;
    const L = Math.max(...seqs.map((s) => s.req.promptIds.length));
    const V = this.model.config.vocabSize;
    const cache: LayerKV[] = [];
    const ids = new Int32Array(B * L).fill(this.pad);
    const mask = new Int32Array(B * L);
    seqs.forEach((s, b) => {
      const p = s.req.promptIds;
      ids.set(p, b * L + (L - p.length));
      mask.fill(1, b * L + (L - p.length), (b + 1) * L);
    });
    let logits: Float32Array;
    try {
      logits = this.forward(seqs, L, ids, mask, cache, (out) => {
        const last = Int32Array.from({ length: B }, (_, b) => (b + 1) * L - 1);
        return F.gatherRows(F.reshape(out, [B * L, V]), tensor(last, [B], 'i32', out.device));
      });
    } catch (e) {
      disposeKv(cache);
      throw e;
    }
    this.stats.prefills++;
    if (this.running.length) this.stats.joinsIntoRunning++;
    seqs.forEach((s, b) => {
      s.len = s.req.promptIds.length;
      this.stats.promptTokens += s.len;
      this.accept(s, logits.subarray(b * V, (b + 1) * V));
    });
    return cache;
  }

  /** The running batch becomes the unfinished running sequences plus the unfinished joiners. */
  private rebuildBatch(joining: Sequence[], prefillCache: LayerKV[]): void {
    const keepRunning = this.running.map((s, row) => ({ s, row })).filter(({ s }) => !s.done);
    const keepJoining = joining.map((s, row) => ({ s, row })).filter(({ s }) => !s.done);
    if (keepRunning.length === this.running.length && keepJoining.length === 0) return; // unchanged
    // rows ordered by adapter slot (stable): each adapter's rows are consecutive, so the LoRA
    // kernel uses them in place instead of gathering them
    const rows = [
      ...keepRunning.map(({ s, row }) => ({ s, src: { cache: this.cache, row, len: s.len } })),
      ...keepJoining.map(({ s, row }) => ({ s, src: { cache: prefillCache, row, len: s.len } })),
    ].sort((a, b) => a.s.req.slot - b.s.req.slot);
    const sources: RowSource[] = rows.map((r) => r.src);
    const next = sources.length ? noGrad(() => gatherKvRows(sources, this.model.config.numLayers)) : [];
    disposeKv(this.cache);
    this.cache = next;
    this.running = rows.map((r) => r.s);
    this.cacheT = this.running.length ? Math.max(...this.running.map((s) => s.len)) : 0;
  }

  /** One token for every running sequence. */
  private decode(): void {
    const seqs = this.running;
    const B = seqs.length;
    const V = this.model.config.vocabSize;
    const ids = Int32Array.from(seqs, (s) => s.pending);
    const mask = batchMask(seqs.map((s) => s.len), this.cacheT, 1);
    const logits = this.forward(seqs, 1, ids, mask, this.cache, (out) => out);
    this.cacheT += 1;
    this.stats.decodeSteps++;
    this.stats.rowsDecoded += B;
    const distinct = new Set(seqs.map((s) => s.req.slot)).size;
    if (distinct > 1) this.stats.mixedSteps++;
    this.stats.maxAdaptersInStep = Math.max(this.stats.maxAdaptersInStep, distinct);
    seqs.forEach((s, b) => {
      s.len += 1;
      this.accept(s, logits.subarray(b * V, (b + 1) * V));
    });
  }

  /**
   * One forward of [B, T] tokens with each sequence's adapter slot; returns pick(logits) read
   * into JS. The cache is extended in place (its new tensors kept out of the scope).
   */
  private forward(seqs: Sequence[], T: number, ids: Int32Array, mask: Int32Array, cache: LayerKV[], pick: (logits: Tensor) => Tensor): Float32Array {
    const B = seqs.length;
    // the step's ids, mask and row slots where the model's weights are (a GPU's memory when moved there)
    const device = this.model.device;
    this.adapters.rowSlots.begin(Int32Array.from(seqs, (s) => s.req.slot), T, device);
    try {
      return noGrad(() => inferenceMode(() => tidy(() => {
        const idT = tensor(ids, [B, T], 'i32', device);
        const mT = tensor(mask, [B, mask.length / B], 'i32', device);
        const { logits } = this.model.forward({ inputIds: idT, attentionMask: mT, cache });
        for (const kv of cache) { keep(kv.k); keep(kv.v); }
        return pick(logits).toTypedArray() as Float32Array;
      })));
    } finally {
      this.adapters.rowSlots.end();
    }
  }

  /** Chooses a sequence's next token from its logits row and checks whether it has ended. */
  private accept(s: Sequence, row: Float32Array): void {
    if (s.done) return;
    const tok = chooseToken(row, s.seen, s.settings, s.rng);
    s.seen.push(tok);
    s.generated.push(tok);
    this.stats.generatedTokens++;
    let reason: FinishReason | null = null;
    if (this.eos.has(tok)) {
      reason = 'stop'; // the EOS token itself is not part of the text
    } else {
      const piece = s.text.push(tok);
      if (piece) s.req.onText?.(piece);
      if (s.text.stopped) reason = 'stop';
      else if (s.generated.length >= s.req.maxNewTokens) reason = 'length';
    }
    if (!reason) {
      s.pending = tok;
      return;
    }
    const rest = s.text.finish();
    if (rest) s.req.onText?.(rest);
    s.done = true;
    this.stats.finished++;
    s.resolve({ text: s.text.text, tokens: s.generated, finishReason: reason, promptTokens: s.req.promptIds.length });
  }

  private fail(s: Sequence, e: Error, counter: 'cancelled' | 'timedOut' | 'failed'): void {
    if (s.done) return;
    s.done = true;
    this.stats[counter]++;
    s.reject(e);
  }

  /** After a failed forward: every running sequence ends with the error, the cache is dropped. */
  private resetBatchOnError(e: unknown): void {
    for (const s of this.running) this.fail(s, asError(e), 'failed');
    this.running = [];
    disposeKv(this.cache);
    this.cacheT = 0;
  }
}

function asError(e: unknown): Error {
  return e instanceof Error ? e : new Error(String(e));
}
