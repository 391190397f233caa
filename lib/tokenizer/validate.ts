/**
 * Checks a parsed tokenizer.json before @huggingface/tokenizers builds from it. The package
 * trusts the file: a string id or an id of 2^40 in the vocab comes back from `encode` as is (and
 * an Int32Array turns it into garbage), an empty vocab encodes every text to [], a merge whose
 * parts are not in the vocab is silently never applied. Python `tokenizers` refuses most of these
 * on load; here every one is ERR_FORMAT naming the entry, in one pass over the vocab and merges.
 */
import { TunekitError, describe } from '../errors.js';

type Json = Record<string, unknown>;

/** Token ids are int32 everywhere downstream (batches are Int32Arrays): ids must be below 2^31. */
export const MAX_TOKEN_ID = 2 ** 31 - 1;

/** What the checks learnt, for the caller: the largest id (vocab and added tokens). */
export interface TokenizerJsonFacts {
  maxId: number;
}

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const validId = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= MAX_TOKEN_ID;

function bad(source: string, what: string): TunekitError {
  return new TunekitError('ERR_FORMAT', `${source}: ${what}`);
}

/** The 256 characters byte-level BPE writes bytes as (GPT-2's bytes_to_unicode). */
function byteLevelAlphabet(): string[] {
  const printable: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b);
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b);
  for (let b = 0xae; b <= 0xff; b++) printable.push(b);
  const chars = new Array<string>(256);
  const isPrintable = new Set(printable);
  let next = 256;
  for (let b = 0; b < 256; b++) chars[b] = String.fromCharCode(isPrintable.has(b) ? b : next++);
  return chars;
}

function usesByteLevel(json: Json): boolean {
  const pre = json.pre_tokenizer;
  const list = isObject(pre) ? (pre.type === 'Sequence' && Array.isArray(pre.pretokenizers) ? pre.pretokenizers : [pre]) : [];
  return list.some((p) => isObject(p) && p.type === 'ByteLevel');
}

/**
 * Validates tokenizer.json: vocab ids are integers in [0, 2^31), unique, and the vocab is not
 * empty; BPE merges are pairs of vocab tokens whose concatenation is in the vocab (as Python
 * `tokenizers` requires); a byte-level BPE without an unk token has all 256 byte characters (a
 * missing one would be silently dropped from every text); the unk token exists; added tokens
 * have valid ids and agree with the vocab; post-processor special tokens have valid ids.
 * Throws ERR_FORMAT naming the entry; returns the largest id.
 *
 * @example
 * validateTokenizerJson(JSON.parse(fs.readFileSync('tokenizer.json', 'utf8')), 'tokenizer.json'); // { maxId: 50256 }
 */
export function validateTokenizerJson(json: Json, source: string): TokenizerJsonFacts {
  const model = json.model;
  if (!isObject(model)) throw bad(source, `expected "model" to be an object but received ${describe(model)}`);
  const type = model.type;
  // Python `tokenizers` knows these four; the package would guess a model from an unknown name
  if (type !== undefined && type !== 'BPE' && type !== 'WordPiece' && type !== 'Unigram' && type !== 'WordLevel') {
    throw bad(source, `model.type: expected "BPE", "WordPiece", "Unigram" or "WordLevel" but received ${describe(type)}`);
  }
  // added tokens first: their ids are looked up in the vocab loop (a few, against 50K+ vocab entries)
  const added = json.added_tokens;
  if (added !== undefined && added !== null && !Array.isArray(added)) throw bad(source, `expected added_tokens to be an array but received ${describe(added)}`);
  const addedList = (added ?? []) as unknown[];
  const addedOfId = new Map<number, string>();
  addedList.forEach((t, i) => {
    if (!isObject(t)) throw bad(source, `added_tokens[${i}]: expected an object {id, content} but received ${describe(t)}`);
    if (!validId(t.id)) throw bad(source, `added_tokens[${i}].id: expected an integer id in [0, 2^31) but received ${typeof t.id === 'string' ? `the string ${JSON.stringify(t.id)}` : describe(t.id)}`);
    if (typeof t.content !== 'string' || t.content.length === 0) throw bad(source, `added_tokens[${i}].content: expected a non-empty string but received ${describe(t.content)}`);
    const same = addedOfId.get(t.id);
    if (same !== undefined && same !== t.content) throw bad(source, `added_tokens: ${JSON.stringify(same)} and ${JSON.stringify(t.content)} both have id ${t.id}`);
    addedOfId.set(t.id, t.content);
  });
  /** The vocab token holding each added token's id, where one does. */
  const vocabAtAddedId = new Map<number, string>();
  let hasToken: (t: string) => boolean;
  let maxId = -1;
  if (type === 'Unigram') {
    const vocab = model.vocab;
    if (!Array.isArray(vocab) || vocab.length === 0) throw bad(source, `expected model.vocab to be a non-empty array of [piece, score] but received ${describe(vocab)}`);
    if (vocab.length > MAX_TOKEN_ID) throw bad(source, `model.vocab has ${vocab.length} pieces, more than int32 ids can number`);
    const pieces = new Set<string>();
    vocab.forEach((entry, i) => {
      if (!Array.isArray(entry) || entry.length !== 2 || typeof entry[0] !== 'string' || typeof entry[1] !== 'number' || !Number.isFinite(entry[1])) {
        throw bad(source, `model.vocab[${i}]: expected [piece (string), score (finite number)] but received ${describe(entry)}`);
      }
      pieces.add(entry[0]);
      if (addedOfId.has(i)) vocabAtAddedId.set(i, entry[0]);
    });
    hasToken = (t) => pieces.has(t);
    maxId = vocab.length - 1;
    const unk = model.unk_id;
    if (unk !== undefined && unk !== null && !(validId(unk) && unk < vocab.length)) {
      throw bad(source, `model.unk_id: expected an index into the ${vocab.length} pieces of model.vocab but received ${describe(unk)}`);
    }
  } else {
    const vocab = model.vocab;
    if (!isObject(vocab)) throw bad(source, `expected model.vocab to be an object {token: id} but received ${describe(vocab)}`);
    const ids = new Set<number>();
    for (const token in vocab) {
      const id = vocab[token];
      if (!validId(id)) throw bad(source, `model.vocab[${JSON.stringify(token)}]: expected an integer id in [0, 2^31) but received ${typeof id === 'string' ? `the string ${JSON.stringify(id)}` : describe(id)}`);
      if (ids.has(id)) {
        const other = Object.keys(vocab).find((t) => vocab[t] === id && t !== token);
        throw bad(source, `model.vocab: tokens ${JSON.stringify(other)} and ${JSON.stringify(token)} both have id ${id}`);
      }
      ids.add(id);
      if (id > maxId) maxId = id;
      if (addedOfId.has(id)) vocabAtAddedId.set(id, token);
    }
    if (ids.size === 0) throw bad(source, 'model.vocab is empty: every text would encode to no tokens');
    hasToken = (t) => Object.hasOwn(vocab, t);
  }
  if (type === 'BPE') checkMerges(model, hasToken, source);
  const addedContents = new Set<string>();
  addedList.forEach((entry, i) => {
    const t = entry as { id: number; content: string };
    const inVocab = type === 'Unigram' || !Object.hasOwn(model.vocab as Json, t.content) ? undefined : (model.vocab as Json)[t.content];
    if (inVocab !== undefined && inVocab !== t.id) throw bad(source, `added_tokens[${i}]: ${JSON.stringify(t.content)} has id ${t.id} but model.vocab gives it id ${describe(inVocab)}`);
    const vocabToken = vocabAtAddedId.get(t.id);
    if (vocabToken !== undefined && vocabToken !== t.content) throw bad(source, `added_tokens[${i}]: id ${t.id} is ${JSON.stringify(t.content)} but model.vocab gives that id to ${JSON.stringify(vocabToken)}`);
    addedContents.add(t.content);
    if (t.id > maxId) maxId = t.id;
  });
  const unk = model.unk_token;
  if (typeof unk === 'string' && (type === 'BPE' || type === 'WordPiece') && !hasToken(unk) && !addedContents.has(unk)) {
    throw bad(source, `model.unk_token ${JSON.stringify(unk)} is not in the vocab`);
  }
  if (type === 'BPE' && usesByteLevel(json) && (unk === null || unk === undefined) && model.byte_fallback !== true) {
    const alphabet = byteLevelAlphabet();
    for (let b = 0; b < 256; b++) {
      if (!hasToken(alphabet[b]!)) throw bad(source, `byte-level BPE vocab lacks byte 0x${b.toString(16).padStart(2, '0')} (token ${JSON.stringify(alphabet[b])}) and has no unk_token: texts containing it would silently lose it`);
    }
  }
  checkPostProcessor(json.post_processor, source);
  return { maxId };
}

function checkMerges(model: Json, hasToken: (t: string) => boolean, source: string): void {
  const merges = model.merges;
  if (merges === undefined) return;
  if (!Array.isArray(merges)) throw bad(source, `expected model.merges to be an array but received ${describe(merges)}`);
  const prefix = typeof model.continuing_subword_prefix === 'string' ? model.continuing_subword_prefix : '';
  for (let i = 0; i < merges.length; i++) {
    const m = merges[i];
    let left: string, right: string;
    if (typeof m === 'string') {
      const space = m.indexOf(' ');
      left = m.slice(0, space);
      right = m.slice(space + 1);
      if (space <= 0 || right === '' || right.includes(' ')) throw bad(source, `model.merges[${i}]: expected "left right" (two tokens and one space) but received ${describe(m)}`);
    } else if (Array.isArray(m) && m.length === 2 && typeof m[0] === 'string' && typeof m[1] === 'string' && m[0] !== '' && m[1] !== '') {
      [left, right] = m as [string, string];
    } else {
      throw bad(source, `model.merges[${i}]: expected "left right" or [left, right] but received ${describe(m)}`);
    }
    if (!hasToken(left)) throw bad(source, `model.merges[${i}] ${JSON.stringify([left, right])}: ${JSON.stringify(left)} is not in the vocab`);
    if (!hasToken(right)) throw bad(source, `model.merges[${i}] ${JSON.stringify([left, right])}: ${JSON.stringify(right)} is not in the vocab`);
    const merged = left + (prefix && right.startsWith(prefix) ? right.slice(prefix.length) : right);
    if (!hasToken(merged)) throw bad(source, `model.merges[${i}] ${JSON.stringify([left, right])}: the merged token ${JSON.stringify(merged)} is not in the vocab`);
  }
}

function checkPostProcessor(post: unknown, source: string): void {
  if (!isObject(post)) return;
  if (post.type === 'Sequence' && Array.isArray(post.processors)) {
    for (const p of post.processors) checkPostProcessor(p, source);
    return;
  }
  if (post.type !== 'TemplateProcessing' || !isObject(post.special_tokens)) return;
  for (const [name, spec] of Object.entries(post.special_tokens)) {
    const ids = isObject(spec) ? spec.ids : undefined;
    if (!Array.isArray(ids) || !ids.every(validId)) {
      throw bad(source, `post_processor.special_tokens[${JSON.stringify(name)}].ids: expected integer ids in [0, 2^31) but received ${describe(ids)}`);
    }
  }
}
