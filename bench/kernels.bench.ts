/**
 * Kernel timings through the JS API (tinybench): GEMM, attention, LayerNorm, softmax,
 * cross-entropy over the GPT-2 vocabulary, AdamW. GPT-2 small training shapes (B 4, T 128,
 * C 768, 12 heads, vocab 50257). Prints one JSON line per kernel: { name, ms } (median latency).
 * bench/reference/torch_kernels.py times the same ops in PyTorch under the same names.
 *
 *   node bench/.out/kernels.bench.js [--threads 2] [--time 400]
 */
import { parseArgs } from 'node:util';
import { Bench } from 'tinybench';
import { ops as F, backward, randn, tensor, tidy, setNumThreads, AdamW, type Tensor } from 'tunekit';

const { values } = parseArgs({ options: { threads: { type: 'string', default: '2' }, time: { type: 'string', default: '400' }, only: { type: 'string', default: '' } } });
setNumThreads(+values.threads!);
const B = 4, T = 128, C = 768, H = 12, D = 64, V = 50257, M = B * T;

const x = randn([M, C], { seed: 1 });
const w = randn([C, 4 * C], { seed: 2, std: 0.02 });
const q = randn([B, H, T, D], { seed: 3 }), k = randn([B, H, T, D], { seed: 4 }), v = randn([B, H, T, D], { seed: 5 });
const lnw = randn([C], { seed: 6 }), lnb = randn([C], { seed: 7 });
const scores = randn([B * H * T, T], { seed: 8 });
const logits = randn([M, V], { seed: 9 });
const labels = tensor(Int32Array.from({ length: M }, (_, i) => (i * 7919) % V), [M]) as Tensor<'i32'>;
const p = randn([C, 4 * C], { seed: 10 });
p.requiresGrad = true;
p.grad = randn([C, 4 * C], { seed: 11 });
const opt = new AdamW([['w', p]], { lr: 1e-4, weightDecay: 0.01 });

function withGrad(inputs: Tensor[], fn: () => Tensor): void {
  tidy(() => {
    const ins = inputs.map((t) => {
      const c = t.contiguousRaw();
      c.requiresGrad = true;
      return c;
    });
    const y = fn.call(ins);
    backward(F.sum(y));
    for (const t of ins) t.grad?.dispose();
  });
}

const cases: [string, () => void][] = [
  ['gemm 512x768x3072', () => tidy(() => void F.matmul(x, w))],
  ['gemm 512x768x50257 tB (LM head)', () => tidy(() => void F.matmul(x, logitsW, { transB: true }))],
  ['attention fwd B4 H12 T128 D64', () => tidy(() => void F.attention(q, k, v, { causal: true }))],
  ['attention fwd+bwd', () => withAttention()],
  ['layerNorm fwd 512x768', () => tidy(() => void F.layerNorm(x, lnw, lnb, 1e-5))],
  ['layerNorm fwd+bwd', () => tidy(() => {
    const xi = x.contiguousRaw();
    xi.requiresGrad = true;
    backward(F.sum(F.layerNorm(xi, lnw, lnb, 1e-5)));
  })],
  ['softmax 6144x128', () => tidy(() => void F.softmax(scores))],
  ['gelu fwd+bwd 512x3072', () => tidy(() => {
    const hi = hidden.contiguousRaw();
    hi.requiresGrad = true;
    backward(F.sum(F.gelu(hi)));
  })],
  ['cross-entropy fwd 512x50257', () => tidy(() => void F.crossEntropy(logits, labels))],
  ['cross-entropy fwd+bwd', () => tidy(() => {
    const li = logits.contiguousRaw();
    li.requiresGrad = true;
    backward(F.crossEntropy(li, labels));
  })],
  ['AdamW step 2.36M params', () => opt.step()],
];
const logitsW = randn([V, C], { seed: 12, std: 0.02 });
const hidden = randn([M, 4 * C], { seed: 13 });
function withAttention(): void {
  tidy(() => {
    const [qi, ki, vi] = [q, k, v].map((t) => {
      const c = t.contiguousRaw();
      c.requiresGrad = true;
      return c;
    }) as [Tensor, Tensor, Tensor];
    backward(F.sum(F.attention(qi, ki, vi, { causal: true })));
  });
}
void withGrad;

const bench = new Bench({ time: +values.time!, warmupTime: 100, warmupIterations: 2, iterations: 5 });
for (const [name, fn] of cases) if (!values.only || name.includes(values.only)) bench.add(name, fn);
await bench.run();
for (const t of bench.tasks) {
  const r = t.result as { state: string; latency?: { p50: number; mean: number } };
  if (r.state !== 'completed' || !r.latency) throw new Error(`${t.name}: ${r.state}`);
  process.stdout.write(JSON.stringify({ impl: 'tunekit', name: t.name, ms: r.latency.p50 }) + '\n');
}
