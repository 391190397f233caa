/**
 * The GEMM bound of a GPT-2 training step (bench/train_step.ts): the step's matrix-product work
 * in GFLOP, and our GEMM's rate on this machine, so that a step's speed reads as a share of what
 * the machine's GEMM allows, measured in the same run (issue #19's criterion).
 */
import { randn, tidy, noGrad, ops as F } from 'tunekit';

/**
 * GFLOP of one step's matrix products: GPT-2 with L layers of width C, vocabulary V (LM head
 * tied to wte), a batch of B sequences of T tokens (N = B T rows), no padding.
 *   forward : per layer c_attn 6NC^2 + c_proj 2NC^2 + c_fc 8NC^2 + mlp c_proj 8NC^2 = 24NC^2,
 *             attention QK^T and PV 4BT^2C (every key counted, as dense attention does); LM head 2NCV
 *   backward: the input gradients, the same products again with attention's four (8BT^2C);
 *             full fine-tuning adds every weight gradient (24NC^2 a layer, 2NCV for wte);
 *             LoRA (r on c_attn) skips the first layer's c_attn input gradient (6NC^2: its input,
 *             the frozen embeddings' sum, needs none) and adds the adapters' thin products:
 *             forward xA^T 2NCr and (xA^T)B^T 6NCr; backward dy B 6NCr, dB 6NCr, dA 2NCr, dx 2NCr
 *             (no dx for the first layer)
 */
export function gemmStepGflop(o: { mode: 'lora' | 'full'; B: number; T: number; C: number; L: number; V: number; r: number }): number {
  const { B, T, C, L, V, r } = o;
  const N = B * T;
  const layer = 24 * N * C * C, attn = 4 * B * T * T * C, head = 2 * N * C * V;
  let flop = L * (layer + attn) + head; // forward
  flop += L * (layer + 2 * attn) + head; // input gradients
  if (o.mode === 'full') {
    flop += L * layer + head; // weight gradients
  } else {
    flop -= 6 * N * C * C; // the first layer's c_attn input gradient
    flop += L * (8 * N * C * r + 14 * N * C * r) + (L - 1) * 2 * N * C * r;
  }
  return flop / 1e9;
}

/** Our GEMM's GFLOP/s on a 2048^3 product (f32, or bf16 operands): the best of five calls. */
export function measureGemmGflops(dtype: 'f32' | 'bf16'): number {
  const n = 2048;
  return tidy(() => noGrad(() => {
    const a0 = randn([n, n], { seed: 1 }), b0 = randn([n, n], { seed: 2 });
    const a = dtype === 'bf16' ? a0.castRaw('bf16') : a0, b = dtype === 'bf16' ? b0.castRaw('bf16') : b0;
    // The best call of at least 1.5 s of calls (and 6): a burst from another job on the shared
    // cores can hold a shorter window (five calls, 0.2 s in bf16) below the GEMM's rate for all of
    // it, and the bound with it (once 278 instead of ~428 GFLOP/s: a step at "100%" of its bound).
    let best = Infinity;
    const start = performance.now();
    for (let i = 0; i < 6 || performance.now() - start < 1500; i++) {
      const t0 = performance.now();
      const c = F.matmul(a, b);
      const dt = (performance.now() - t0) / 1000;
      c.dispose();
      if (i > 0) best = Math.min(best, dt); // the first call faults its pages in
    }
    if (a !== a0) a.dispose();
    if (b !== b0) b.dispose();
    return (2 * n * n * n) / best / 1e9;
  }));
}
