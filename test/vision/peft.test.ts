/**
 * LoRA on image models with PEFT's semantics and files: on every ResNet convolution (PEFT's
 * lora.Conv2d: lora_A a convolution with the layer's kernel, lora_B 1x1), on ViT's attention, on
 * all of ViT's linear layers and its patch projection; the head in modules_to_save. Each cell
 * checks PEFT's invariants (disabled == base, merged == unmerged, only adapter and saved
 * parameters train, save -> reload), PEFT -> us (PEFT's folder, PEFT's logits) and us -> PEFT
 * (peft/python_loads_ours.json: PEFT loaded the very bytes this test writes, and its logits
 * equal ours). With TUNEKIT_VISION_EXPORT set, our folders and logits are written there for
 * scripts/fixtures/make_vision_fixtures.py --peft-interop.
 */
import { describe, it, expect } from 'vitest';
import { createHash } from 'node:crypto';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadPretrainedSync, LoraModel, tensor, noGrad, tidy, manualSeed, Tensor, TunekitError } from '../../lib/index.js';
import type { PretrainedModel } from '../../lib/index.js';
import { fixturePath, readJson, maxRelErr } from './helpers.js';

const exportDir = process.env.TUNEKIT_VISION_EXPORT;
const expected = readJson('peft', 'expected.json').cells as Record<string, { model: string; r: number; lora_alpha: number; target_modules: string[]; logits: number[] }>;
const interop = (exportDir ? { results: {} } : readJson('peft', 'python_loads_ours.json')).results as Record<string, { ok: boolean; max_rel_err: number; sha256: string; peft_logits: number[] }>;
const ours: Record<string, number[]> = {};

function pixelsFor(model: string): Tensor<'f32'> {
  const exp = readJson(model, 'expected.json');
  return tensor(new Float32Array(exp.pixel_values), exp.pixel_shape) as Tensor<'f32'>;
}
const logitsOf = (m: { forward: PretrainedModel['forward'] }, px: Tensor<'f32'>) => noGrad(() => tidy(() => Array.from(m.forward({ pixelValues: px }).logits.contiguousRaw().data() as Float32Array)));

describe('LoRA on image models, PEFT semantics and files', () => {
  for (const [name, cell] of Object.entries(expected)) {
    it(`${name}: PEFT's folder gives PEFT's logits`, () => {
      const { model: base } = loadPretrainedSync(fixturePath(cell.model), { task: 'image_cls' });
      const lora = LoraModel.fromPretrainedSync(base, fixturePath('peft', name));
      expect(maxRelErr(logitsOf(lora, pixelsFor(cell.model)), cell.logits)).toBeLessThan(1e-4);
      lora.dispose();
    });

    it(`${name}: disabled == base, merged == unmerged, only adapters and the head train, save -> reload, PEFT reads our bytes`, () => {
      const px = pixelsFor(cell.model);
      const { model: base } = loadPretrainedSync(fixturePath(cell.model), { task: 'image_cls' });
      const baseLogits = logitsOf(base, px);
      manualSeed(7);
      // init_lora_weights false: B random too, so the adapter changes the logits
      const lora = new LoraModel(base, { r: cell.r, lora_alpha: cell.lora_alpha, target_modules: cell.target_modules, init_lora_weights: false });
      const adapted = logitsOf(lora, px);
      expect(maxRelErr(adapted, baseLogits)).toBeGreaterThan(1e-3);
      expect(maxRelErr(lora.withAdaptersDisabled(() => logitsOf(lora, px)), baseLogits)).toBeLessThan(1e-6);
      const trainable = lora.trainableParameters().map(([n]) => n);
      expect(trainable.length).toBeGreaterThan(2);
      for (const n of trainable) expect(n, n).toMatch(/\.lora_[AB]\.default\.weight$|(^|\.)classifier\./);
      // every target got an adapter: convolutions by name, PEFT's shapes
      const convs = lora.namedParameters().filter(([n]) => /lora_A\.default\.weight$/.test(n));
      expect(convs.length).toBeGreaterThan(0);
      const dir = mkdtempSync(join(tmpdir(), 'tk-vision-peft-'));
      try {
        lora.saveAdapterSync(join(dir, 'adapter'));
        const bytes = readFileSync(join(dir, 'adapter', 'adapter_model.safetensors'));
        const sha = createHash('sha256').update(bytes).digest('hex');
        ours[name] = adapted;
        if (exportDir) {
          mkdirSync(join(exportDir, 'peft', name), { recursive: true });
          lora.saveAdapterSync(join(exportDir, 'peft', name));
          writeFileSync(join(exportDir, 'peft', 'ours.json'), JSON.stringify(ours));
        } else {
          // us -> PEFT: PEFT loaded these very bytes and computed these logits
          expect(interop[name]!.sha256).toBe(sha);
          expect(interop[name]!.ok).toBe(true);
          expect(maxRelErr(adapted, interop[name]!.peft_logits)).toBeLessThan(1e-4);
        }
        const { model: base2 } = loadPretrainedSync(fixturePath(cell.model), { task: 'image_cls' });
        const again = LoraModel.fromPretrainedSync(base2, join(dir, 'adapter'));
        expect(maxRelErr(logitsOf(again, px), adapted)).toBeLessThan(1e-6);
        again.dispose();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
      lora.merge();
      expect(maxRelErr(logitsOf(lora, px), adapted)).toBeLessThan(1e-5);
      lora.unmerge();
      expect(maxRelErr(logitsOf(lora, px), adapted)).toBeLessThan(1e-5);
      lora.dispose();
    });
  }

  it('a grouped or dilated convolution, and a conv target that matches nothing, are refused by name', async () => {
    const { Conv2d } = await import('../../lib/nn/conv.js');
    const { LoraConv2d } = await import('../../lib/peft/lora/conv.js');
    const err = (fn: () => unknown) => { try { fn(); } catch (e) { return e instanceof TunekitError ? `${e.code}: ${e.message}` : String(e); } return 'no error'; };
    expect(err(() => new LoraConv2d(new Conv2d(4, 4, 3, { groups: 2 }), 'x.conv'))).toMatch(/^ERR_CONFIG: LoRA on x\.conv: a grouped convolution/);
    expect(err(() => new LoraConv2d(new Conv2d(4, 4, 3, { dilation: 2 }), 'x.conv'))).toMatch(/^ERR_CONFIG: LoRA on x\.conv: a dilated convolution/);
    const { model } = loadPretrainedSync(fixturePath('resnet_basic'), { task: 'image_cls' });
    expect(err(() => new LoraModel(model, { target_modules: ['conv_nope'] }))).toMatch(/^ERR_CONFIG: target_modules \["conv_nope"\] matched no linear or convolution layer.*convolution/);
    model.dispose();
  });
});
