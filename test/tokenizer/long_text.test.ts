/**
 * Long texts are tokenized in pieces (lib/tokenizer/long_text.ts): the ids, tokens and offsets
 * must equal those of tokenizing the whole text at once, for each tokenizer family (byte-level
 * BPE, WordPiece, SentencePiece-style BPE with a Prepend normalizer), for prefixes (maxLength),
 * suffixes (truncationSide 'left') and whole texts cut into chunks.
 */
import { describe, it, expect } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Tokenizer } from '../../lib/tokenizer/index.js';
import { CHUNK_UNITS, MAX_UNCUT_UNITS, isCut, keptTokens, planCuts, tokenizeHead, tokenizeTail, type CutPlan } from '../../lib/tokenizer/long_text.js';

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'tokenizers');
const MODELS = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'models');
const corpus = fs.readFileSync(path.join(FIXTURES, 'corpus.txt'), 'utf8');

/** Deterministic xorshift for reproducible texts. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    return x / 2 ** 32;
  };
}

/** A long text from corpus slices, with odd spacing, newlines, accents, emoji and CJK mixed in. */
function hostileText(seed: number, units: number): string {
  const r = rng(seed);
  const extras = ['  ', '\n\n', ' \t ', 'é', 'e\u0301', '🎉', '漢字', ' ', '—', '\r\n', '.', '   x', '<|endoftext|>', '[SEP]', '</s>'];
  let s = '';
  while (s.length < units) {
    const at = Math.floor(r() * (corpus.length - 400));
    s += corpus.slice(at, at + Math.floor(r() * 300));
    if (r() < 0.5) s += extras[Math.floor(r() * extras.length)];
  }
  return s.slice(0, units);
}

/** the wrapped @huggingface/tokenizers object (a private field of Tokenizer) */
type Tk = { hf: { tokenize(s: string, o: { add_special_tokens: boolean }): string[] } };
interface Internals {
  cutPlan: CutPlan | null;
  postProcess(tokens: string[], add: boolean): string[];
  computeOffsets(text: string, tokens: string[]): Array<[number, number]> | undefined;
}

/** Reference: the package run on the whole text at once. */
function reference(tok: Tokenizer, text: string): string[] {
  return (tok as unknown as Tk).hf.tokenize(text, { add_special_tokens: false });
}

const FAMILIES: Array<[string, string]> = [
  ['byte-level BPE (gpt2-bpe)', path.join(FIXTURES, 'gpt2-bpe')],
  ['byte-level BPE (tunekit-gpt2-small)', path.join(MODELS, 'tunekit-gpt2-small')],
  ['WordPiece (bert-wordpiece)', path.join(FIXTURES, 'bert-wordpiece')],
  ['SentencePiece-style BPE (llama-bpe)', path.join(FIXTURES, 'llama-bpe')],
];

for (const [name, dir] of FAMILIES) {
  describe(`long texts: ${name}`, () => {
    const tok = Tokenizer.fromFolderSync(dir);
    const json = JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer.json'), 'utf8'));

    it('has a cut plan', () => {
      expect(planCuts(json, {})).not.toBeNull();
    });

    it("a prefix with maxLength gives the whole text's first tokens and offsets; a suffix its last", () => {
      for (let seed = 1; seed <= 3; seed++) {
        const text = hostileText(seed, 20_000);
        const content = (tok as unknown as Tk).hf.tokenize(text, { add_special_tokens: false });
        const offsets = (tok as unknown as Internals).computeOffsets(text, content);
        for (const n of [1, 7, 64, 300]) {
          const head = tok.encode(text, { maxLength: n, addSpecialTokens: false });
          expect(head.tokens, `seed ${seed} n ${n}`).toEqual(content.slice(0, n));
          expect(head.ids).toEqual(content.slice(0, n).map((t) => tok.tokenToId(t)));
          expect(head.offsets).toEqual(offsets?.slice(0, n));
          const tail = tok.encode(text, { maxLength: n, addSpecialTokens: false, truncationSide: 'left' });
          expect(tail.tokens, `seed ${seed} n ${n} (left)`).toEqual(content.slice(content.length - n));
          expect(tail.offsets).toEqual(offsets?.slice(offsets.length - n));
        }
        // with special tokens, the content is cut to leave room for them
        const n = 16, special = tok.numSpecialTokensToAdd;
        const internals = tok as unknown as Internals;
        expect(tok.encode(text, { maxLength: n }).tokens).toEqual(internals.postProcess(content.slice(0, n - special), true));
        expect(tok.encode(text, { maxLength: n, truncationSide: 'left' }).tokens).toEqual(internals.postProcess(content.slice(content.length - (n - special)), true));
      }
    });

    it('every cut is clean: all tokens of a cut prefix / suffix (not only those kept) are the whole text\'s', () => {
      const plan = (tok as unknown as Internals).cutPlan;
      const tokenize = (t: string) => reference(tok, t);
      for (let seed = 7; seed <= 9; seed++) {
        const text = hostileText(seed, 20_000);
        const content = reference(tok, text);
        for (const n of [3, 50, 200]) {
          for (const piece of tokenizeHead(text, n, plan, tokenize)) {
            expect(piece.start).toBe(0);
            expect(piece.tokens, `seed ${seed} n ${n}`).toEqual(content.slice(0, piece.tokens.length));
          }
          const [tail] = tokenizeTail(text, n, plan, tokenize);
          expect(tail!.tokens, `seed ${seed} n ${n} (left)`).toEqual(content.slice(content.length - tail!.tokens.length));
        }
      }
    });

    it('an e-mail-sized text (1-12k units) with maxLength: only a prefix near the need is tokenized, same tokens and offsets', () => {
      // the main job keeps 128 tokens of e-mails of a few thousand characters: the first window
      // is n x 4 units (doubled while short), not n x the tokenizer's bound on units a token
      // (128 for byte-level BPE: every such e-mail was tokenized whole)
      const plan = (tok as unknown as Internals).cutPlan;
      for (const [seed, units] of [[21, 1_500], [22, 4_000], [23, 7_000], [24, 12_000]] as const) {
        const text = hostileText(seed, units);
        const content = reference(tok, text);
        const offsets = (tok as unknown as Internals).computeOffsets(text, content);
        for (const n of [16, 128]) {
          const head = tok.encode(text, { maxLength: n, addSpecialTokens: false });
          expect(head.tokens, `seed ${seed} n ${n}`).toEqual(content.slice(0, n));
          expect(head.offsets).toEqual(offsets?.slice(0, n));
          const tail = tok.encode(text, { maxLength: n, addSpecialTokens: false, truncationSide: 'left' });
          expect(tail.tokens, `seed ${seed} n ${n} (left)`).toEqual(content.slice(content.length - n));
          let seen = 0;
          const counted = (t: string) => { seen += t.length; return reference(tok, t); };
          expect(keptTokens(tokenizeHead(text, n, plan, counted))).toEqual(content.slice(0, n));
          // hostile text runs 2-4 units a token: 16 tokens need a window of 128-256 units
          if (n === 16) expect(seen, `seed ${seed}: units tokenized for 16 tokens of ${units}`).toBeLessThan(1_200);
        }
      }
    });

    it('a whole text over CHUNK_UNITS, tokenized cut by cut, equals the whole at once (offsets too)', () => {
      const text = hostileText(42, CHUNK_UNITS * 3 + 123);
      const enc = tok.encode(text, { addSpecialTokens: false });
      expect(enc.tokens).toEqual(reference(tok, text));
      // offsets of the pieces equal those computed on the whole text in one section
      expect(enc.offsets).toEqual((tok as unknown as Internals).computeOffsets(text, enc.tokens));
    });
  });
}

describe('long texts: where no clean cut exists', () => {
  const gpt2Dir = path.join(FIXTURES, 'gpt2-bpe');
  const json = JSON.parse(fs.readFileSync(path.join(gpt2Dir, 'tokenizer.json'), 'utf8'));

  it('pipelines not known to cut cleanly have no plan (an unknown Split regex, a Strip normalizer, an added token with a space)', () => {
    const withSplit = { ...json, pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'Split', pattern: { Regex: '\\w+ \\w+' }, behavior: 'Isolated', invert: false }, { type: 'ByteLevel', add_prefix_space: false, use_regex: false }] } };
    expect(planCuts(withSplit, {})).toBeNull();
    expect(planCuts({ ...json, normalizer: { type: 'Strip', strip_left: true, strip_right: true } }, {})).toBeNull();
    expect(planCuts({ ...json, added_tokens: [...json.added_tokens, { id: 599, content: '<a b>', special: true }] }, {})).toBeNull();
    expect(planCuts(json, { remove_space: true })).toBeNull();
    // a byte-level BPE without regex splitting whose vocab merges across a space cannot be cut either
    const noRegex = { ...json, pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, use_regex: false }, model: { ...json.model, vocab: { ...json.model.vocab, 'eĠt': 9999 } } };
    expect(planCuts(noRegex, {})).toBeNull();
    expect(planCuts({ ...noRegex, model: json.model }, {})).not.toBeNull();
  });

  it('an added token with rstrip is never followed by a cut (it eats the space after it)', () => {
    const plan = { startAfterSpace: false, unitsPerToken: 4, rstripTokens: ['<mask>'] };
    expect(isCut('a <mask> b', 8, plan)).toBe(false);
    expect(isCut('a <mask> b', 1, plan)).toBe(true);
    expect(isCut('a  b', 2, plan)).toBe(false); // a space after a space
    expect(isCut('🎉 b', 2, plan)).toBe(true); // after a surrogate pair
  });

  it('without a plan, a prefix is cut inside the text and checked against more context: the same first tokens', () => {
    const tok = Tokenizer.fromFolderSync(gpt2Dir);
    const text = hostileText(11, 60_000);
    const content = reference(tok, text);
    const tokenize = (t: string) => reference(tok, t);
    for (const n of [5, 100]) {
      expect(keptTokens(tokenizeHead(text, n, null, tokenize))).toEqual(content.slice(0, n));
      expect(keptTokens(tokenizeTail(text, n, null, tokenize))).toEqual(content.slice(content.length - n));
    }
  });

  it('a single word of 200,000 letters: the first and last tokens, checked against more context', () => {
    const tok = Tokenizer.fromFolderSync(gpt2Dir);
    const word = 'Call me Ishmael ' + 'abcdefghijklmnopqrstuvwxyz'.repeat(8_000);
    const content = reference(tok, word);
    expect(tok.encode(word, { maxLength: 12, addSpecialTokens: false }).tokens).toEqual(content.slice(0, 12));
    expect(tok.encode(word, { maxLength: 12, addSpecialTokens: false, truncationSide: 'left' }).tokens).toEqual(content.slice(content.length - 12));
  });

  it('a whole text that cannot be cut and is over MAX_UNCUT_UNITS is ERR_LIMIT, in bounded time', () => {
    const tok = Tokenizer.fromFolderSync(gpt2Dir);
    const t0 = performance.now();
    expect(() => tok.encode('x'.repeat(MAX_UNCUT_UNITS + 1))).toThrowError(expect.objectContaining({ code: 'ERR_LIMIT' }));
    expect(performance.now() - t0).toBeLessThan(2_000);
  });

  it('offsets of a 600,000-character text (push(...spans) overflowed the stack past ~800 KB)', () => {
    const tok = Tokenizer.fromFolderSync(gpt2Dir);
    const text = 'ab'.repeat(300_000);
    // one section of 300,000 tokens, aligned by byte counts: the alignment itself, without the package's tokenization
    const offsets = (tok as unknown as Internals).computeOffsets(text, new Array(300_000).fill('ab'));
    expect(offsets).toHaveLength(300_000);
    expect(offsets![299_999]).toEqual([599_998, 600_000]);
  });
});
