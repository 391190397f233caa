/**
 * One TokenizerLike for the data builders, generate() and tunekit serve: a real Tokenizer is
 * passed as it is (the README quick start has no adapter object), and a plain object works too.
 * The examples built from the Tokenizer equal the ids the Tokenizer itself gives for each text.
 */
import { describe, it, expect, expectTypeOf } from 'vitest';
import { join } from 'node:path';
import { Tokenizer, resolveModelPath, data, type TokenizerLike } from '../../lib/index.js';
import type { LabelledRecord } from '../../lib/data/types.js';

const SPAM: LabelledRecord[] = [
  { kind: 'labelled', text: 'Win money now!!! Click here', label: 'spam' },
  { kind: 'labelled', text: 'Lunch tomorrow at noon?', label: 'ham' },
  { kind: 'labelled', text: 'Your invoice for November is attached, thanks.', label: 'ham' },
];

describe('TokenizerLike', () => {
  it('a Tokenizer is a TokenizerLike as it is (types)', () => {
    expectTypeOf<Tokenizer>().toExtend<TokenizerLike>();
  });

  it('buildClassificationExamples takes the built-in base\'s Tokenizer directly', async () => {
    const tok = await Tokenizer.fromFolder(resolveModelPath('builtin:tunekit-gpt2-small'));
    const labels = data.buildLabelMap(SPAM);
    const examples = data.buildClassificationExamples(SPAM, tok, labels, { maxLength: 8 });
    // GPT-2 adds no special tokens: each example is the text's first 8 ids
    expect(examples.map((e) => e.inputIds)).toEqual(SPAM.map((r) => tok.encode(r.text).ids.slice(0, 8)));
    expect(examples.map((e) => e.label)).toEqual(SPAM.map((r) => labels.names.indexOf(r.label as string)));
    // what the quick start's `enc` adapter gave before
    const adapter: TokenizerLike = { encode: (t, o) => tok.encode(t, o), decode: (ids) => tok.decode(ids), eosTokenId: tok.eosTokenId ?? undefined };
    expect(data.buildClassificationExamples(SPAM, adapter, labels, { maxLength: 8 })).toEqual(examples);
  });

  it('a Tokenizer with special tokens (BERT: [CLS] text [SEP]) keeps its layout when passed directly', async () => {
    const bert = await Tokenizer.fromFolder(join(__dirname, '..', 'fixtures', 'tokenizers', 'bert-wordpiece'));
    const labels = data.buildLabelMap(SPAM);
    const [ex] = data.buildClassificationExamples(SPAM.slice(0, 1), bert, labels, { maxLength: 6 });
    const full = bert.encode(SPAM[0]!.text).ids; // [CLS] ... [SEP]
    expect(ex!.inputIds).toEqual([full[0], ...full.slice(1, 5), full.at(-1)]);
  });

  it('a plain object is a TokenizerLike too', () => {
    const chars: TokenizerLike = {
      encode: (s) => ({ ids: [...s].map((c) => c.charCodeAt(0)) }),
      decode: (ids) => String.fromCharCode(...ids),
      eosTokenId: 0,
    };
    const labels = data.buildLabelMap(SPAM);
    const examples = data.buildClassificationExamples(SPAM, chars, labels, { maxLength: 4 });
    expect(examples[1]).toEqual({ inputIds: [...'Lunc'].map((c) => c.charCodeAt(0)), label: labels.names.indexOf('ham') });
    // an eosTokenId of null (as Tokenizer has when it has none) means "no EOS": refused where one is needed
    const noEos: TokenizerLike = { ...chars, eosTokenId: null };
    const text: data.NormalizedRecord = { kind: 'text', text: 'abc' };
    expect(data.buildCausalLmExample(text, chars)?.inputIds).toEqual([97, 98, 99, 0]);
    expect(() => data.buildCausalLmExample(text, noEos)).toThrow(/eosTokenId \(addEos is on\) but received null/);
  });
});
