/**
 * Instruction tuning through runTraining on the built-in base: chat records rendered by the
 * tokenizer's chat template (loss on assistant turns only), and the prompt/completion built-in.
 */
import { describe, it, expect } from 'vitest';
import { mkdtempSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import '../../lib/index.js';
import { loadConfig } from '../../lib/train/config.js';
import { runTraining } from '../../lib/train/run.js';

const CHAT = join(__dirname, '..', 'fixtures', 'chat', 'chat.jsonl');

describe('instruction tuning', () => {
  it('trains LoRA on chat records through the chat template', async () => {
    const out = mkdtempSync(join(tmpdir(), 'tunekit-chat-'));
    const config = loadConfig({
      model: 'builtin:tunekit-gpt2-small', task: 'causal_lm', method: 'lora',
      dataset: { path: CHAT, max_length: 64, eval: { size: 1 } },
      training: { max_steps: 3, batch_size: 2, lr: 1e-3 }, output_dir: out, logging: { progress: 'none' },
    });
    const res = await runTraining(config, { log: () => {} });
    expect(res.fit.steps).toBe(3);
    expect(res.eval!.perplexity).toBeGreaterThan(1);
    expect(existsSync(join(out, 'adapter', 'adapter_config.json'))).toBe(true);
    expect(JSON.parse(readFileSync(join(out, 'adapter', 'adapter_config.json'), 'utf8')).task_type).toBe('CAUSAL_LM');
    // tunekit eval renders the chat records the same way and reproduces the run's final evaluation
    const { evaluateRun } = await import('../../lib/train/evaluate.js');
    const again = await evaluateRun(config, { runDir: out });
    expect(again.count).toBe(res.eval!.count);
    expect(again.loss).toBeCloseTo(res.eval!.loss!, 4);
  });

  it('the spam-assassin-instruct built-in gives prompt/completion examples that keep their answers', async () => {
    const { loadBuiltin, buildCausalLmExamples } = await import('../../lib/data/index.js');
    const { Tokenizer } = await import('../../lib/tokenizer/index.js');
    const { resolveModelPath } = await import('../../lib/models/builtin.js');
    const b = loadBuiltin('builtin:spam-assassin-instruct');
    expect(b.format).toBe('prompt_completion');
    expect([b.train.length, b.eval.length]).toEqual([4836, 1210]);
    const tok = Tokenizer.fromFolderSync(resolveModelPath('builtin:tunekit-gpt2-small'));
    const config = loadConfig(join(__dirname, '..', '..', 'examples', 'instruct-lora.yaml'));
    expect(config.dataset.truncation).toBe('keep_end');
    const { examples } = buildCausalLmExamples(b.eval, tok, { maxLength: config.dataset.max_length, truncation: 'keep_end' });
    expect(examples.length).toBe(b.eval.length); // every answer survives truncation (the prompt's start is cut)
    expect(examples.every((e) => e.inputIds.length <= config.dataset.max_length)).toBe(true);
    const cutEnd = buildCausalLmExamples(b.eval, tok, { maxLength: config.dataset.max_length }).examples;
    expect(cutEnd.length).toBeLessThan(b.eval.length); // keep_start would drop the long ones
    const ex = examples[0]!;
    expect(tok.decode(ex.inputIds.filter((_, i) => ex.labels[i] !== -100))).toMatch(/^ (spam|ham)<\|endoftext\|>$/);
  });
});
