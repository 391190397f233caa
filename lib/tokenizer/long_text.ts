/**
 * Long texts, tokenized in pieces. @huggingface/tokenizers holds a whole text (and, for a
 * SentencePiece-style BPE without pre-tokenizer, one node per character of it) in memory: one
 * 50 MB record aborted the V8 heap after 141 s even when only its first 32 tokens were kept.
 *
 * A *cut* is a position where the text can be split and each side tokenized alone with the same
 * tokens as the whole: a space (U+0020) right after a non-whitespace character, for pipelines
 * where that provably holds (see {@link planCuts}). With cuts:
 * - the first n tokens come from a prefix ending at a cut that holds at least n tokens, found
 *   from a window of n x (most input units a token can stand for) and doubled while short;
 * - the last n tokens, likewise, from a suffix starting at a cut;
 * - a whole text is tokenized cut by cut, CHUNK_UNITS at a time (memory stays bounded).
 * Where no cut is near (one word of thousands of characters, or a pipeline not known to cut
 * cleanly), the prefix is cut inside the text and checked: its first n tokens must equal those
 * of a longer prefix (VERIFY_UNITS more), else the window grows. Only whole texts or words over
 * MAX_UNCUT_UNITS that cannot be cut are refused (ERR_LIMIT).
 *
 * Units are UTF-16 code units (JS string indices); cuts never split a surrogate pair.
 */
import { TunekitError } from '../errors.js';

type Json = Record<string, unknown>;

/** Whole texts are tokenized in pieces of about this many UTF-16 units. */
export const CHUNK_UNITS = 16_384;
/** Longest stretch tokenized in one call when no cut exists in it (about 5 s and 400 MB for one BPE word). */
export const MAX_UNCUT_UNITS = 1 << 20;
/** How far past a window a cut is looked for before the text is cut inside a word. */
const SCAN_UNITS = 4_096;
/** Extra context a cut inside a word is checked against. */
const VERIFY_UNITS = 1_024;
/** Input units per token assumed for the first window when a tokenizer has no bound. */
const GUESS_UNITS_PER_TOKEN = 8;
/**
 * Input units per token of the first window for a prefix or suffix: about English text's (4.3
 * for GPT-2 BPE); the main job's 6,046 e-mails (1,947 units on average, 127 tokens kept) encode in
 * 3.9 s with 4, 4.4 s with 5, 5.8 s with 8, 11.7 s with byte-level BPE's bound of 128 units.
 */
const FIRST_WINDOW_UNITS_PER_TOKEN = 4;

/** How a tokenizer's texts may be cut (see the file comment). */
export interface CutPlan {
  /**
   * The piece after a cut starts after the space instead of at it: a Prepend normalizer puts
   * the space marker ('▁') back at the start of every piece, as the space would have been.
   */
  startAfterSpace: boolean;
  /** Most input units one content token can stand for, or null when unbounded (WordPiece's [UNK] words, normalizers that delete characters). */
  unitsPerToken: number | null;
  /** Added tokens with rstrip (they eat the whitespace after them): no cut right after one. */
  rstripTokens: string[];
}

/**
 * One piece of a text: `text` starts at `start` of the whole, `tokens` are all of its tokens and
 * tokens[from, to) are the ones kept; `afterSpace`: its Prepend marker stands for the space at
 * `start - 1` (offsets map it there).
 */
export interface Piece {
  start: number;
  text: string;
  tokens: string[];
  from: number;
  to: number;
  afterSpace: boolean;
}

/** The kept tokens of pieces, in order. */
export function keptTokens(pieces: readonly Piece[]): string[] {
  const out: string[] = [];
  for (const p of pieces) for (let i = p.from; i < p.to; i++) out.push(p.tokens[i]!);
  return out;
}

function whole(start: number, text: string, tokens: string[], afterSpace: boolean): Piece {
  return { start, text, tokens, from: 0, to: tokens.length, afterSpace };
}

/** Split regexes known to never match across a (non-whitespace, space) pair: GPT-2's, Llama 3's, Qwen 2's. */
const KNOWN_SPLIT_PATTERNS = new Set([
  "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
]);

const BYTE_LEVEL_SPACE = '\u0120'; // 'Ġ', byte 0x20 in GPT-2's bytes_to_unicode

function flatten(node: unknown, key: string): Json[] | null {
  if (node === null || node === undefined) return [];
  if (typeof node !== 'object') return null;
  const n = node as Json;
  if (n.type === 'Sequence') return Array.isArray(n[key]) ? (n[key] as Json[]) : null;
  return [n];
}

/**
 * Decides whether (and how) a tokenizer's texts can be cut, from its tokenizer.json and config.
 * Returns null for pipelines not known to cut cleanly (Unigram, Precompiled or Strip
 * normalizers, unknown Split regexes, added tokens containing spaces, ...): those are cut
 * inside the text and checked instead.
 *
 * Why a cut is clean: normalizers here act per character (or per combining sequence, which a
 * space ends); the pre-tokenizer either splits at every (non-space, space) pair (ByteLevel's and
 * the known regexes, Whitespace, BertPreTokenizer), or the vocab has no token with a
 * non-space-marker followed by a space marker, so no BPE merge joins the two sides and each
 * side's merges happen as they would in the whole text.
 *
 * @example
 * planCuts(JSON.parse(fs.readFileSync('gpt2/tokenizer.json', 'utf8')), {}); // { startAfterSpace: false, unitsPerToken: 128, rstripTokens: [] }
 */
export function planCuts(json: Json, config: Json): CutPlan | null {
  if (config.remove_space === true || config.do_lowercase_and_remove_accent === true) return null; // the package trims each section
  const norms = flatten(json.normalizer, 'normalizers');
  const pres = flatten(json.pre_tokenizer, 'pretokenizers');
  const model = json.model as Json | undefined;
  if (!norms || !pres || !model) return null;
  let prepend: string | null = null;
  let spaceMarker = ' ';
  let lengthPreserving = true;
  for (const n of norms) {
    switch (n.type) {
      case 'NFC': case 'NFD': case 'NFKC': case 'NFKD': case 'Lowercase': case 'StripAccents': case 'BertNormalizer':
        lengthPreserving = false;
        break;
      case 'Prepend':
        if (typeof n.prepend !== 'string' || n.prepend.length === 0 || prepend !== null) return null;
        prepend = n.prepend;
        break;
      case 'Replace': {
        const pattern = (n.pattern as Json | undefined)?.String;
        if (pattern !== ' ' || typeof n.content !== 'string' || n.content.length === 0 || /\s/.test(n.content)) return null;
        spaceMarker = n.content;
        break;
      }
      default:
        return null;
    }
  }
  let splitsAtSpaces = false;
  let byteLevel = false;
  for (const p of pres) {
    switch (p.type) {
      case 'ByteLevel':
        byteLevel = true;
        if (p.use_regex !== false && spaceMarker === ' ') splitsAtSpaces = true;
        break;
      case 'Whitespace': case 'WhitespaceSplit': case 'BertPreTokenizer':
        if (spaceMarker === ' ') splitsAtSpaces = true;
        break;
      case 'Split': {
        const regex = (p.pattern as Json | undefined)?.Regex;
        if (typeof regex !== 'string' || !KNOWN_SPLIT_PATTERNS.has(regex) || spaceMarker !== ' ') return null;
        splitsAtSpaces = true;
        break;
      }
      case 'Metaspace':
        spaceMarker = typeof p.replacement === 'string' && p.replacement.length > 0 ? p.replacement : '\u2581';
        break;
      case 'Punctuation': case 'Digits':
        break;
      default:
        return null;
    }
  }
  if (byteLevel && (prepend !== null || spaceMarker !== ' ')) return null;
  if (prepend !== null && prepend !== spaceMarker) return null;
  const type = model.type;
  if (type === 'WordPiece' || (type === 'BPE' && (model.continuing_subword_prefix || model.end_of_word_suffix))) {
    // word-level models: a word cut in two is two words (WordPiece would write '##' on the second)
    if (!splitsAtSpaces) return null;
  } else if (type !== 'BPE') {
    return null;
  }
  const vocab = model.vocab as Json;
  let longest = 2; // an unknown character (a surrogate pair at most) becomes one unk token
  const marker = byteLevel ? BYTE_LEVEL_SPACE : spaceMarker;
  for (const token in vocab) {
    if (token.length > longest) longest = token.length;
    if (!splitsAtSpaces) {
      // a token with a non-marker character followed by the marker would merge across a cut
      for (let at = token.indexOf(marker, 1); at > 0; at = token.indexOf(marker, at + 1)) {
        if (!token.startsWith(marker, at - marker.length)) return null;
      }
    }
  }
  const added = Array.isArray(json.added_tokens) ? (json.added_tokens as Json[]) : [];
  for (const t of added) {
    if (typeof t.content !== 'string' || /\s/.test(t.content)) return null; // an added token with a space could span a cut
    longest = Math.max(longest, t.content.length);
  }
  const rstripTokens = added.filter((t) => t.rstrip === true).map((t) => t.content as string);
  return { startAfterSpace: prepend !== null, unitsPerToken: lengthPreserving ? longest : null, rstripTokens };
}

function isWhitespaceCode(c: number): boolean {
  // JS \s: the pre-tokenizers' regexes and trims use it
  return c === 32 || (c >= 9 && c <= 13) || c === 0xa0 || c === 0x1680 || (c >= 0x2000 && c <= 0x200a) || c === 0x2028 || c === 0x2029 || c === 0x202f || c === 0x205f || c === 0x3000 || c === 0xfeff;
}

/** Whether position `c` of `text` is a cut (see the file comment). */
export function isCut(text: string, c: number, plan: CutPlan): boolean {
  if (c < 1 || c >= text.length - (plan.startAfterSpace ? 1 : 0) || text.charCodeAt(c) !== 32 || isWhitespaceCode(text.charCodeAt(c - 1))) return false;
  for (const t of plan.rstripTokens) if (text.startsWith(t, c - t.length)) return false;
  return true;
}

/** The first cut in [from, to), or -1. */
function cutForward(text: string, from: number, to: number, plan: CutPlan): number {
  const end = Math.min(to, text.length);
  for (let c = Math.max(from, 1); c < end; c++) if (isCut(text, c, plan)) return c;
  return -1;
}

/** The last cut in (to, from], or -1. */
function cutBackward(text: string, from: number, to: number, plan: CutPlan): number {
  for (let c = Math.min(from, text.length - 1); c > Math.max(to, 0); c--) if (isCut(text, c, plan)) return c;
  return -1;
}

/** Moves an index off the middle of a surrogate pair (to its start). */
function charBoundary(text: string, i: number): number {
  if (i <= 0 || i >= text.length) return Math.max(0, Math.min(i, text.length));
  const c = text.charCodeAt(i);
  return c >= 0xdc00 && c <= 0xdfff && (text.charCodeAt(i - 1) & 0xfc00) === 0xd800 ? i - 1 : i;
}

const sameTokens = (a: string[], b: string[], n: number, fromEnd: boolean): boolean => {
  for (let i = 1; i <= n; i++) {
    if ((fromEnd ? a[a.length - i] : a[i - 1]) !== (fromEnd ? b[b.length - i] : b[i - 1])) return false;
  }
  return true;
};

function tooLong(units: number, why: string): TunekitError {
  return new TunekitError('ERR_LIMIT', `cannot tokenize ${units} characters in one piece (${why}); the limit is ${MAX_UNCUT_UNITS} (MAX_UNCUT_UNITS)`);
}

/**
 * Every token of `text`, tokenized cut by cut in pieces of about CHUNK_UNITS (one piece when
 * the text is short). A stretch over MAX_UNCUT_UNITS without a cut is ERR_LIMIT.
 *
 * @example
 * keptTokens(tokenizeWhole(text, plan, (s) => hf.tokenize(s)));
 */
export function tokenizeWhole(text: string, plan: CutPlan | null, tokenize: (s: string) => string[]): Piece[] {
  if (text.length <= CHUNK_UNITS) return [whole(0, text, tokenize(text), false)];
  if (!plan) {
    if (text.length > MAX_UNCUT_UNITS) throw tooLong(text.length, "this tokenizer's pipeline is not one tunekit knows how to cut into pieces");
    return [whole(0, text, tokenize(text), false)];
  }
  const pieces: Piece[] = [];
  let start = 0;
  let afterSpace = false;
  while (start < text.length) {
    let end = text.length;
    if (text.length - start > CHUNK_UNITS) {
      const c = cutForward(text, start + CHUNK_UNITS, start + MAX_UNCUT_UNITS, plan);
      if (c < 0 && text.length - start > MAX_UNCUT_UNITS) throw tooLong(text.length - start, `no space after a non-space character from character ${start + CHUNK_UNITS} on`);
      if (c >= 0) end = c;
    }
    const piece = text.slice(start, end);
    pieces.push(whole(start, piece, tokenize(piece), afterSpace));
    start = end < text.length && plan.startAfterSpace ? end + 1 : end;
    afterSpace = plan.startAfterSpace;
  }
  return pieces;
}

/**
 * The first `n` tokens of `text` (all of them when it has fewer), tokenizing only a prefix: from
 * a first window of n x 4 units, doubled while short, so about twice what is needed at most.
 * Equal to `tokenize(text).slice(0, n)`.
 *
 * @example
 * keptTokens(tokenizeHead(fiftyMegabytes, 32, plan, (s) => hf.tokenize(s))).length; // 32
 */
export function tokenizeHead(text: string, n: number, plan: CutPlan | null, tokenize: (s: string) => string[]): Piece[] {
  return tokenizeEnd(text, n, plan, tokenize, false);
}

/**
 * The last `n` tokens of `text`, tokenizing only a suffix (as {@link tokenizeHead}, from the end).
 *
 * @example
 * tokenizeTail(longPrompt, 500, plan, (s) => hf.tokenize(s));
 */
export function tokenizeTail(text: string, n: number, plan: CutPlan | null, tokenize: (s: string) => string[]): Piece[] {
  return tokenizeEnd(text, n, plan, tokenize, true);
}

function tokenizeEnd(text: string, n: number, plan: CutPlan | null, tokenize: (s: string) => string[], fromEnd: boolean): Piece[] {
  if (n <= 0) return [];
  const keep = (start: number, piece: string, tokens: string[], afterSpace: boolean): Piece[] => [
    { start, text: piece, tokens, from: fromEnd ? Math.max(0, tokens.length - n) : 0, to: fromEnd ? tokens.length : Math.min(n, tokens.length), afterSpace },
  ];
  // The first window assumes FIRST_WINDOW_UNITS_PER_TOKEN units a token, not the tokenizer's
  // bound (byte-level BPE's 128 tokenized 16k units, so every e-mail whole, for 128 tokens); it
  // doubles while it holds fewer than n tokens, so the work stays under about twice what is
  // needed, and texts no longer than the window are tokenized whole.
  let window = n * Math.min(plan?.unitsPerToken ?? GUESS_UNITS_PER_TOKEN, FIRST_WINDOW_UNITS_PER_TOKEN) + 64;
  for (;;) {
    if (window >= text.length) {
      const pieces = tokenizeWhole(text, plan, tokenize);
      // the whole text's first (last) n tokens are in its first (last) pieces
      let have = 0;
      const out: Piece[] = [];
      for (let k = 0; k < pieces.length && have < n; k++) {
        const p = pieces[fromEnd ? pieces.length - 1 - k : k]!;
        const take = Math.min(n - have, p.tokens.length);
        out.push({ ...p, from: fromEnd ? p.tokens.length - take : 0, to: fromEnd ? p.tokens.length : take });
        have += take;
      }
      return fromEnd ? out.reverse() : out;
    }
    const c = !plan ? -1 : fromEnd ? cutBackward(text, text.length - window, text.length - window - SCAN_UNITS, plan) : cutForward(text, window, window + SCAN_UNITS, plan);
    if (c >= 0) {
      const start = fromEnd ? (plan!.startAfterSpace ? c + 1 : c) : 0;
      const piece = fromEnd ? text.slice(start) : text.slice(0, c);
      const tokens = tokenize(piece);
      if (tokens.length >= n) return keep(start, piece, tokens, fromEnd && plan!.startAfterSpace);
    } else {
      // no cut near: cut inside the text, and trust the tokens only if more context does not change them
      const c1 = charBoundary(text, fromEnd ? text.length - window : window);
      const c2 = charBoundary(text, fromEnd ? c1 - VERIFY_UNITS : c1 + VERIFY_UNITS);
      const piece = fromEnd ? text.slice(c1) : text.slice(0, c1);
      const tokens = tokenize(piece);
      if (tokens.length >= n) {
        const longer = tokenize(fromEnd ? text.slice(c2) : text.slice(0, c2));
        if (longer.length >= n && sameTokens(tokens, longer, n, fromEnd)) return keep(fromEnd ? c1 : 0, piece, tokens, false);
      }
    }
    window *= 2;
  }
}
