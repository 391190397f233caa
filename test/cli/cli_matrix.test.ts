/**
 * The CLI matrix: for each architecture x task x method that makes sense, `tunekit train` (2 steps)
 * then `tunekit eval`, then `tunekit merge` (LoRA family: the merged folder evaluated as a plain
 * model gives the adapter's loss) or `tunekit generate` (causal LM), all run as a user runs them:
 * `node dist/cli/main.js` in a project folder, with configs kept in a sub-folder whose relative
 * paths (models/, data/, runs/) mean the working directory.
 *
 * Tiny random models (hidden 32, 2 layers) are written in the setup with the fixture tokenizers:
 * a byte-level BPE for GPT-2, a WordPiece for BERT, a Llama-style BPE for Llama.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import '../../lib/index.js';
import { architectureFor, savePretrainedSync, type Task } from '../../lib/models/index.js';
import { manualSeed } from '../../lib/nn/random.js';
import { tinyRawConfig } from '../models/helpers.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const MAIN = path.join(ROOT, 'dist', 'cli', 'main.js');
const TOKENIZERS = path.join(ROOT, 'test', 'fixtures', 'tokenizers');
const SPAM = path.join(ROOT, 'test', 'fixtures', 'cli', 'tiny_spam.jsonl');

type Arch = 'gpt2' | 'bert' | 'llama';
const TOKENIZER_OF: Record<Arch, string> = { gpt2: 'gpt2-bpe', bert: 'bert-wordpiece', llama: 'llama-bpe' };


interface Cell {
  arch: Arch;
  task: Task;
  method: string;
  peft?: Record<string, unknown>;
}

// LoRA targets per architecture (the attention projections: they exist in every block)
const TARGETS: Record<Arch, string[]> = { gpt2: ['c_attn'], bert: ['query', 'value'], llama: ['q_proj', 'v_proj'] };

function peftFor(arch: Arch, method: string): Record<string, unknown> | undefined {
  switch (method) {
    case 'lora': return { r: 4, lora_alpha: 8, target_modules: TARGETS[arch] };
    case 'qlora': return { r: 4, lora_alpha: 8, lora_dropout: 0, target_modules: TARGETS[arch] };
    case 'adalora': return { init_r: 4, target_r: 2, lora_alpha: 8, target_modules: TARGETS[arch], total_step: 2 };
    case 'prompt_tuning': return { num_virtual_tokens: 4 };
    case 'p_tuning': return { num_virtual_tokens: 4, encoder_hidden_size: 16 };
    case 'prefix_tuning': return { num_virtual_tokens: 4 };
    default: return undefined;
  }
}

const CELLS: Cell[] = [];
const PEFT_METHODS = ['lora', 'qlora', 'adalora', 'prompt_tuning', 'p_tuning', 'prefix_tuning'];
for (const arch of ['gpt2', 'bert', 'llama'] as Arch[]) {
  // BERT is an encoder: no causal LM
  if (arch !== 'bert') for (const method of ['full', ...PEFT_METHODS]) CELLS.push({ arch, task: 'causal_lm', method });
  for (const method of ['full', 'head_only', ...PEFT_METHODS]) CELLS.push({ arch, task: 'seq_cls', method });
  for (const method of ['full', 'head_only', 'lora']) CELLS.push({ arch, task: 'token_cls', method });
}
for (const c of CELLS) c.peft = peftFor(c.arch, c.method);

let proj = '';

function cli(args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [MAIN, ...args], { cwd: proj, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' }, timeout: 90_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

beforeAll(() => {
  // dist/ is built once by test/global_setup.ts
  expect(fs.existsSync(MAIN)).toBe(true);
  proj = fs.mkdtempSync(path.join(os.tmpdir(), 'tunekit-matrix-'));
  for (const d of ['models', 'data', 'configs']) fs.mkdirSync(path.join(proj, d));
  // datasets: the spam snippets as labelled records, as plain text, and as tagged words
  const records = fs.readFileSync(SPAM, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { text: string; label: string });
  fs.copyFileSync(SPAM, path.join(proj, 'data', 'spam.jsonl'));
  fs.writeFileSync(path.join(proj, 'data', 'text.jsonl'), records.map((r) => JSON.stringify({ text: r.text })).join('\n') + '\n');
  // a word is tagged SPAMWORD when it occurs only in spam snippets: a real, learnable tagging
  const hamWords = new Set(records.filter((r) => r.label === 'ham').flatMap((r) => r.text.split(' ')));
  fs.writeFileSync(
    path.join(proj, 'data', 'tagged.jsonl'),
    records.map((r) => { const tokens = r.text.split(' '); return JSON.stringify({ tokens, tags: tokens.map((w) => (hamWords.has(w) ? 'O' : 'SPAMWORD')) }); }).join('\n') + '\n',
  );
  for (const arch of ['gpt2', 'bert', 'llama'] as Arch[]) {
    const dir = path.join(proj, 'models', arch);
    fs.mkdirSync(dir);
    for (const f of fs.readdirSync(path.join(TOKENIZERS, TOKENIZER_OF[arch]))) fs.copyFileSync(path.join(TOKENIZERS, TOKENIZER_OF[arch], f), path.join(dir, f));
    const tok = JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer.json'), 'utf8')) as { model: { vocab: Record<string, number> }; added_tokens?: { id: number }[] };
    const vocab = Math.max(...Object.values(tok.model.vocab), ...(tok.added_tokens ?? []).map((t) => t.id)) + 1;
    manualSeed(7);
    const a = architectureFor(arch);
    const m = a.build(a.parseConfig(tinyRawConfig(arch, vocab, 32, 64)), arch === 'bert' ? 'base' : 'causal_lm');
    savePretrainedSync(m, dir);
    m.dispose();
  }
});

afterAll(() => {
  if (proj) fs.rmSync(proj, { recursive: true, force: true });
});


const LORA_FAMILY = new Set(['lora', 'qlora', 'adalora']);

describe('tunekit CLI matrix: train -> eval -> merge/generate, relative paths from the working directory', () => {
  for (const cell of CELLS) {
    const name = `${cell.arch}-${cell.task}-${cell.method}`;
    it(name, () => {
      const data = cell.task === 'seq_cls' ? 'data/spam.jsonl' : cell.task === 'causal_lm' ? 'data/text.jsonl' : 'data/tagged.jsonl';
      const config: Record<string, unknown> = {
        model: `models/${cell.arch}`,
        task: cell.task,
        method: cell.method,
        ...(cell.peft ? { peft: cell.peft } : {}),
        dataset: { path: data, max_length: 24, eval: { fraction: 0.25, seed: 1 } },
        training: { max_steps: 2, batch_size: 4, lr: 1e-3, threads: 1 },
        output_dir: `runs/${name}`,
        logging: { every: 1, progress: 'none' },
      };
      // the config sits in configs/, its paths mean the project folder (the working directory)
      const cfgPath = `configs/${name}.json`;
      fs.writeFileSync(path.join(proj, cfgPath), JSON.stringify(config, null, 2));
      const train = cli(['train', cfgPath]);
      expect(train.code, `train failed:\n${train.stderr}`).toBe(0);
      expect(train.stdout).toMatch(/done.*2 steps \(completed\)/);
      const run = path.join(proj, 'runs', name);
      const peft = cell.method !== 'full' && cell.method !== 'head_only';
      expect(fs.existsSync(path.join(run, peft ? 'adapter/adapter_config.json' : 'model/config.json'))).toBe(true);
      expect(fs.existsSync(path.join(proj, 'configs', 'runs'))).toBe(false); // not beside the config

      const ev = cli(['eval', cfgPath]);
      expect(ev.code, `eval failed:\n${ev.stderr}`).toBe(0);
      const metrics = JSON.parse(ev.stdout) as { loss: number; accuracy?: number };
      const results = JSON.parse(fs.readFileSync(path.join(run, 'results.json'), 'utf8')) as { eval: { loss: number } };
      expect(metrics.loss).toBeCloseTo(results.eval.loss, 4);

      if (LORA_FAMILY.has(cell.method)) {
        const out = `merged/${name}`;
        // a QLoRA adapter merges onto the NF4 base it was trained on (--nf4): dequant(W) + s B A
        const merge = cli(['merge', '--model', `models/${cell.arch}`, '--adapter', `runs/${name}/adapter`, '--output', out, ...(cell.method === 'qlora' ? ['--nf4'] : [])]);
        expect(merge.code, `merge failed:\n${merge.stderr}`).toBe(0);
        const merged = JSON.parse(fs.readFileSync(path.join(proj, out, 'config.json'), 'utf8')) as { id2label?: Record<string, string> };
        if (cell.task === 'seq_cls') expect(merged.id2label).toEqual({ 0: 'ham', 1: 'spam' });
        // the merged folder, evaluated as a plain base model, gives the adapter's loss
        const mergedCfg = `configs/${name}-merged.json`;
        fs.writeFileSync(path.join(proj, mergedCfg), JSON.stringify({ ...config, model: out, method: 'full', peft: undefined, quantization: undefined }));
        const ev2 = cli(['eval', mergedCfg, '--base']);
        expect(ev2.code, `eval of merged failed:\n${ev2.stderr}`).toBe(0);
        expect((JSON.parse(ev2.stdout) as { loss: number }).loss).toBeCloseTo(metrics.loss, 4);
      }
      if (cell.task === 'causal_lm' && peft) {
        const gen = cli(['generate', '--model', `models/${cell.arch}`, '--adapter', `runs/${name}/adapter`, '--prompt', 'free money', '--max-new-tokens', '4', '--temperature', '0']);
        expect(gen.code, `generate failed:\n${gen.stderr}`).toBe(0);
        expect(gen.stdout.startsWith('free money')).toBe(true);
      }
    });
  }
});

describe('tunekit CLI refuses before loading', () => {
  const base = { model: 'models/gpt2', task: 'seq_cls', method: 'lora', dataset: { path: 'data/spam.jsonl', max_length: 24 }, training: { max_steps: 1 }, logging: { progress: 'none' } };
  function train(name: string, cfg: Record<string, unknown>) {
    fs.writeFileSync(path.join(proj, 'configs', name), JSON.stringify(cfg));
    const t0 = Date.now();
    const r = cli(['train', `configs/${name}`]);
    return { ...r, ms: Date.now() - t0 };
  }

  it('an output folder under /proc is ERR_IO at once, before the model is loaded (was an endless mkdir loop)', () => {
    const r = train('proc.json', { ...base, output_dir: '/proc/tunekit-run' });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/ERR_IO.*pseudo-filesystem \(proc\)/);
    expect(r.stderr).not.toMatch(/^model /m);
    expect(r.ms).toBeLessThan(20_000);
  });

  it('dataset.max_length above the model\'s positions names the field and the limit (was gatherRows: id out of range)', () => {
    const r = train('long.json', { ...base, dataset: { path: 'data/spam.jsonl', max_length: 100 }, output_dir: 'runs/long' });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/ERR_CONFIG.*dataset\.max_length 100: expected at most 64 positions/);
    const p = train('long-prompt.json', { ...base, method: 'prompt_tuning', peft: { num_virtual_tokens: 8 }, dataset: { path: 'data/spam.jsonl', max_length: 60 }, output_dir: 'runs/long-prompt' });
    expect(p.code).toBe(1);
    expect(p.stderr).toMatch(/dataset\.max_length 60 \+ peft\.num_virtual_tokens 8: expected at most 64 positions.*lower dataset\.max_length to 56/);
  });

  it('merge of a prompt-tuning adapter is refused naming the method', () => {
    const ok = train('pt.json', { ...base, method: 'prompt_tuning', peft: { num_virtual_tokens: 4 }, output_dir: 'runs/pt-merge' });
    expect(ok.code, ok.stderr).toBe(0);
    const r = cli(['merge', '--model', 'models/gpt2', '--adapter', 'runs/pt-merge/adapter', '--output', 'merged/pt']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/PROMPT_TUNING adapter; only LoRA-family adapters/);
  });
});
