/**
 * Uses of the native SVD on LoRA adapters.
 *
 * `resizeAdapter(model, k)` truncates every layer's update scale * B A to its best rank-k
 * approximation (Eckart-Young) and reports, per layer, the share of the update's energy
 * (sum of squared singular values) that is kept. The SVD of B A is taken without forming the
 * [out, in] product: B = Ub Sb Vb^T and A^T = Ua Sa Va^T (thin, r columns each), then the small
 * core C = Sb Vb^T Va Sa [r, r] = Uc Sc Vc^T gives B A = (Ub Uc) Sc (Ua Vc)^T, so the cost is
 * O((in + out) r^2).
 *
 * @example
 * const report = resizeAdapter(lora, 4);
 * for (const l of report.layers) console.log(l.path, l.rankBefore, '->', l.rankAfter, (l.energyKept * 100).toFixed(1) + '%');
 */
import { tensor } from '../../tensor/creation.js';
import { Module } from '../../nn/module.js';
import { TunekitError } from '../../errors.js';
import type { LoraModel } from './model.js';
import { LoraLinear } from './layer.js';
import { loraScale } from './config.js';
import { svdF64 } from '../../tensor/linalg.js';
export { svdF64 };

/** c [m, n] = op(a) op(b), row-major f64, op = transpose when asked. */
function mm(a: Float64Array, b: Float64Array, m: number, kk: number, n: number, ta = false, tb = false): Float64Array {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let p = 0; p < kk; p++) {
      const av = ta ? a[p * m + i]! : a[i * kk + p]!;
      if (av === 0) continue;
      for (let j = 0; j < n; j++) c[i * n + j] += av * (tb ? b[j * kk + p]! : b[p * n + j]!);
    }
  }
  return c;
}

/**
 * SVD of the product B A (B [out, r], A [r, in]) in factored form: B A = U diag(s) Vt with
 * U [out, p], Vt [p, in], p = min(out, in, r), s descending.
 */
export function lowRankProductSvd(b: Float64Array, a: Float64Array, outF: number, r: number, inF: number): { u: Float64Array; s: Float64Array; vt: Float64Array; p: number } {
  const pb = Math.min(outF, r), pa = Math.min(inF, r);
  const B = svdF64(b, outF, r); // Ub [out, pb], Sb [pb], Vbt [pb, r]
  const At = new Float64Array(inF * r);
  for (let i = 0; i < r; i++) for (let j = 0; j < inF; j++) At[j * r + i] = a[i * inF + j]!;
  const A = svdF64(At, inF, r); // Ua [in, pa], Sa [pa], Vat [pa, r]
  // C = diag(Sb) Vbt Vat^T diag(Sa)  [pb, pa]
  const c = mm(B.vt, A.vt, pb, r, pa, false, true);
  for (let i = 0; i < pb; i++) for (let j = 0; j < pa; j++) c[i * pa + j] *= B.s[i]! * A.s[j]!;
  const C = svdF64(c, pb, pa); // Uc [pb, p], Sc [p], Vct [p, pa]
  const p = Math.min(pb, pa);
  const u = mm(B.u, C.u, outF, pb, p); // [out, p]
  const vt = mm(C.vt, A.u, p, pa, inF, false, true); // Vct Ua^T  [p, in]
  return { u, s: C.s, vt, p };
}

export interface ResizeLayerReport {
  path: string;
  rankBefore: number;
  rankAfter: number;
  /** singular values of scale * B A, descending (before truncation) */
  singularValues: number[];
  /** sum of the kept squared singular values / sum of all (1 for a zero update) */
  energyKept: number;
}

function paramHolder(layer: LoraLinear, dict: 'lora_A' | 'lora_B', adapter: string): Module {
  const d = layer.children().find(([n]) => n === dict)?.[1];
  const h = d?.children().find(([n]) => n === adapter)?.[1];
  if (!h) throw new TunekitError('ERR_STATE', `layer has no ${dict}.${adapter}`);
  return h;
}

/**
 * Truncates every layer of `adapter` (default: the active one) to rank min(k, r) by SVD, in
 * place: the new A, B hold the top-k singular triplets of scale * B A, split evenly
 * (sqrt(s) on each side), rescaled for the new scale alpha / k. The adapter config's r becomes
 * k (rank_pattern records layers that stay below k). Optimizer state for the old tensors is
 * stale afterwards: resize after training, then save.
 * @example const { layers } = resizeAdapter(lora, 4); lora.saveAdapterSync('out/adapter-r4');
 */
export function resizeAdapter(model: LoraModel, k: number, adapter = model.activeAdapter): { layers: ResizeLayerReport[] } {
  if (!Number.isInteger(k) || k < 1) throw new TunekitError('ERR_VALUE', `resizeAdapter: rank must be a positive integer but is ${String(k)}`);
  const cfg = model.adapterConfigs.get(adapter);
  if (!cfg) throw new TunekitError('ERR_VALUE', `no adapter named '${adapter}'`);
  if (cfg.peft_type !== 'LORA') throw new TunekitError('ERR_VALUE', `resizeAdapter works on LoRA adapters, not ${String(cfg.peft_type)} (AdaLoRA: use exportCompactLoraSync)`);
  const layers: ResizeLayerReport[] = [];
  const rankPattern: Record<string, number> = {};
  for (const [path, layer] of model.layers) {
    if (!(layer instanceof LoraLinear)) continue; // embedding adapters are kept as they are
    const ad = layer.adapters.get(adapter);
    if (!ad) continue;
    if (layer.merged.has(adapter)) throw new TunekitError('ERR_STATE', `resizeAdapter: adapter '${adapter}' is merged into ${path}; unmerge first`);
    const r = ad.r, inF = ad.A.shape[1]!, outF = ad.B.shape[0]!;
    const { u, s, vt, p } = lowRankProductSvd(Float64Array.from(ad.B.toTypedArray() as Float32Array), Float64Array.from(ad.A.toTypedArray() as Float32Array), outF, r, inF);
    const sv = Array.from(s, (x) => x * Math.abs(ad.scale));
    const total = sv.reduce((acc, x) => acc + x * x, 0);
    const nk = Math.min(k, r);
    const kept = sv.slice(0, nk).reduce((acc, x) => acc + x * x, 0);
    layers.push({ path, rankBefore: r, rankAfter: nk, singularValues: sv, energyKept: total > 0 ? kept / total : 1 });
    if (nk !== k) rankPattern[path] = nk;
    const rslora = Boolean(cfg.use_rslora);
    const newScale = loraScale(ad.alpha, nk, rslora);
    // scale * (BA)_k = newScale * B' A'  with B' = U_k sqrt(f s_k), A' = sqrt(f s_k) Vt_k, f = scale / newScale
    const f = ad.scale / newScale;
    const A2 = new Float32Array(nk * inF), B2 = new Float32Array(outF * nk);
    for (let i = 0; i < nk; i++) {
      const si = i < p ? s[i]! : 0;
      const root = Math.sqrt(Math.abs(f) * si), sign = f < 0 ? -1 : 1;
      for (let j = 0; j < inF; j++) A2[i * inF + j] = i < p ? root * vt[i * inF + j]! : 0;
      for (let o = 0; o < outF; o++) B2[o * nk + i] = i < p ? sign * root * u[o * p + i]! : 0;
    }
    // the new factors where the old ones were (a GPU's memory when the model was moved there)
    const At = tensor(A2, [nk, inF], 'f32', ad.A.device), Bt = tensor(B2, [outF, nk], 'f32', ad.B.device);
    paramHolder(layer, 'lora_A', adapter).setParam('weight', At);
    paramHolder(layer, 'lora_B', adapter).setParam('weight', Bt);
    ad.A = At;
    ad.B = Bt;
    ad.r = nk;
    ad.scale = newScale;
  }
  if (!layers.length) throw new TunekitError('ERR_VALUE', `adapter '${adapter}' has no layers`);
  cfg.r = k;
  cfg.rank_pattern = rankPattern;
  // the optimizer's parameter list must be rebuilt by the caller; keep trainability consistent
  if (adapter === model.activeAdapter) model.setAdapter(adapter);
  return { layers };
}
