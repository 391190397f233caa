import { fileURLToPath } from 'node:url';
import { join, dirname } from 'node:path';
import type { TokenizerLike } from '../../lib/data/types.js';

export const FIX = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'data');
export const fx = (name: string): string => join(FIX, name);

/** Character-level fake tokenizer: id = char code + 10; specials BOS=1, EOS=2, PAD=0. */
export function charTokenizer(kind: 'bert' | 'llama' | 'gpt2' = 'gpt2'): TokenizerLike {
  return {
    encode(text: string, opts?: { addSpecialTokens?: boolean }) {
      const ids = [...text].map((c) => c.codePointAt(0)! + 10);
      if (opts?.addSpecialTokens === false) return { ids };
      if (kind === 'bert') return { ids: [1, ...ids, 2] };
      if (kind === 'llama') return { ids: [1, ...ids] };
      return { ids };
    },
    decode: (ids) => dec([...ids]),
    eosTokenId: 2,
    bosTokenId: 1,
    padTokenId: kind === 'gpt2' ? undefined : 0,
  };
}

export const dec = (ids: number[]): string => ids.map((i) => (i >= 10 ? String.fromCodePoint(i - 10) : `<${i}>`)).join('');
