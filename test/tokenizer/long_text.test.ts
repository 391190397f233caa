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
import { CHUNK_UNITS, planCuts, tokenizeHead, tokenizeTail, type CutPlan } from '../../lib/tokenizer/long_text.js';

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

type Tk = Tokenizer & { hf: { tokenize(s: string, o: { add_special_tokens: boolean }): string[] } };
interface Internals {
  cutPlan: CutPlan | null;
  postProcess(tokens: string[], add: boolean): string[];
  computeOffsets(text: string, tokens: string[]): Array<[number, number]> | undefined;
}

/** Reference: the package run on the whole text at once. */
function reference(tok: Tokenizer, text: string): string[] {
  return (tok as Tk).hf.tokenize(text, { add_special_tokens: false });
}

const FAMILIES: Array<[string, string]> = [
  ['byte-level BPE (gpt2-bpe)', path.join(FIXTURES, 'gpt2-bpe')],
  ['byte-level BPE (tunekit-gpt2-small)', path.join(MODELS, 'tunekit-gpt2-small')],
  ['WordPiece (bert-wordpiece)', path.join(FIXTURES, 'bert-wordpiece')],
  ['SentencePiece-style BPE (llama-bpe)', path.join(FIXTURES, 'llama-bpe')],
];

for (const [name, dir] of FAMILIES) {
  describe(`long texts: ${name}`, () => {
    const tok = Tokenizer.fromFolder(dir);
    const json = JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer.json'), 'utf8'));

    it('has a cut plan', () => {
      expect(planCuts(json, {})).not.toBeNull();
    });

    it("a prefix with maxLength gives the whole text's first tokens and offsets; a suffix its last", () => {
      for (let seed = 1; seed <= 3; seed++) {
        const text = hostileText(seed, 20_000);
        const content = (tok as Tk).hf.tokenize(text, { add_special_tokens: false });
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

    it('a whole text over CHUNK_UNITS, tokenized cut by cut, equals the whole at once (offsets too)', () => {
      const text = hostileText(42, CHUNK_UNITS * 3 + 123);
      const enc = tok.encode(text, { addSpecialTokens: false });
      expect(enc.tokens).toEqual(reference(tok, text));
      // offsets of the pieces equal those computed on the whole text in one section
      expect(enc.offsets).toEqual((tok as unknown as Internals).computeOffsets(text, enc.tokens));
    });
  });
}
