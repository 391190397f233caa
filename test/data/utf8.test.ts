/** The UTF-8 check behind dataset.invalid_utf8: the first invalid byte found is the one Node's decoder replaces first. */
import { describe, it, expect } from 'vitest';
import { isUtf8 } from 'node:buffer';
import { firstInvalidUtf8 } from '../../lib/data/load.js';
import { DatasetSchema } from '../../lib/train/config.js';

describe('firstInvalidUtf8', () => {
  it('agrees with Node on 5,000 random byte strings: -1 exactly when the bytes are UTF-8, else a valid prefix ends there', () => {
    let x = 99;
    const r = () => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x / 2 ** 32; };
    // mostly valid text with some lead and continuation bytes, so that every branch is met
    const alphabet = [0x41, 0x20, 0x0a, 0x7f, 0x80, 0xbf, 0xc0, 0xc2, 0xdf, 0xe0, 0xa0, 0xed, 0x9f, 0xa0, 0xef, 0xf0, 0x90, 0xf4, 0x8f, 0xf5, 0xff];
    for (let i = 0; i < 5000; i++) {
      const bytes = Buffer.from(r() < 0.5 ? Array.from({ length: 1 + Math.floor(r() * 12) }, () => alphabet[Math.floor(r() * alphabet.length)]!) : Array.from(Buffer.from(String.fromCodePoint(...Array.from({ length: 4 }, () => Math.floor(r() * 0x10ffff)).filter((c) => c < 0xd800 || c > 0xdfff)))));
      const at = firstInvalidUtf8(bytes);
      expect(at === -1, bytes.toString('hex')).toBe(isUtf8(bytes));
      if (at >= 0) expect(isUtf8(bytes.subarray(0, at))).toBe(true);
    }
  });

  it('names overlong forms, surrogates, code points past U+10FFFF and truncated sequences', () => {
    expect(firstInvalidUtf8(Buffer.from([0x61, 0xc0, 0x80]))).toBe(1); // overlong NUL
    expect(firstInvalidUtf8(Buffer.from([0xed, 0xa0, 0x80]))).toBe(0); // U+D800
    expect(firstInvalidUtf8(Buffer.from([0xf4, 0x90, 0x80, 0x80]))).toBe(0); // U+110000
    expect(firstInvalidUtf8(Buffer.from([0x61, 0x62, 0xe2, 0x82]))).toBe(2); // cut short
    expect(firstInvalidUtf8(Buffer.from('ok ✓ 🎉'))).toBe(-1);
  });

  it('dataset.invalid_utf8 is fail by default, replace on request, nothing else', () => {
    expect(DatasetSchema.parse({ path: 'a.jsonl' }).invalid_utf8).toBe('fail');
    expect(DatasetSchema.parse({ path: 'a.jsonl', invalid_utf8: 'replace' }).invalid_utf8).toBe('replace');
    expect(() => DatasetSchema.parse({ path: 'a.jsonl', invalid_utf8: 'ignore' })).toThrow();
  });
});
