/**
 * One ResNet training step timed in one process (mirrors bench/reference/resnet_step.py): a
 * random-init transformers-layout ResNet, random images and labels, forward + cross-entropy +
 * backward + grad-norm clipping + AdamW + zero grad, in train mode (BatchNorm on batch statistics).
 * Prints one JSON line: images/s from the median of the timed steps, peak RSS.
 *
 *   node bench/resnet_step.mjs --model resnet18 --batch 16 --size 112 --steps 5 --warmup 2 [--mode full|lora] [--threads 2]
 *   --model digits: the built-in image base's architecture (1 x 28 x 28), as the image main job trains it
 * Needs dist/ (npm run build).
 */
import { parseArgs } from 'node:util';
import {
  ResNet, parseResNetConfig, LoraModel, AdamW, clipGradNorm, backward, tidy, tensor, randn, manualSeed, setNumThreads, ops as F,
} from '../dist/index.js';

const { values } = parseArgs({
  options: {
    model: { type: 'string', default: 'resnet18' }, batch: { type: 'string', default: '16' }, size: { type: 'string', default: '112' },
    steps: { type: 'string', default: '5' }, warmup: { type: 'string', default: '2' }, mode: { type: 'string', default: 'full' },
    threads: { type: 'string', default: '2' },
  },
});
export const MODELS = {
  resnet18: { num_channels: 3, embedding_size: 64, hidden_sizes: [64, 128, 256, 512], depths: [2, 2, 2, 2], layer_type: 'basic', num_labels: 10 },
  digits: { num_channels: 1, embedding_size: 32, hidden_sizes: [32, 64], depths: [1, 1], layer_type: 'basic', num_labels: 5 },
};
const spec = MODELS[values.model];
const B = Number(values.batch), S = values.model === 'digits' ? 28 : Number(values.size);
setNumThreads(Number(values.threads));
manualSeed(0);
const base = new ResNet(parseResNetConfig({ model_type: 'resnet', ...spec }), 'image_cls');
const model = values.mode === 'lora' ? new LoraModel(base, { r: 8, lora_alpha: 16, target_modules: ['convolution'] }) : base;
if (values.mode !== 'lora') base.requiresGrad_(true);
model.train();
const opt = new AdamW(model.trainableParameters(), { lr: 1e-3, weightDecay: 0.01 });
const params = opt.params;
const pixels = randn([B, spec.num_channels, S, S], { seed: 1 });
const labels = tensor(Int32Array.from({ length: B }, (_, i) => i % spec.num_labels), [B], 'i32');
const times = [];
for (let s = 0; s < Number(values.warmup) + Number(values.steps); s++) {
  const t0 = performance.now();
  tidy(() => {
    const loss = F.crossEntropy(model.forward({ pixelValues: pixels }).logits, labels);
    backward(loss);
  });
  clipGradNorm(params, 1.0);
  opt.step(1e-3);
  opt.zeroGrad();
  if (s >= Number(values.warmup)) times.push((performance.now() - t0) / 1000);
}
times.sort((a, b) => a - b);
const median = times[Math.floor(times.length / 2)];
console.log(JSON.stringify({ side: 'tunekit', model: values.model, mode: values.mode, batch: B, size: S, threads: Number(values.threads),
  step_seconds: median, images_per_second: B / median, trainable: model.countParameters(true), peak_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024) }));
