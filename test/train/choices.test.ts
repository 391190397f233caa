/**
 * Multiple-choice evaluation of causal LMs: answer-set detection, prompt truncation, and the
 * batched, padded scorer against a direct per-sequence log-likelihood on the tiny GPT-2 fixture.
 */
import { describe, it, expect } from 'vitest';
import '../../lib/index.js';
import { loadPretrainedSync } from '../../lib/models/index.js';
import { noGrad } from '../../lib/autograd/tape.js';
import { tidy } from '../../lib/tensor/scope.js';
import { tensor } from '../../lib/tensor/creation.js';
import type { Tensor } from '../../lib/tensor/tensor.js';
import { detectChoices, buildChoiceSet } from '../../lib/data/choices.js';
import { scoreChoices } from '../../lib/train/choice_eval.js';
import { Trainer } from '../../lib/train/trainer.js';
import { buildCausalLmExamples } from '../../lib/data/examples.js';
import type { NormalizedRecord } from '../../lib/data/types.js';
import { charTokenizer } from '../data/helpers.js';
import { dir } from '../models/helpers.js';

const pc = (prompt: string, completion: string): NormalizedRecord => ({ kind: 'prompt_completion', prompt, completion });
// charTokenizer: id = code point + 10; the fixture's vocabulary is 97, so prompts use '!'..'V'
const tok = charTokenizer('llama');

describe('detectChoices', () => {
  const train = [pc('AB', ' P'), pc('CD', ' N'), pc('EF', ' P')];
  it('auto: the sorted distinct completions when the eval split uses no others', () => {
    expect(detectChoices(train, [pc('GH', ' N')], 'auto')).toEqual([' N', ' P']);
    expect(detectChoices(train, [pc('GH', ' M')], 'auto')).toBeNull();
    expect(detectChoices([pc('A', ' P')], [pc('B', ' P')], 'auto')).toBeNull(); // one answer is no choice
    const many = Array.from({ length: 17 }, (_, i) => pc('A', String.fromCharCode(65 + i)));
    expect(detectChoices(many, [pc('A', 'A')], 'auto')).toBeNull();
    expect(detectChoices(train, [{ kind: 'text', text: 'x' }], 'auto')).toBeNull();
    expect(detectChoices(train, [pc('GH', ' N')], 'off')).toBeNull();
  });
  it('an explicit list must cover the eval completions and be distinct', () => {
    expect(detectChoices(train, [pc('GH', ' N')], [' P', ' N'])).toEqual([' P', ' N']);
    expect(() => detectChoices(train, [pc('GH', ' M')], [' P', ' N'])).toThrow(/does not contain the eval completion " M"/);
    expect(() => detectChoices(train, [pc('GH', ' N')], [' P', ' P'])).toThrow(/distinct/);
  });
});

describe('buildChoiceSet', () => {
  it('keeps the special prefix and the end of a long prompt', () => {
    const set = buildChoiceSet([pc('ABCDEFGH', ' NN'), pc('AB', ' P')], tok, [' P', ' NN'], { maxLength: 6 });
    // budget = 6 - 3 (longest answer) - 1 (BOS) = 2 prompt tokens
    expect(set.items[0]).toEqual({ promptIds: [1, 'G'.charCodeAt(0) + 10, 'H'.charCodeAt(0) + 10], gold: 1 });
    expect(set.items[1]!.gold).toBe(0);
    expect(set.answerIds).toEqual([[42, 'P'.charCodeAt(0) + 10], [42, 88, 88]]);
    expect(() => buildChoiceSet([pc('A', ' P')], tok, [' P', ' NN'], { maxLength: 4 })).toThrow(/no room for a prompt/);
    expect(() => buildChoiceSet([pc('A', ' Q')], tok, [' P', ' NN'])).toThrow(/not one of the answers/);
  });
});

/** log p(answer | prompt) from one unpadded forward of prompt + answer. */
function directLogLikelihood(model: ReturnType<typeof loadPretrainedSync>['model'], prompt: number[], answer: number[]): number {
  return noGrad(() => tidy(() => {
    const ids = [...prompt, ...answer];
    const logits = model.forward({ inputIds: tensor(Int32Array.from(ids), [1, ids.length], 'i32') as Tensor<'i32'> }).logits.toArray();
    const V = logits.length / ids.length;
    let s = 0;
    for (let j = 0; j < answer.length; j++) {
      const row = logits.slice((prompt.length + j - 1) * V, (prompt.length + j) * V);
      const m = Math.max(...row);
      const lse = m + Math.log(row.reduce((a, x) => a + Math.exp(x - m), 0));
      s += row[answer[j]!]! - lse;
    }
    return s;
  }));
}

describe('scoreChoices', () => {
  it('picks the answer with the highest summed log-probability, independent of batching and padding', () => {
    const { model } = loadPretrainedSync(dir('gpt2_lm'));
    const mode = model.training;
    const prompts = ['ABC', 'DEFGHIJ', 'K', 'LMNOP', 'QRS', 'TUV!', '"#$%&', "'()*+,-."];
    const answers = [' A', ' BC', ' D'];
    const records = prompts.map((p, i) => pc(p, answers[i % 3]!));
    const set = buildChoiceSet(records, tok, answers);
    const direct = set.items.map((it) => {
      const ll = set.answerIds.map((a) => directLogLikelihood(model, it.promptIds, a));
      return ll.indexOf(Math.max(...ll));
    });
    for (const batchSize of [1, 3, 8]) {
      const r = scoreChoices(model, set, { padTokenId: 0, batchSize });
      expect(r.predictions).toEqual(direct);
      expect(r.count).toBe(prompts.length);
      expect(r.accuracy).toBeCloseTo(direct.filter((p, i) => p === set.items[i]!.gold).length / prompts.length, 12);
    }
    expect(model.training).toBe(mode); // restored
  });
  it('the Trainer adds the multiple-choice accuracy to a causal LM evaluation', () => {
    const { model } = loadPretrainedSync(dir('gpt2_lm'));
    const records = ['ABC', 'DEF', 'GHI', 'JKL'].map((p, i) => pc(p, i % 2 ? ' P' : ' N'));
    const examples = buildCausalLmExamples(records, tok).examples;
    const set = buildChoiceSet(records, tok, [' N', ' P']);
    const trainer = new Trainer({ model, task: 'causal_lm', train: examples, eval: examples, padTokenId: 0, choices: set, progress: 'none' });
    const r = trainer.evaluate();
    expect(r.perplexity).toBeGreaterThan(1);
    expect(r.accuracy).toBe(scoreChoices(model, set, { padTokenId: 0 }).accuracy);
    expect(trainer.evaluate(examples.slice(0, 2)).accuracy).toBeUndefined(); // other examples: loss only
  });
});
