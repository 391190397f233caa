/**
 * Tokenizer: loads a Hugging Face tokenizer folder (tokenizer.json, tokenizer_config.json,
 * special_tokens_map.json, chat_template.jinja) and tokenizes as transformers does.
 *
 * The tokenization itself is @huggingface/tokenizers (byte-level BPE as GPT-2, WordPiece as
 * BERT, SentencePiece-style BPE with byte fallback as Llama, Unigram). What that package does
 * not do is added here: character offsets, truncation that keeps the special tokens, batch
 * padding, and transformers' defaults (e.g. no clean-up of tokenization spaces unless the
 * config asks for it); tokenizer.json is validated before the package sees it (validate.ts), and
 * long texts are tokenized in pieces, only as far as `maxLength` needs (long_text.ts).
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { TunekitError, describe } from '../errors.js';
import { applyChatTemplate, type ChatMessage, type ChatTemplateOptions } from './chat_template.js';
import { keptTokens, planCuts, tokenizeHead, tokenizeTail, tokenizeWhole, type CutPlan, type Piece } from './long_text.js';
import { validateTokenizerJson } from './validate.js';

/** One encoded text. */
export interface Encoding {
  ids: number[];
  tokens: string[];
  attentionMask: number[];
  /**
   * [start, end) of each token in the input string, in UTF-16 code units (so that
   * `text.slice(start, end)` is the token's text); [0, 0] for added special tokens.
   * Undefined where the tokenizer's normalizer is one we cannot align (e.g. BERT's
   * lowercasing and accent stripping), see `computeOffsets`.
   */
  offsets?: Array<[number, number]>;
}

/** Options of {@link Tokenizer.encode}. */
export interface EncodeOptions {
  /** Add the post-processor's special tokens ([CLS]/[SEP], <s>, ...). Default true. */
  addSpecialTokens?: boolean;
  /**
   * Cut to at most this many ids (special tokens kept). Only as much of the text as these ids
   * need is tokenized, so a 50 MB text with maxLength 32 costs about as much as a short one.
   */
  maxLength?: number;
  /** Whether to cut to `maxLength`. Default true when maxLength is given. */
  truncation?: boolean;
  /** Which end of the content is cut (transformers' truncation_side): 'right' (default) keeps the start, 'left' the end. */
  truncationSide?: 'right' | 'left';
}

/** Options of {@link Tokenizer.encodeBatch}. */
export interface BatchEncodeOptions {
  addSpecialTokens?: boolean;
  /** 'longest' pads to the longest row, 'max_length' to `maxLength`, false leaves rows ragged. Default 'longest'. */
  padding?: 'longest' | 'max_length' | false;
  /** Length for truncation and for padding: 'max_length'. */
  maxLength?: number;
  /** Cut rows longer than maxLength (default: model_max_length). Default false. */
  truncation?: boolean;
  /** Where padding goes. Default: the config's padding_side, else 'right'. */
  paddingSide?: 'right' | 'left';
}

/** A padded batch: `rows` x `length`, row-major in `inputIds`, also as per-row views. */
export interface BatchEncoding {
  /** Per-row ids (views into `inputIds` when padded). */
  ids: Int32Array[];
  attentionMask: Int32Array[];
  /** Flat [rows, length] when padded (all rows equal length). */
  inputIds?: Int32Array;
  attentionMaskFlat?: Int32Array;
  shape?: [number, number];
}

/** Options of {@link Tokenizer.decode}. */
export interface DecodeOptions {
  skipSpecialTokens?: boolean;
  /** Default: the config's clean_up_tokenization_spaces, else false (transformers 5). */
  cleanUpTokenizationSpaces?: boolean;
}

type Json = Record<string, unknown>;

const SENTINEL = '\u0000tunekit-sentinel\u0000';

/**
 * Largest tokenizer folder file read: 256 MiB (the largest real tokenizer.json files, with
 * vocabularies of 250K tokens, are about 35 MB).
 */
export const MAX_TOKENIZER_FILE_BYTES = 256 * 1024 * 1024;

function checkTokenizerFile(file: string, st: fs.Stats): void {
  if (!st.isFile()) throw new TunekitError('ERR_IO', `${file}: expected a regular file but it is ${st.isDirectory() ? 'a directory' : st.isFIFO() ? 'a FIFO' : 'a special file'}`);
  if (st.size > MAX_TOKENIZER_FILE_BYTES) throw new TunekitError('ERR_LIMIT', `${file}: expected at most ${MAX_TOKENIZER_FILE_BYTES / 2 ** 20} MiB (MAX_TOKENIZER_FILE_BYTES) but the file has ${(st.size / 2 ** 20).toFixed(1)} MiB`);
}

/** The error of a failed read; null for a missing optional file. */
function readError(file: string, err: unknown, required: boolean): TunekitError | null {
  if (err instanceof TunekitError) return err;
  if (!required && (err as NodeJS.ErrnoException).code === 'ENOENT') return null;
  const code = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'ERR_NOT_FOUND' : 'ERR_IO';
  return new TunekitError(code, `${file}: cannot read (${(err as Error).message})`);
}

/** Reads a tokenizer folder file: a regular file (a FIFO would block forever) within the size limit; null when optional and absent. */
async function readTextFile(file: string, required: boolean): Promise<string | null> {
  try {
    checkTokenizerFile(file, await fsp.stat(file));
    return await fsp.readFile(file, 'utf8');
  } catch (err) {
    const e = readError(file, err, required);
    if (e) throw e;
    return null;
  }
}

function readTextFileSync(file: string, required: boolean): string | null {
  try {
    checkTokenizerFile(file, fs.statSync(file));
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    const e = readError(file, err, required);
    if (e) throw e;
    return null;
  }
}

function parseJsonObject(file: string, text: string | null): Json | null {
  if (text === null) return null;
  try {
    const v = JSON.parse(text);
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('expected a JSON object');
    return v as Json;
  } catch (err) {
    throw new TunekitError('ERR_FORMAT', `${file}: not a valid JSON object (${(err as Error).message})`);
  }
}

/** The files of a tokenizer folder, as read (null where an optional one is absent). */
interface FolderTexts {
  tokenizer: string;
  specialTokensMap: string | null;
  tokenizerConfig: string | null;
  /** chat_template.jinja, read only when tokenizer_config.json has no template */
  jinja?: string | null;
}

/** The folder's files, in the order fromFolder reads them. */
function folderFiles(dir: string): { tokenizer: string; specialTokensMap: string; tokenizerConfig: string; jinja: string } {
  return {
    tokenizer: path.join(dir, 'tokenizer.json'),
    specialTokensMap: path.join(dir, 'special_tokens_map.json'),
    tokenizerConfig: path.join(dir, 'tokenizer_config.json'),
    jinja: path.join(dir, 'chat_template.jinja'),
  };
}

/**
 * The chat template of a tokenizer_config: a string, or a list of {name, template} (the one
 * named "default", else the first); anything else is ERR_FORMAT.
 */
function chatTemplateOf(ct: unknown, source: string): string | null {
  if (ct === undefined || ct === null) return null;
  if (typeof ct === 'string') return ct;
  if (Array.isArray(ct) && ct.length === 0) return null;
  if (Array.isArray(ct) && ct.every((t) => t && typeof t === 'object' && typeof (t as Json).template === 'string')) {
    return ((ct as Json[]).find((t) => t.name === 'default') ?? ct[0]).template as string;
  }
  throw new TunekitError('ERR_FORMAT', `${source}: expected chat_template to be a string or a list of {name, template} but received ${describe(ct)}`);
}

/** tokenizer_config values are strings or AddedToken dicts {content, ...}. */
function tokenContent(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as Json).content === 'string') return (v as Json).content as string;
  return null;
}

/** Which parts of tokenizer.json `computeOffsets` can align, or null when it cannot. */
interface OffsetPlan {
  byteLevel: boolean;
  prepend: string | null;
  replacements: Array<[string, string]>;
}

function planOffsets(json: Json): OffsetPlan | null {
  const plan: OffsetPlan = { byteLevel: false, prepend: null, replacements: [] };
  const norm = json.normalizer as Json | null;
  const norms: Json[] = !norm ? [] : norm.type === 'Sequence' ? (norm.normalizers as Json[]) : [norm];
  for (const n of norms) {
    if (n.type === 'Prepend' && typeof n.prepend === 'string' && plan.replacements.length === 0 && plan.prepend === null) {
      plan.prepend = n.prepend;
    } else if (n.type === 'Replace' && typeof (n.pattern as Json)?.String === 'string' && [...((n.pattern as Json).String as string)].length === 1 && [...(n.content as string)].length === 1) {
      plan.replacements.push([(n.pattern as Json).String as string, n.content as string]);
    } else {
      return null; // lowercasing, NFD, accent stripping...: lengths change in ways we do not track
    }
  }
  const pre = json.pre_tokenizer as Json | null;
  const pres: Json[] = !pre ? [] : pre.type === 'Sequence' ? (pre.pretokenizers as Json[]) : [pre];
  for (const p of pres) {
    if (p.type === 'ByteLevel' && !p.add_prefix_space) plan.byteLevel = true;
    else if (p.type === 'Split' || p.type === 'Digits' || p.type === 'Punctuation' || p.type === 'WhitespaceSplit') { /* splits only */ }
    else return null;
  }
  const model = json.model as Json;
  if (model?.type !== 'BPE' || model.continuing_subword_prefix || model.end_of_word_suffix) return null;
  const post = json.post_processor as Json | null;
  if (post && (post.type === 'ByteLevel' || post.type === 'RobertaProcessing') && post.trim_offsets) return null;
  return plan;
}

/**
 * A Hugging Face tokenizer.
 *
 * @example
 * const tok = await Tokenizer.fromFolder('models/gpt2-tiny');
 * tok.encode('Hello world').ids;            // [40, 447, 79, 264, 285, 310]
 * tok.decode([40, 447, 79]);                // 'Hello'
 */
export class Tokenizer {
  readonly vocabSize: number;
  readonly bosToken: string | null;
  readonly eosToken: string | null;
  readonly padToken: string | null;
  readonly unkToken: string | null;
  readonly bosTokenId: number | null;
  readonly eosTokenId: number | null;
  readonly padTokenId: number | null;
  readonly unkTokenId: number | null;
  /** model_max_length from the config (null when absent or the "very large" placeholder). */
  readonly modelMaxLength: number | null;
  readonly paddingSide: 'right' | 'left';
  /** The chat template, if the folder has one. */
  readonly chatTemplate: string | null;
  /** All special token strings (added tokens marked special and the config's). */
  readonly specialTokens: ReadonlySet<string>;
  private readonly hf: HfTokenizer;
  private readonly cleanUp: boolean;
  private readonly offsetPlan: OffsetPlan | null;
  private readonly cutPlan: CutPlan | null;
  /** One more than the largest id (vocab and added tokens): ids below it can be decoded. */
  private readonly idLimit: number;
  private readonly addedContents: ReadonlySet<string>;
  private readonly specialAround: [number, number];

  /**
   * Builds a tokenizer from parsed tokenizer.json (and optionally tokenizer_config.json).
   * Prefer {@link Tokenizer.fromFolder}.
   *
   * @example
   * const tok = new Tokenizer(JSON.parse(fs.readFileSync('tokenizer.json', 'utf8')), { eos_token: '<|endoftext|>' });
   */
  constructor(tokenizerJson: Json, config: Json = {}, readonly source = '<memory>') {
    if (!tokenizerJson || typeof tokenizerJson !== 'object' || Array.isArray(tokenizerJson) || !tokenizerJson.model) {
      throw new TunekitError('ERR_FORMAT', `${source}: expected a tokenizer.json object with a "model" but received ${describe(tokenizerJson)}`);
    }
    const facts = validateTokenizerJson(tokenizerJson, source);
    // transformers 5 does not clean up tokenization spaces unless the config says so; the
    // package defaults to true, so pass the setting explicitly.
    const hfConfig = { ...config, clean_up_tokenization_spaces: config.clean_up_tokenization_spaces ?? false };
    try {
      this.hf = new HfTokenizer(tokenizerJson, hfConfig);
    } catch (err) {
      throw new TunekitError('ERR_FORMAT', `${source}: @huggingface/tokenizers cannot load it: ${(err as Error).message}`);
    }
    this.cleanUp = Boolean(hfConfig.clean_up_tokenization_spaces);
    this.vocabSize = this.hf.get_vocab(true).size;
    this.idLimit = Math.max(this.vocabSize, facts.maxId + 1);
    const pick = (key: string) => {
      const content = tokenContent(config[key]);
      if (content === null) return { token: null, id: null };
      const id = this.hf.token_to_id(content);
      return { token: content, id: id ?? null };
    };
    const bos = pick('bos_token'), eos = pick('eos_token'), pad = pick('pad_token'), unk = pick('unk_token');
    this.bosToken = bos.token; this.bosTokenId = bos.id;
    this.eosToken = eos.token; this.eosTokenId = eos.id;
    this.padToken = pad.token; this.padTokenId = pad.id;
    this.unkToken = unk.token; this.unkTokenId = unk.id;
    const mml = config.model_max_length;
    this.modelMaxLength = typeof mml === 'number' && mml < 1e12 ? mml : null;
    this.paddingSide = config.padding_side === 'left' ? 'left' : 'right';
    this.chatTemplate = chatTemplateOf(config.chat_template, source);
    const added = (tokenizerJson.added_tokens as Json[] | undefined) ?? [];
    const specials = new Set<string>(added.filter((t) => t.special).map((t) => t.content as string));
    for (const key of ['bos_token', 'eos_token', 'pad_token', 'unk_token', 'sep_token', 'cls_token', 'mask_token']) {
      const c = tokenContent(config[key]);
      if (c !== null) specials.add(c);
    }
    const additional = config.additional_special_tokens;
    if (additional !== undefined && additional !== null && !Array.isArray(additional)) {
      throw new TunekitError('ERR_FORMAT', `${source}: expected additional_special_tokens to be a list but received ${describe(additional)}`);
    }
    for (const t of additional ?? []) {
      const c = tokenContent(t);
      if (c !== null) specials.add(c);
    }
    this.specialTokens = specials;
    this.addedContents = new Set(added.map((t) => t.content as string));
    this.offsetPlan = planOffsets(tokenizerJson);
    this.cutPlan = planCuts(tokenizerJson, hfConfig);
    const probe = this.postProcess([SENTINEL], true);
    const at = probe.indexOf(SENTINEL);
    this.specialAround = [at, probe.length - at - 1];
  }

  /**
   * Loads tokenizer.json plus, when present, tokenizer_config.json, special_tokens_map.json
   * and chat_template.jinja (transformers 5 saves the template there), through fs/promises.
   *
   * @example
   * const tok = await Tokenizer.fromFolder('test/fixtures/tokenizers/bert-wordpiece');
   * tok.encode('hello').tokens; // ['[CLS]', 'he', '##ll', '##o', '[SEP]']
   */
  static async fromFolder(dir: string): Promise<Tokenizer> {
    const f = folderFiles(dir);
    const texts: FolderTexts = {
      tokenizer: (await readTextFile(f.tokenizer, true))!,
      specialTokensMap: await readTextFile(f.specialTokensMap, false),
      tokenizerConfig: await readTextFile(f.tokenizerConfig, false),
    };
    if (Tokenizer.configOf(f, texts).chat_template === undefined) texts.jinja = await readTextFile(f.jinja, false);
    return Tokenizer.fromTexts(f, texts);
  }

  /**
   * {@link Tokenizer.fromFolder} with blocking reads (scripts, synchronous callers).
   *
   * @example
   * const tok = Tokenizer.fromFolderSync('test/fixtures/tokenizers/bert-wordpiece');
   */
  static fromFolderSync(dir: string): Tokenizer {
    const f = folderFiles(dir);
    const texts: FolderTexts = {
      tokenizer: readTextFileSync(f.tokenizer, true)!,
      specialTokensMap: readTextFileSync(f.specialTokensMap, false),
      tokenizerConfig: readTextFileSync(f.tokenizerConfig, false),
    };
    if (Tokenizer.configOf(f, texts).chat_template === undefined) texts.jinja = readTextFileSync(f.jinja, false);
    return Tokenizer.fromTexts(f, texts);
  }

  /** tokenizer_config.json over special_tokens_map.json, plus chat_template.jinja when read. */
  private static configOf(f: ReturnType<typeof folderFiles>, texts: FolderTexts): Json {
    const config: Json = { ...(parseJsonObject(f.specialTokensMap, texts.specialTokensMap) ?? {}), ...(parseJsonObject(f.tokenizerConfig, texts.tokenizerConfig) ?? {}) };
    if (config.chat_template === undefined && typeof texts.jinja === 'string') config.chat_template = texts.jinja;
    return config;
  }

  private static fromTexts(f: ReturnType<typeof folderFiles>, texts: FolderTexts): Tokenizer {
    return new Tokenizer(parseJsonObject(f.tokenizer, texts.tokenizer)!, Tokenizer.configOf(f, texts), f.tokenizer);
  }

  /** The id of a token string, or undefined. */
  tokenToId(token: string): number | undefined {
    return this.hf.token_to_id(token);
  }

  /** The token string of an id, or undefined. */
  idToToken(id: number): string | undefined {
    return this.hf.id_to_token(id);
  }

  /** Runs the post-processor alone (adds [CLS]/[SEP], <s>, ...). */
  private postProcess(tokens: string[], addSpecialTokens: boolean): string[] {
    const pp = this.hf.post_processor as unknown as ((a: string[], b: null, add: boolean) => { tokens: string[] }) | null;
    return pp ? pp(tokens, null, addSpecialTokens).tokens : tokens;
  }

  /** Number of ids the post-processor adds around one sequence. */
  get numSpecialTokensToAdd(): number {
    return this.specialAround[0] + this.specialAround[1];
  }

  /**
   * Encodes one text.
   *
   * @example
   * tok.encode('Hello world', { addSpecialTokens: false }); // { ids, tokens, attentionMask, offsets }
   */
  encode(text: string, options: EncodeOptions = {}): Encoding {
    if (typeof text !== 'string') {
      throw new TunekitError('ERR_VALUE', `Tokenizer.encode: expected a string but received ${describe(text)}`);
    }
    const add = options.addSpecialTokens ?? true;
    const max = options.maxLength;
    const side = options.truncationSide ?? 'right';
    if (side !== 'right' && side !== 'left') throw new TunekitError('ERR_VALUE', `Tokenizer.encode: expected 'right' or 'left' for truncationSide but received ${describe(side)}`);
    let room: number | undefined;
    if (max !== undefined && (options.truncation ?? true)) {
      if (!Number.isInteger(max) || max < 0) throw new TunekitError('ERR_VALUE', `Tokenizer.encode: maxLength must be a non-negative integer but received ${describe(max)}`);
      room = Math.max(0, max - (add ? this.numSpecialTokensToAdd : 0));
    }
    const tokenize = (s: string): string[] => this.hf.tokenize(s, { add_special_tokens: false });
    const pieces = room === undefined ? tokenizeWhole(text, this.cutPlan, tokenize)
      : side === 'left' ? tokenizeTail(text, room, this.cutPlan, tokenize)
      : tokenizeHead(text, room, this.cutPlan, tokenize);
    const content = keptTokens(pieces);
    const tokens = add ? this.postProcess(content, true) : content;
    const ids = tokens.map((t: string) => this.hf.token_to_id(t) ?? this.unkIdOrThrow(t));
    const out: Encoding = { ids, tokens, attentionMask: new Array(ids.length).fill(1) };
    if (this.offsetPlan) {
      // Offsets cost several times the tokenization itself and training never reads them:
      // computed on first access.
      let cached: Array<[number, number]> | undefined | null = null;
      Object.defineProperty(out, 'offsets', {
        enumerable: true,
        configurable: true,
        get: () => {
          if (cached === null) cached = this.offsetsOf(pieces, content.length, tokens.length, add);
          return cached;
        },
      });
    }
    return out;
  }

  /** Offsets of the kept tokens of `pieces`, with [0, 0] for the special tokens around them. */
  private offsetsOf(pieces: readonly Piece[], contentCount: number, tokenCount: number, add: boolean): Array<[number, number]> | undefined {
    let offsets: Array<[number, number]> = [];
    for (const p of pieces) {
      const spans = this.computeOffsets(p.text, p.tokens, p.afterSpace);
      if (!spans) return undefined;
      for (let i = p.from; i < p.to; i++) offsets.push([spans[i]![0] + p.start, spans[i]![1] + p.start]);
    }
    if (add) {
      const [before, after] = this.specialAround;
      if (tokenCount !== contentCount + before + after) return undefined;
      const none = (n: number) => Array.from({ length: n }, (): [number, number] => [0, 0]);
      offsets = [...none(before), ...offsets, ...none(after)];
    }
    return offsets;
  }

  private unkIdOrThrow(token: string): number {
    const unk = this.hf.model?.unk_token_id;
    if (unk === undefined || unk === null) {
      throw new TunekitError('ERR_VALUE', `${this.source}: token ${JSON.stringify(token)} is not in the vocabulary and the model has no unk token`);
    }
    return unk;
  }

  /**
   * Offsets, which @huggingface/tokenizers does not report, recomputed from the tokens: each
   * token stands for a known number of UTF-8 bytes of the normalized text (a byte-level token:
   * one byte per character; `<0xNN>`: one byte; otherwise its UTF-8 length), added tokens are
   * found in the text, and normalized positions map back through the (Prepend / one-character
   * Replace) normalizers. A token covering part of a character gets the whole character, as
   * in Python `tokenizers`. Returns undefined when the pipeline is one we cannot align.
   * `spaceBefore`: the text is a piece that starts after a space, which its Prepend marker stands for.
   */
  private computeOffsets(text: string, tokens: string[], spaceBefore = false): Array<[number, number]> | undefined {
    const plan = this.offsetPlan;
    if (!plan) return undefined;
    const out: Array<[number, number]> = [];
    let cursor = 0; // UTF-16 position in `text`
    let i = 0;
    while (i < tokens.length) {
      if (this.addedContents.has(tokens[i])) {
        const at = text.indexOf(tokens[i], cursor);
        if (at < 0) return undefined;
        out.push([at, at + tokens[i].length]);
        cursor = at + tokens[i].length;
        i++;
        continue;
      }
      // A run of model tokens covers the text up to the next added token.
      let j = i;
      while (j < tokens.length && !this.addedContents.has(tokens[j])) j++;
      const end = j < tokens.length ? text.indexOf(tokens[j], cursor) : text.length;
      if (end < 0) return undefined;
      const spans = this.alignSection(text, cursor, end, tokens.slice(i, j), plan, spaceBefore && cursor === 0);
      if (!spans) return undefined;
      for (const span of spans) out.push(span); // not push(...spans): a long text overflows the stack
      cursor = end;
      i = j;
    }
    return out;
  }

  private alignSection(text: string, from: number, to: number, tokens: string[], plan: OffsetPlan, spaceBefore: boolean): Array<[number, number]> | undefined {
    // Normalized text, as [normalized char, original start, original end] per code point.
    const chars: Array<[string, number, number]> = [];
    let section = text.slice(from, to);
    // The package trims sections next to lstrip/rstrip added tokens; whitespace it dropped
    // simply has no token, so trimming here is not needed for alignment of what remains.
    let pos = from;
    const cps = [...section];
    if (plan.prepend !== null && cps.length > 0) {
      // the marker stands for the section's first character, or for the space cut off before it
      const [ps, pe] = spaceBefore ? [from - 1, from] : [from, from + cps[0].length];
      for (const c of plan.prepend) chars.push([c, ps, pe]);
    }
    for (const cp of cps) {
      let c = cp;
      for (const [a, b] of plan.replacements) if (c === a) c = b;
      chars.push([c, pos, pos + cp.length]);
      pos += cp.length;
    }
    section = '';
    // UTF-8 byte ranges of each normalized char.
    const byteStart: number[] = [];
    let bytes = 0;
    for (const [c] of chars) {
      byteStart.push(bytes);
      bytes += Buffer.byteLength(c, 'utf8');
    }
    const charAtByte = (b: number) => {
      // last char whose byte start <= b
      let lo = 0, hi = byteStart.length - 1;
      while (lo < hi) {
        const mid = (lo + hi + 1) >> 1;
        if (byteStart[mid] <= b) lo = mid; else hi = mid - 1;
      }
      return lo;
    };
    const out: Array<[number, number]> = [];
    let b = 0;
    for (const t of tokens) {
      let n: number;
      if (plan.byteLevel) n = [...t].length;
      else if (/^<0x[0-9A-F]{2}>$/.test(t)) n = 1;
      else n = Buffer.byteLength(t, 'utf8');
      if (n === 0 || b + n > bytes) return undefined;
      const first = chars[charAtByte(b)];
      const last = chars[charAtByte(b + n - 1)];
      out.push([first[1], last[2]]);
      b += n;
    }
    return b === bytes ? out : undefined;
  }

  /**
   * Encodes several texts, truncating and padding as transformers does.
   *
   * @example
   * const { inputIds, attentionMaskFlat, shape } = tok.encodeBatch(['a b', 'c'], { padding: 'longest' });
   */
  encodeBatch(texts: readonly string[], options: BatchEncodeOptions = {}): BatchEncoding {
    if (!Array.isArray(texts)) throw new TunekitError('ERR_VALUE', `Tokenizer.encodeBatch: expected an array of strings but received ${describe(texts)}`);
    const padding = options.padding ?? 'longest';
    const side = options.paddingSide ?? this.paddingSide;
    const truncate = options.truncation ?? false;
    const maxLength = options.maxLength ?? (truncate || padding === 'max_length' ? this.modelMaxLength ?? undefined : undefined);
    if ((truncate || padding === 'max_length') && maxLength === undefined) {
      throw new TunekitError('ERR_VALUE', `Tokenizer.encodeBatch: ${truncate ? 'truncation' : "padding: 'max_length'"} needs maxLength (the config has no model_max_length)`);
    }
    const rows = texts.map((t) => this.encode(t, { addSpecialTokens: options.addSpecialTokens, maxLength: truncate ? maxLength : undefined }).ids);
    if (padding === false) {
      return { ids: rows.map((r) => Int32Array.from(r)), attentionMask: rows.map((r) => new Int32Array(r.length).fill(1)) };
    }
    const longest = rows.reduce((m, r) => Math.max(m, r.length), 0);
    const length = padding === 'max_length' ? Math.max(maxLength!, truncate ? 0 : longest) : longest;
    if (rows.some((r) => r.length < length) && this.padTokenId === null) {
      throw new TunekitError('ERR_VALUE', `${this.source}: padding needs a pad token but the tokenizer has none (set pad_token in tokenizer_config.json, e.g. to the eos token)`);
    }
    const inputIds = new Int32Array(rows.length * length).fill(this.padTokenId ?? 0);
    const mask = new Int32Array(rows.length * length);
    rows.forEach((r, i) => {
      const start = i * length + (side === 'left' ? length - r.length : 0);
      inputIds.set(r, start);
      mask.fill(1, start, start + r.length);
    });
    return {
      ids: rows.map((_, i) => inputIds.subarray(i * length, (i + 1) * length)),
      attentionMask: rows.map((_, i) => mask.subarray(i * length, (i + 1) * length)),
      inputIds, attentionMaskFlat: mask, shape: [rows.length, length],
    };
  }

  /**
   * Turns ids back into text.
   *
   * @example
   * tok.decode(tok.encode('Hello world').ids, { skipSpecialTokens: true }); // 'Hello world'
   */
  decode(ids: ArrayLike<number> | readonly number[], options: DecodeOptions = {}): string {
    const list = Array.from(ids as ArrayLike<number>, Number);
    for (const id of list) {
      if (!Number.isInteger(id) || id < 0 || id >= this.idLimit) {
        throw new TunekitError('ERR_VALUE', `Tokenizer.decode: ids must be integers in [0, ${this.idLimit}) but received ${describe(id)}`);
      }
    }
    let kept = list;
    if (options.skipSpecialTokens) kept = list.filter((id) => !this.specialTokens.has(this.hf.id_to_token(id) ?? ''));
    if (kept.length === 0) return '';
    // The package's own skip_special_tokens filter only knows added tokens marked special;
    // we filtered above with the config's special tokens as well.
    return this.hf.decode(kept, { skip_special_tokens: false, clean_up_tokenization_spaces: options.cleanUpTokenizationSpaces ?? this.cleanUp });
  }

  /**
   * Renders a conversation with the folder's chat template (see chat_template.ts).
   *
   * @example
   * tok.applyChatTemplate([{ role: 'user', content: 'Hi' }], { addGenerationPrompt: true });
   */
  applyChatTemplate(messages: ChatMessage[], options: ChatTemplateOptions & { tokenize: true }): number[];
  applyChatTemplate(messages: ChatMessage[], options?: ChatTemplateOptions & { tokenize?: false }): string;
  applyChatTemplate(messages: ChatMessage[], options: ChatTemplateOptions & { tokenize?: boolean } = {}): string | number[] {
    if (this.chatTemplate === null && options.chatTemplate === undefined) {
      throw new TunekitError('ERR_CONFIG', `${this.source}: the tokenizer has no chat_template (tokenizer_config.json or chat_template.jinja); pass options.chatTemplate`);
    }
    const text = applyChatTemplate(options.chatTemplate ?? this.chatTemplate!, messages, {
      ...options,
      specialTokens: { bos_token: this.bosToken, eos_token: this.eosToken, pad_token: this.padToken, unk_token: this.unkToken, ...(options.specialTokens ?? {}) },
    });
    // transformers tokenizes the rendered text without adding special tokens (the template has them).
    return options.tokenize ? this.encode(text, { addSpecialTokens: false }).ids : text;
  }
}
