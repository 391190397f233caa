/**
 * Token classification end to end: {tokens, tags} records -> sub-token labels (tag on the first
 * sub-token of each word, -100 elsewhere) -> LoRA on a tiny GPT-2 with a token head -> per-word
 * accuracy. The tags are a rule the model can learn (capitalised word, number, other).
 */
import { describe, it, expect, beforeAll } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import '../../lib/index.js';
import { GPT2, parseGPT2Config, savePretrainedSync } from '../../lib/models/index.js';
import { trainByteLevelBpe, saveTrainedBpe, Tokenizer } from '../../lib/tokenizer/index.js';
import { manualSeed } from '../../lib/nn/random.js';
import { loadTaggedRecords, buildTagMap, buildTokenClassificationExamples } from '../../lib/data/token_cls.js';
import { loadConfig } from '../../lib/train/config.js';
import { runTraining } from '../../lib/train/run.js';

const SENTENCES = [
  'Call me Ishmael and sail 3 days', 'The whale swam 40 miles past Nantucket', 'Ahab stood on deck at 6 bells',
  'Congress met in Washington for 2 weeks', 'The Union is strong says Lincoln', 'Starbuck counted 12 barrels of oil',
  'Queequeg and Ishmael shared 1 room', 'In 1851 Melville wrote of Pequod', 'The President spoke to 535 members',
];
const tagOf = (w: string) => (/^\d+$/.test(w) ? 'NUM' : /^[A-Z]/.test(w) ? 'CAP' : 'O');

let work = '';
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'tunekit-tokcls-'));
  const lines: string[] = [];
  for (let rep = 0; rep < 8; rep++) for (const s of SENTENCES) {
    const words = s.split(' ');
    lines.push(JSON.stringify({ tokens: words, tags: words.map(tagOf) }));
  }
  writeFileSync(join(work, 'tags.jsonl'), lines.join('\n') + '\n');
  writeFileSync(join(work, 'bad.jsonl'), JSON.stringify({ tokens: ['a', 'b'], tags: ['O'] }) + '\n');
  const model = join(work, 'model');
  saveTrainedBpe(model, trainByteLevelBpe(SENTENCES, { vocabSize: 300, specialTokens: ['<|endoftext|>'] }), { eosToken: '<|endoftext|>', bosToken: '<|endoftext|>' });
  manualSeed(3);
  const cfg = parseGPT2Config({ model_type: 'gpt2', vocab_size: 300, n_embd: 32, n_layer: 2, n_head: 2, n_positions: 64, eos_token_id: 0, bos_token_id: 0 });
  savePretrainedSync(new GPT2(cfg, 'causal_lm'), model);
});

describe('token classification', () => {
  it('aligns tags to the first sub-token of each word', () => {
    const recs = loadTaggedRecords(join(work, 'tags.jsonl'));
    const tags = buildTagMap(recs);
    expect(tags).toEqual(['CAP', 'NUM', 'O']);
    const tok = Tokenizer.fromFolderSync(join(work, 'model'));
    const [ex] = buildTokenClassificationExamples(recs.slice(0, 1), tok, tags);
    const words = SENTENCES[0]!.split(' ');
    expect(ex!.labels.filter((l) => l !== -100)).toEqual(words.map((w) => tags.indexOf(tagOf(w))));
    expect(ex!.inputIds.length).toBe(ex!.labels.length);
  });

  it('a malformed record names its file and line', () => {
    expect(() => loadTaggedRecords(join(work, 'bad.jsonl'))).toThrow(/bad\.jsonl:1: Expected 'tags' to be 2 tags/);
  });

  it('trains through runTraining and learns the tags', async () => {
    const config = loadConfig({
      model: join(work, 'model'), task: 'token_cls', method: 'lora',
      peft: { r: 4, lora_alpha: 8, target_modules: ['c_attn', 'c_fc'] },
      dataset: { path: join(work, 'tags.jsonl'), max_length: 32, eval: { fraction: 0.2 } },
      training: { epochs: 12, batch_size: 8, lr: 1e-2 },
      output_dir: join(work, 'run'), logging: { progress: 'none' },
    });
    const res = await runTraining(config, { log: () => {} });
    expect(res.eval!.accuracy).toBeGreaterThan(0.9);
  });

  it('a training split with one tag is refused by name before training', async () => {
    writeFileSync(join(work, 'one_tag.jsonl'), SENTENCES.map((s) => JSON.stringify({ tokens: s.split(' '), tags: s.split(' ').map(() => 'O') })).join('\n') + '\n');
    const config = loadConfig({
      model: join(work, 'model'), task: 'token_cls', method: 'lora',
      peft: { r: 4, lora_alpha: 8, target_modules: ['c_attn'] },
      dataset: { path: join(work, 'one_tag.jsonl'), max_length: 32, eval: { fraction: 0.2 } },
      training: { max_steps: 1, batch_size: 4 },
      output_dir: join(work, 'one-tag-run'), logging: { progress: 'none' },
    });
    await expect(runTraining(config, { log: () => {} })).rejects.toMatchObject({
      code: 'ERR_VALUE', message: expect.stringMatching(/has the tag 'O'; a classifier needs at least two classes/),
    });
  });
});
