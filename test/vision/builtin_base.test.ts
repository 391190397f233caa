/**
 * The built-in image base, models/tunekit-resnet-digits: a standard transformers folder (config,
 * bf16 safetensors with BatchNorm statistics, preprocessor) that tunekit pretrained on the digits
 * 0-4; its held-out accuracy is the one its README states, and it has never seen 5-9 (its head
 * has five classes named 0-4).
 */
import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadPretrainedSync, resolveModelPath, io } from '../../lib/index.js';
import { readImageProcessor } from '../../lib/data/image_processor.js';
import { loadBuiltinDigits } from '../../lib/data/images.js';
import { ImageClassificationObjective } from '../../lib/train/objectives/image_cls.js';

describe('builtin:tunekit-resnet-digits', () => {
  const dir = resolveModelPath('builtin:tunekit-resnet-digits');
  it('is a transformers ResNet folder in bf16 with its preprocessor', () => {
    const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    expect(cfg.architectures).toEqual(['ResNetForImageClassification']);
    expect(cfg.num_channels).toBe(1);
    expect(Object.values(cfg.id2label)).toEqual(['0', '1', '2', '3', '4']);
    const st = io.openSafetensorsSync(join(dir, 'model.safetensors'));
    expect(st.info('resnet.embedder.embedder.convolution.weight').dtype).toBe('BF16');
    expect(st.names).toContain('resnet.embedder.embedder.normalization.running_var');
    st.close();
    expect(readImageProcessor(dir)!.imageMean).toEqual([0.1307]);
  });

  it('scores on the held-out digits 0-4 what its README says', () => {
    const readme = readFileSync(join(dir, 'README.md'), 'utf8');
    const stated = Number(/Held-out accuracy on digits 0-4[^*]*\*\*([\d.]+)%\*\*/.exec(readme)![1]);
    const { model, report } = loadPretrainedSync(dir, { task: 'image_cls' });
    expect(report.initialised).toEqual([]);
    const data = loadBuiltinDigits('builtin:mnist-0-4', { processor: readImageProcessor(dir)!, channels: 1 });
    const r = new ImageClassificationObjective(model).evaluate(data.eval, { batchSize: 256, evalSplit: true });
    expect((r.accuracy! * 100).toFixed(2)).toBe(stated.toFixed(2));
    expect(r.accuracy!).toBeGreaterThan(0.98);
    model.dispose();
  });
});
