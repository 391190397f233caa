/**
 * ResNet (basic and bottleneck) and ViT against transformers on tiny random models of awkward
 * sizes written by transformers: eval logits, train-mode logits (batch statistics), the running
 * statistics one train forward leaves, gradients of the cross-entropy; ViT under both key
 * spellings; save -> reload -> same logits, with exactly the keys transformers wrote.
 */
import { describe, it, expect } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadPretrainedSync, savePretrainedSync, tensor, ops as F, noGrad, tidy, Tensor, io, TunekitError } from '../../lib/index.js';
import { fixturePath, readJson, maxRelErr } from './helpers.js';

const MODELS = ['resnet_basic', 'resnet_bottleneck', 'vit', 'vit_5x'] as const;
const expectedOf = (name: string) => readJson(name === 'vit_5x' ? 'vit' : name, 'expected.json');
const pixelsOf = (exp: any) => tensor(new Float32Array(exp.pixel_values), exp.pixel_shape) as Tensor<'f32'>;
const arr = (t: Tensor) => Array.from(t.contiguousRaw().data() as Float32Array);

describe('image models match transformers', () => {
  for (const name of MODELS) {
    it(`${name}: eval logits (rel err < 1e-4)`, () => {
      const exp = expectedOf(name);
      const { model, report } = loadPretrainedSync(fixturePath(name), { task: 'image_cls' });
      expect(report.initialised).toEqual([]);
      expect(report.unused).toEqual([]);
      const logits = noGrad(() => tidy(() => arr(model.forward({ pixelValues: pixelsOf(exp) }).logits)));
      expect(maxRelErr(logits, exp.eval_logits)).toBeLessThan(1e-4);
      model.dispose();
    });
  }

  for (const name of ['resnet_basic', 'resnet_bottleneck', 'vit'] as const) {
    it(`${name}: train mode (batch statistics), running statistics and gradients`, () => {
      const exp = expectedOf(name);
      const { model } = loadPretrainedSync(fixturePath(name), { task: 'image_cls' });
      model.requiresGrad_(true);
      model.train();
      tidy(() => {
        const { logits } = model.forward({ pixelValues: pixelsOf(exp) });
        expect(maxRelErr(arr(logits), exp.train_logits)).toBeLessThan(1e-4);
        const loss = F.crossEntropy(logits, tensor(new Int32Array(exp.labels), [exp.labels.length], 'i32') as Tensor<'i32'>);
        expect(Math.abs(loss.item() - exp.train_loss)).toBeLessThan(1e-4 * Math.max(1, exp.train_loss));
        loss.backward();
      });
      const params = new Map(model.namedParameters());
      for (const [n, g] of Object.entries(exp.grads as Record<string, number[]>)) {
        expect(maxRelErr(arr(params.get(n)!.grad!), g), n).toBeLessThan(1e-4);
      }
      const buffers = new Map(model.namedBuffers());
      for (const [n, v] of Object.entries(exp.running_after_train as Record<string, number[]>)) {
        expect(maxRelErr(arr(buffers.get(n)!), v), n).toBeLessThan(1e-5);
      }
      model.dispose();
    });
  }

  for (const name of ['resnet_basic', 'vit'] as const) {
    it(`${name}: save -> reload gives the same logits and transformers' keys`, () => {
      const exp = expectedOf(name);
      const dir = mkdtempSync(join(tmpdir(), 'tk-vision-'));
      try {
        const { model } = loadPretrainedSync(fixturePath(name), { task: 'image_cls' });
        savePretrainedSync(model, dir);
        const theirs = io.openSafetensorsSync(fixturePath(name, 'model.safetensors'));
        const ours = io.openSafetensorsSync(join(dir, 'model.safetensors'));
        expect([...ours.names].sort()).toEqual([...theirs.names].sort());
        for (const n of theirs.names) expect(ours.info(n).shape, n).toEqual(theirs.info(n).shape);
        theirs.close(); ours.close();
        const { model: again } = loadPretrainedSync(dir, { task: 'image_cls' });
        const logits = noGrad(() => tidy(() => arr(again.forward({ pixelValues: pixelsOf(exp) }).logits)));
        expect(maxRelErr(logits, exp.eval_logits)).toBeLessThan(1e-4);
        model.dispose(); again.dispose();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }

  it('transformers loads the folders we save (scripts/fixtures/make_vision_fixtures.py --interop)', () => {
    const r = readJson('python_loads_ours.json');
    for (const name of ['resnet_basic', 'resnet_bottleneck', 'vit']) {
      expect(r.results[name].ok, name).toBe(true);
      expect(r.results[name].max_rel_err).toBeLessThan(1e-4);
    }
  });
});

describe('image models refuse what they cannot do, by name', () => {
  const err = (fn: () => unknown): string => {
    try {
      fn();
    } catch (e) {
      return e instanceof TunekitError ? `${e.code}: ${e.message}` : String(e);
    }
    return 'no error';
  };
  it('a text task, token ids, wrong channels or image size', () => {
    expect(err(() => loadPretrainedSync(fixturePath('vit'), { task: 'causal_lm' }))).toMatch(/^ERR_VALUE: vit is an image model: task 'causal_lm'/);
    const { model } = loadPretrainedSync(fixturePath('vit'), { task: 'image_cls' });
    expect(err(() => model.forward({ inputIds: tensor(new Int32Array(2), [1, 2], 'i32') as Tensor<'i32'> }))).toMatch(/^ERR_VALUE: vit is an image model: expected pixelValues/);
    expect(err(() => tidy(() => model.forward({ pixelValues: tensor(new Float32Array(1 * 1 * 20 * 16), [1, 1, 20, 16]) as Tensor<'f32'> })))).toMatch(/^ERR_SHAPE: .*num_channels 3/);
    expect(err(() => tidy(() => model.forward({ pixelValues: tensor(new Float32Array(3 * 16 * 16), [1, 3, 16, 16]) as Tensor<'f32'> })))).toMatch(/^ERR_SHAPE: vit: expected images of 20x16/);
    expect(err(() => model.tokenEmbeddings())).toMatch(/^ERR_VALUE: vit is an image model: it has no token embeddings/);
    model.dispose();
  });
});
