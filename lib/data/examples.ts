/**
 * Example builders: records + tokenizer -> token-id examples.
 *
 * Causal LM: `labels` copies `inputIds` on the tokens the loss is taken on (the completion, or
 * the assistant turns of a chat) and is -100 elsewhere (prompt, user turns); an EOS token is
 * appended. Classification: `inputIds` plus the class id. Truncation keeps the start of the
 * sequence (and the tokenizer's own special tokens, such as BERT's [CLS] ... [SEP]).
 *
 * With a maxLength, each text is only tokenized as far as the example can use it (its first or
 * last maxLength tokens, see {@link encodePlain}): one 50 MB record costs no more than a short one.
 */

import { TunekitError, describe } from '../errors.js';
import { encodeLabel, type LabelMap } from './labels.js';
import { whereIs } from './load.js';
import {
  IGNORE_INDEX,
  type CausalLmExample,
  type ChatRenderer,
  type ClassificationExample,
  type NormalizedRecord,
  type PreferenceExample,
  type TokenizerLike,
} from './types.js';

interface SpecialLayout {
  prefix: number[];
  suffix: number[];
}

const layoutCache = new WeakMap<TokenizerLike, SpecialLayout>();

function sameIds(a: number[], b: number[], offset: number): boolean {
  for (let i = 0; i < b.length; i++) if (a[offset + i] !== b[i]) return false;
  return true;
}

/**
 * Which special tokens the tokenizer adds before and after a text (e.g. BERT: [CLS] / [SEP],
 * Llama: <s> / none, GPT-2: none / none). Found once per tokenizer by encoding a probe text
 * with and without special tokens.
 *
 * @example
 * specialTokenLayout(bertTokenizer); // { prefix: [101], suffix: [102] }
 */
export function specialTokenLayout(tok: TokenizerLike): SpecialLayout {
  const cached = layoutCache.get(tok);
  if (cached) return cached;
  const probe = 'hello world';
  const plain = tok.encode(probe, { addSpecialTokens: false }).ids;
  const withSpecial = tok.encode(probe, { addSpecialTokens: true }).ids;
  let layout: SpecialLayout = { prefix: [], suffix: [] };
  for (let p = 0; p + plain.length <= withSpecial.length; p++) {
    if (sameIds(withSpecial, plain, p)) {
      layout = { prefix: withSpecial.slice(0, p), suffix: withSpecial.slice(p + plain.length) };
      break;
    }
  }
  layoutCache.set(tok, layout);
  return layout;
}

/** At most `maxTokens` ids of a text: its first ones, or with `keepEnd` its last ones. */
export interface TokenBound {
  maxTokens: number;
  keepEnd?: boolean;
}

/**
 * Token ids of a text without special tokens (an empty text is no tokens). With a bound, only
 * the first (or last) `maxTokens` ids, which the tokenizer finds without tokenizing the rest of
 * a long text; equal to cutting the full ids.
 *
 * @example
 * encodePlain(tok, fiftyMegabytes, { maxTokens: 32 }); // the first 32 ids, in milliseconds
 */
export function encodePlain(tok: TokenizerLike, text: string, bound?: TokenBound): number[] {
  if (text.length === 0) return [];
  if (!bound) return tok.encode(text, { addSpecialTokens: false }).ids;
  const n = Math.max(0, bound.maxTokens);
  const ids = tok.encode(text, { addSpecialTokens: false, maxLength: n, truncationSide: bound.keepEnd ? 'left' : 'right' }).ids;
  // a tokenizer may ignore maxLength (tests' fakes do)
  if (ids.length <= n) return ids;
  return bound.keepEnd ? ids.slice(ids.length - n) : ids.slice(0, n);
}

function checkMaxLength(maxLength: number | undefined, min: number): void {
  if (maxLength !== undefined && (!Number.isInteger(maxLength) || maxLength < min)) {
    throw new TunekitError('ERR_VALUE', `Expected an integer >= ${min} for maxLength but received ${describe(maxLength)}`);
  }
}

export interface CausalLmOptions {
  /** Truncate to this many tokens (which end is kept: `truncation`). */
  maxLength?: number;
  /**
   * `keep_start` (default): cut the end, so a long prompt can lose its completion (the example is
   * then dropped); `keep_end`: cut the start (after the leading special tokens), so the
   * completion and the end of the prompt (e.g. the question) stay.
   */
  truncation?: 'keep_start' | 'keep_end';
  /** Append the EOS token (default true for text and prompt/completion; false for chat, whose template ends turns itself). */
  addEos?: boolean;
  /** Prepend the tokenizer's own leading special tokens (e.g. Llama's <s>; default true). */
  addSpecialTokens?: boolean;
  /** Renders chat records to text; required for chat records. */
  renderChat?: ChatRenderer;
  /** Take the loss on the prompt too (default false: only on the completion / assistant turns). */
  trainOnPrompt?: boolean;
}

type Segment = { ids: number[]; train: boolean };

function chatSegments(messages: { role: string; content: string }[], render: ChatRenderer, tok: TokenizerLike, where: string, bound: TokenBound | undefined): Segment[] {
  const full = render(messages);
  const segs: Segment[] = [];
  let cursor = 0;
  for (let i = 0; i < messages.length; i++) {
    if (messages[i]!.role !== 'assistant') continue;
    const before = render(messages.slice(0, i), { addGenerationPrompt: true });
    const after = render(messages.slice(0, i + 1));
    if (!full.startsWith(before) || !full.startsWith(after) || before.length < cursor || after.length < before.length) {
      throw new TunekitError(
        'ERR_FORMAT',
        `${where}: the chat template does not render conversations incrementally (the text up to assistant turn ${i} is not a prefix of the whole conversation), so assistant tokens cannot be located`,
      );
    }
    segs.push({ ids: encodePlain(tok, full.slice(cursor, before.length), bound), train: false });
    segs.push({ ids: encodePlain(tok, full.slice(before.length, after.length), bound), train: true });
    cursor = after.length;
  }
  if (cursor < full.length) segs.push({ ids: encodePlain(tok, full.slice(cursor), bound), train: false });
  return segs;
}

/**
 * Builds one causal-LM example. Returns `null` for a record whose every label is -100 after
 * truncation (nothing to learn from).
 *
 * @example
 * buildCausalLmExample({ kind: 'prompt_completion', prompt: 'Q: 2+2?', completion: ' 4' }, tok, { maxLength: 512 });
 * // { inputIds: [...prompt, ...completion, eos], labels: [-100, ..., ...completion, eos] }
 */
export function buildCausalLmExample(rec: NormalizedRecord, tok: TokenizerLike, opts: CausalLmOptions = {}, index?: number): CausalLmExample | null {
  checkMaxLength(opts.maxLength, 1);
  const where = whereIs(rec.source, index);
  const prefix = opts.addSpecialTokens === false ? [] : specialTokenLayout(tok).prefix;
  // Every segment is cut to maxLength ids from the kept end: the example is the first (last)
  // maxLength ids of the segments joined, which only those ids of each segment can reach.
  const bound = opts.maxLength === undefined ? undefined : { maxTokens: opts.maxLength, keepEnd: opts.truncation === 'keep_end' };
  let segs: Segment[];
  let addEos = opts.addEos ?? true;
  switch (rec.kind) {
    case 'text':
      segs = [{ ids: encodePlain(tok, rec.text, bound), train: true }];
      break;
    case 'prompt_completion':
      segs = [
        { ids: encodePlain(tok, rec.prompt, bound), train: opts.trainOnPrompt === true },
        { ids: encodePlain(tok, rec.completion, bound), train: true },
      ];
      break;
    case 'chat':
      if (!opts.renderChat) throw new TunekitError('ERR_VALUE', `${where}: Expected a renderChat function for chat records but received undefined`);
      segs = chatSegments(rec.messages, opts.renderChat, tok, where, bound);
      if (opts.trainOnPrompt) segs.forEach((s) => (s.train = true));
      addEos = opts.addEos ?? false;
      break;
    default:
      throw new TunekitError('ERR_FORMAT', `${where}: Expected a text, prompt/completion, alpaca or chat record for causal LM but received a ${rec.kind} record`);
  }
  const inputIds: number[] = [...prefix];
  const labels: number[] = prefix.map(() => IGNORE_INDEX);
  for (const s of segs) {
    for (const id of s.ids) {
      inputIds.push(id);
      labels.push(s.train ? id : IGNORE_INDEX);
    }
  }
  if (addEos) {
    if (tok.eosTokenId == null) throw new TunekitError('ERR_VALUE', `Expected the tokenizer to have eosTokenId (addEos is on) but received ${describe(tok.eosTokenId)}`);
    inputIds.push(tok.eosTokenId);
    labels.push(tok.eosTokenId);
  }
  if (opts.maxLength !== undefined && inputIds.length > opts.maxLength) {
    if (opts.truncation === 'keep_end') {
      const cut = inputIds.length - opts.maxLength;
      if (cut > inputIds.length - prefix.length) throw new TunekitError('ERR_VALUE', `${where}: maxLength ${opts.maxLength} leaves no room after the ${prefix.length} leading special token(s)`);
      inputIds.splice(prefix.length, cut);
      labels.splice(prefix.length, cut);
    } else {
      inputIds.length = opts.maxLength;
      labels.length = opts.maxLength;
    }
  }
  if (inputIds.length === 0 || labels.every((l) => l === IGNORE_INDEX)) return null;
  return { inputIds, labels };
}

/**
 * Builds causal-LM examples for many records; records left with nothing to learn from are
 * dropped and counted.
 *
 * @example
 * const { examples, dropped } = buildCausalLmExamples(records, tok, { maxLength: 256 });
 */
export function buildCausalLmExamples(records: NormalizedRecord[], tok: TokenizerLike, opts: CausalLmOptions = {}): { examples: CausalLmExample[]; dropped: number } {
  const examples: CausalLmExample[] = [];
  let dropped = 0;
  records.forEach((r, i) => {
    const ex = buildCausalLmExample(r, tok, opts, i);
    if (ex) examples.push(ex);
    else dropped++;
  });
  return { examples, dropped };
}

export interface ClassificationOptions {
  /** Truncate to this many tokens (the tokenizer's special tokens are always kept). */
  maxLength?: number;
  /**
   * Which part of a longer text is kept: `keep_start` (default), `keep_end`, or
   * `keep_start_and_end`: the first three quarters of the room and the last quarter (head + tail).
   */
  truncation?: 'keep_start' | 'keep_end' | 'keep_start_and_end';
  /** Add the tokenizer's special tokens (default true). */
  addSpecialTokens?: boolean;
}

/**
 * Builds one classification example; the label is mapped through the label map (an unknown or
 * out-of-range label is an error naming the row).
 *
 * @example
 * buildClassificationExample({ kind: 'labelled', text: 'Win money now', label: 'spam' }, tok, labelMap, { maxLength: 128 });
 * // { inputIds: [101, ..., 102], label: 1 }
 */
export function buildClassificationExample(
  rec: NormalizedRecord,
  tok: TokenizerLike,
  labelMap: LabelMap,
  opts: ClassificationOptions = {},
  index?: number,
): ClassificationExample {
  const where = whereIs(rec.source, index);
  if (rec.kind !== 'labelled') {
    throw new TunekitError('ERR_FORMAT', `${where}: Expected a labelled record (text + label) for classification but received a ${rec.kind} record`);
  }
  const layout = opts.addSpecialTokens === false ? { prefix: [], suffix: [] } : specialTokenLayout(tok);
  const nSpecial = layout.prefix.length + layout.suffix.length;
  checkMaxLength(opts.maxLength, nSpecial + 1);
  const body = opts.maxLength === undefined ? encodePlain(tok, rec.text) : boundedBody(tok, rec.text, opts.maxLength - nSpecial, opts.truncation ?? 'keep_start');
  return { inputIds: [...layout.prefix, ...body, ...layout.suffix], label: encodeLabel(labelMap, rec.label, where) };
}

/**
 * At most `room` ids of a text, cut as `truncation` says. Head + tail reads only the ends of a
 * long text (two bounded encodes), so its cost does not grow with the text.
 *
 * @example
 * boundedBody(tok, longEmail, 256, 'keep_start_and_end'); // its first 192 ids, then its last 64
 */
function boundedBody(tok: TokenizerLike, text: string, room: number, truncation: 'keep_start' | 'keep_end' | 'keep_start_and_end'): number[] {
  if (truncation !== 'keep_start_and_end') return encodePlain(tok, text, { maxTokens: room, keepEnd: truncation === 'keep_end' });
  const head = encodePlain(tok, text, { maxTokens: room });
  if (head.length < room) return head; // the whole text fits
  // the text has at least `room` ids, so its last `tail` ids do not overlap the first room - tail
  const tail = Math.floor(room / 4);
  if (tail === 0) return head;
  return [...head.slice(0, room - tail), ...encodePlain(tok, text, { maxTokens: tail, keepEnd: true })];
}

/**
 * Builds classification examples for many records.
 *
 * @example
 * const examples = buildClassificationExamples(train, tok, buildLabelMap(train), { maxLength: 256 });
 */
export function buildClassificationExamples(records: NormalizedRecord[], tok: TokenizerLike, labelMap: LabelMap, opts: ClassificationOptions = {}): ClassificationExample[] {
  return records.map((r, i) => buildClassificationExample(r, tok, labelMap, opts, i));
}

/**
 * Tokenises a preference pair (for reward modelling and DPO).
 *
 * @example
 * buildPreferenceExample({ kind: 'preference', prompt: 'Q', chosen: ' good', rejected: ' bad' }, tok);
 */
export function buildPreferenceExample(rec: NormalizedRecord, tok: TokenizerLike, opts: { maxLength?: number; addEos?: boolean } = {}, index?: number): PreferenceExample {
  const where = whereIs(rec.source, index);
  if (rec.kind !== 'preference') {
    throw new TunekitError('ERR_FORMAT', `${where}: Expected a preference record (prompt, chosen, rejected) but received a ${rec.kind} record`);
  }
  checkMaxLength(opts.maxLength, 2);
  // only the prompt's last maxLength - 1 ids and the answers' first maxLength ids can be kept
  const promptBound = opts.maxLength === undefined ? undefined : { maxTokens: opts.maxLength - 1, keepEnd: true };
  const answerBound = opts.maxLength === undefined ? undefined : { maxTokens: opts.maxLength };
  const promptIds = [...specialTokenLayout(tok).prefix, ...encodePlain(tok, rec.prompt, promptBound)];
  const eos = opts.addEos !== false && tok.eosTokenId != null ? [tok.eosTokenId] : [];
  const chosenIds = [...encodePlain(tok, rec.chosen, answerBound), ...eos];
  const rejectedIds = [...encodePlain(tok, rec.rejected, answerBound), ...eos];
  if (opts.maxLength !== undefined) {
    // Keep the end of an over-long prompt (the part next to the answers), then cut the answers.
    const promptIds2 = promptIds.length > opts.maxLength - 1 ? promptIds.slice(promptIds.length - (opts.maxLength - 1)) : promptIds;
    const room = opts.maxLength - promptIds2.length;
    return { promptIds: promptIds2, chosenIds: chosenIds.slice(0, room), rejectedIds: rejectedIds.slice(0, room) };
  }
  return { promptIds, chosenIds, rejectedIds };
}

/**
 * Packs causal-LM examples into fixed-length blocks (concatenate, then cut; the incomplete
 * tail is dropped unless `keepRemainder`). Per-token labels are kept, so prompt tokens stay
 * masked. Each example should already end in EOS so documents stay separated.
 *
 * @example
 * packExamples(examples, 1024); // every block has 1024 tokens
 */
export function packExamples(examples: CausalLmExample[], blockSize: number, opts: { keepRemainder?: boolean } = {}): CausalLmExample[] {
  if (!Number.isInteger(blockSize) || blockSize < 1) {
    throw new TunekitError('ERR_VALUE', `Expected a positive integer for blockSize but received ${describe(blockSize)}`);
  }
  const out: CausalLmExample[] = [];
  let ids: number[] = [];
  let labels: number[] = [];
  for (const ex of examples) {
    for (let i = 0; i < ex.inputIds.length; i++) {
      ids.push(ex.inputIds[i]!);
      labels.push(ex.labels[i]!);
      if (ids.length === blockSize) {
        out.push({ inputIds: ids, labels });
        ids = [];
        labels = [];
      }
    }
  }
  if (opts.keepRemainder && ids.length > 0) out.push({ inputIds: ids, labels });
  if (out.length === 0) {
    const total = examples.reduce((s, e) => s + e.inputIds.length, 0);
    throw new TunekitError('ERR_VALUE', `Expected at least ${blockSize} tokens to pack into one block but the dataset has ${total}`);
  }
  return out;
}

/**
 * The causal-LM examples of a split as a training run uses them: one example per record cut at
 * `maxLength`, or with `packing` the whole records concatenated (each ending in EOS) and cut
 * into `maxLength` blocks, so that no text past a record's first block is lost.
 *
 * @example
 * const blocks = buildCausalLmSplit(records, tok, { maxLength: 128, packing: true });
 */
export function buildCausalLmSplit(records: NormalizedRecord[], tok: TokenizerLike, opts: CausalLmOptions & { packing?: boolean } = {}): CausalLmExample[] {
  const { packing, ...rest } = opts;
  if (!packing) return buildCausalLmExamples(records, tok, rest).examples;
  const whole = buildCausalLmExamples(records, tok, { ...rest, maxLength: undefined }).examples;
  return packExamples(whole, opts.maxLength ?? 512);
}
