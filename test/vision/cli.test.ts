/**
 * Image tasks through the CLI, as a user runs them (`node dist/cli/main.js train` in a project
 * folder): the image main job (examples/digits-lora.yaml) for 2 steps, and a matrix of
 * architecture x method cells (ResNet and ViT; full, head_only, lora, qlora) on an ImageFolder
 * with relative paths. Each cell checks the run folder (adapter or model with its preprocessor,
 * results.json with an accuracy, metrics.jsonl).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { fixturePath } from './helpers.js';
import { loadPretrainedSync } from '../../lib/index.js';
import { readImageProcessor } from '../../lib/data/image_processor.js';
import { loadBuiltinDigits } from '../../lib/data/images.js';
import { ImageClassificationObjective } from '../../lib/train/objectives/image_cls.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const MAIN = path.join(ROOT, 'dist', 'cli', 'main.js');
let proj = '';

function tunekit(args: string[], cwd = proj): { code: number | null; out: string } {
  const r = spawnSync(process.execPath, [MAIN, ...args], { cwd, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' }, timeout: 90_000 });
  return { code: r.status, out: `${r.stdout}\n${r.stderr}` };
}

beforeAll(() => {
  expect(fs.existsSync(MAIN)).toBe(true);
  proj = fs.mkdtempSync(path.join(os.tmpdir(), 'tunekit-vision-cli-'));
  for (const d of ['models', 'configs']) fs.mkdirSync(path.join(proj, d));
  // an ImageFolder of two classes from the fixture pictures (RGB, gray, RGBA, JPEG)
  const pics = ['rgb.png', 'gray.png', 'rgba.png', 'photo.jpg'];
  for (const [i, c] of ['stripes', 'waves'].entries()) {
    fs.mkdirSync(path.join(proj, 'data', c), { recursive: true });
    for (let k = 0; k < 4; k++) fs.copyFileSync(fixturePath('images', pics[(i + k) % 4]!), path.join(proj, 'data', c, `${k}${path.extname(pics[(i + k) % 4]!)}`));
  }
  // the fixture models (transformers-written) with a preprocessor that brings every picture to their size
  for (const [name, size] of [['vit', { height: 20, width: 16 }], ['resnet_basic', { height: 19, width: 17 }]] as const) {
    const dir = path.join(proj, 'models', name);
    fs.mkdirSync(dir);
    for (const f of ['config.json', 'model.safetensors']) fs.copyFileSync(fixturePath(name, f), path.join(dir, f));
    fs.writeFileSync(path.join(dir, 'preprocessor_config.json'), JSON.stringify({ image_processor_type: 'ViTImageProcessor', size, resample: 2 }));
  }
});
afterAll(() => {
  if (proj) fs.rmSync(proj, { recursive: true, force: true });
});

describe('image tasks through the CLI', () => {
  it('the image main job, examples/digits-lora.yaml, for 2 steps', () => {
    const out = path.join(proj, 'runs', 'digits-lora');
    const r = tunekit(['train', path.join(ROOT, 'examples', 'digits-lora.yaml'), '--max-steps', '2', '--output', out], ROOT);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toMatch(/data: 3898 train \/ 971 eval images/);
    const res = JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8'));
    expect(res.steps).toBe(2);
    expect(res.eval.accuracy).toBeGreaterThan(0.2); // 5 classes, 2 steps: above chance already
    expect(res.labels).toEqual(['5', '6', '7', '8', '9']);
    const cfg = JSON.parse(fs.readFileSync(path.join(out, 'adapter', 'adapter_config.json'), 'utf8'));
    expect(cfg.peft_type).toBe('LORA');
    expect(cfg.task_type).toBe(null);
    expect(cfg.modules_to_save).toContain('classifier');
    expect(fs.existsSync(path.join(out, 'metrics.jsonl'))).toBe(true);
    // tunekit eval re-scores the run folder: the run's own figures
    const ev = tunekit(['eval', path.join(ROOT, 'examples', 'digits-lora.yaml'), '--run', out], ROOT);
    expect(ev.code, ev.out).toBe(0);
    const evJson = JSON.parse(ev.out.slice(ev.out.indexOf('{'), ev.out.lastIndexOf('}') + 1));
    expect(evJson.accuracy).toBeCloseTo(res.eval.accuracy, 9);
    // tunekit merge folds the adapter into the base: the merged folder scores what the run scored
    const merged = path.join(proj, 'runs', 'digits-merged');
    const m = tunekit(['merge', '--model', 'builtin:tunekit-resnet-digits', '--adapter', path.join(out, 'adapter'), '--output', merged], ROOT);
    expect(m.code, m.out).toBe(0);
    expect(m.out).toMatch(/\(image_cls, f32\)/);
    const { model } = loadPretrainedSync(merged, { task: 'image_cls' });
    const proc = readImageProcessor(merged)!;
    const data = loadBuiltinDigits('builtin:mnist-5-9', { processor: proc, channels: 1 });
    const again = new ImageClassificationObjective(model).evaluate(data.eval, { batchSize: 256, evalSplit: true });
    expect(Math.abs(again.accuracy! - res.eval.accuracy)).toBeLessThan(1e-9);
    expect(Math.abs(again.loss - res.eval.loss)).toBeLessThan(1e-4);
    model.dispose();
  });

  const cells: [string, string, string][] = [
    ['vit', 'full', ''], ['vit', 'head_only', ''], ['vit', 'lora', 'peft: { r: 2, lora_alpha: 4, target_modules: [q_proj, v_proj] }'],
    ['vit', 'qlora', 'peft: { r: 2, lora_alpha: 4, target_modules: [q_proj, k_proj, v_proj, o_proj, fc1, fc2] }'],
    ['resnet_basic', 'lora', 'peft: { r: 2, lora_alpha: 4, target_modules: [convolution] }'], ['resnet_basic', 'full', ''],
  ];
  for (const [model, method, peft] of cells) {
    it(`${model} x ${method}: train 2 steps on an ImageFolder (relative paths), outputs complete`, () => {
      const name = `${model}-${method}`;
      fs.writeFileSync(path.join(proj, 'configs', `${name}.yaml`), [
        `model: models/${model}`, 'task: image_cls', `method: ${method}`, peft,
        'dataset: { path: data, eval: { fraction: 0.25 }, augment: { random_crop: 1, horizontal_flip: true } }',
        'training: { max_steps: 2, batch_size: 4, lr: 1.0e-3 }', `output_dir: runs/${name}`,
      ].filter(Boolean).join('\n'));
      const r = tunekit(['train', `configs/${name}.yaml`]);
      expect(r.code, r.out).toBe(0);
      expect(r.out).toMatch(/converted \d+ image\(s\)/); // the gray pictures became RGB, and it is said
      const out = path.join(proj, 'runs', name);
      const res = JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8'));
      expect(res.steps).toBe(2);
      expect(res.eval.accuracy).toBeGreaterThanOrEqual(0);
      expect(res.labels).toEqual(['stripes', 'waves']);
      if (method === 'full' || method === 'head_only') {
        for (const f of ['config.json', 'model.safetensors', 'preprocessor_config.json']) expect(fs.existsSync(path.join(out, 'model', f)), f).toBe(true);
      } else {
        expect(fs.existsSync(path.join(out, 'adapter', 'adapter_model.safetensors'))).toBe(true);
      }
    });
  }

  it('an interrupted full fine-tuning (augmentation, BatchNorm statistics) resumes to the same bytes as an uninterrupted run', () => {
    const cfg = (name: string) => ['model: models/resnet_basic', 'task: image_cls', 'method: full',
      'dataset: { path: data, eval: { fraction: 0.25 }, augment: { random_crop: 1, horizontal_flip: true } }',
      'training: { max_steps: 4, batch_size: 2, lr: 1.0e-3, save_every: 1 }', `output_dir: runs/${name}`].join('\n');
    fs.writeFileSync(path.join(proj, 'configs', 'resume-a.yaml'), cfg('resume-a'));
    fs.writeFileSync(path.join(proj, 'configs', 'resume-b.yaml'), cfg('resume-b'));
    expect(tunekit(['train', 'configs/resume-a.yaml']).code).toBe(0);
    const env = process.env.TUNEKIT_FAULT_SIGINT_AT_STEP;
    process.env.TUNEKIT_FAULT_SIGINT_AT_STEP = '2';
    try {
      const r = tunekit(['train', 'configs/resume-b.yaml']);
      expect(r.out).toMatch(/interrupted/);
    } finally {
      if (env === undefined) delete process.env.TUNEKIT_FAULT_SIGINT_AT_STEP;
      else process.env.TUNEKIT_FAULT_SIGINT_AT_STEP = env;
    }
    const resumed = tunekit(['train', 'configs/resume-b.yaml', '--resume']);
    expect(resumed.code, resumed.out).toBe(0);
    expect(resumed.out).toMatch(/resuming from .*step \d of 4/);
    const bytes = (n: string) => fs.readFileSync(path.join(proj, 'runs', n, 'model', 'model.safetensors'));
    expect(bytes('resume-b').equals(bytes('resume-a'))).toBe(true);
  });

  it('an image model without preprocessor_config.json, and a text task on it, are refused by name', () => {
    const dir = path.join(proj, 'models', 'bare');
    fs.mkdirSync(dir, { recursive: true });
    for (const f of ['config.json', 'model.safetensors']) fs.copyFileSync(fixturePath('vit', f), path.join(dir, f));
    fs.writeFileSync(path.join(proj, 'configs', 'bare.yaml'), 'model: models/bare\ntask: image_cls\nmethod: head_only\ndataset: { path: data }\noutput_dir: runs/bare\n');
    const r = tunekit(['train', 'configs/bare.yaml']);
    expect(r.code).not.toBe(0);
    expect(r.out).toMatch(/ERR_CONFIG.*has no preprocessor_config\.json/s);
  });
});
