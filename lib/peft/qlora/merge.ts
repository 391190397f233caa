/**
 * Merging a QLoRA adapter: the base is 4-bit, so the merged model is written dense
 * (W_merged = dequant(W_nf4) + scale * B A, in the layer's source layout, f32 or bf16 on save)
 * and the report says how far the 4-bit base is from the original dense weights (relative
 * Frobenius error per layer and overall; against dequant(W) itself when no dense reference is
 * given, where it is 0). With `requantize`, the merged weights are quantized to NF4 again and
 * the error that adds (against the dense merged weights) is reported too.
 *
 * @example
 * const { model, report } = mergeQlora(loraModel, { reference: denseWeights, requantize: true });
 */
import { TunekitError } from '../../errors.js';
import type { LoraModel } from '../lora/model.js';
import type { PretrainedModel } from '../../models/common.js';
import { Linear } from '../../nn/layers.js';
import type { Module } from '../../nn/module.js';
import { noGrad } from '../../autograd/tape.js';
import * as K from '../../tensor/kernels.js';
import type { Tensor } from '../../tensor/tensor.js';
import { relativeError } from '../../tensor/nf4.js';
import { NF4Linear } from '../../quant/nf4_linear.js';

export interface LayerMergeReport {
  path: string;
  /** ||W_dense - dequant(W_nf4)|| / ||W_dense|| (0 without a dense reference) */
  baseError: number;
  /** ||W_merged - dequant(nf4(W_merged))|| / ||W_merged||, when requantized */
  requantError?: number;
}

export interface MergeReport {
  layers: LayerMergeReport[];
  /** overall relative Frobenius errors (all merged layers pooled) */
  baseError: number;
  requantError?: number;
  /** whether baseError was measured against original dense weights */
  hasReference: boolean;
}

export interface MergeQloraOptions {
  /** module path -> the original dense weight (source layout), e.g. from quantizeModel({ keepDense }) */
  reference?: Map<string, Linear | Tensor>;
  /** quantize the merged weights to NF4 again (same blocksize / double quantization) */
  requantize?: boolean;
}

function parentOf(root: Module, path: string): { parent: Module; child: string } {
  const parts = path.split('.');
  const child = parts.pop()!;
  const pp = parts.join('.');
  const parent = root.namedModules().find(([n]) => n === pp)?.[1];
  if (!parent) throw new TunekitError('ERR_VALUE', `no module '${pp}'`);
  return { parent, child };
}

/**
 * Folds the active adapter of a LoRA model over NF4 layers into dense weights and returns the
 * plain base model (NF4Linear layers with an adapter become dense Linear; with `requantize`
 * they become NF4Linear again, holding the merged weights). The LoraModel must not be used after.
 */
export function mergeQlora(lora: LoraModel, opts: MergeQloraOptions = {}): { model: PretrainedModel; report: MergeReport } {
  const base = lora.base;
  const active = lora.activeAdapter;
  const layers: LayerMergeReport[] = [];
  let bse = 0, bsr = 0, rse = 0, rsr = 0;
  noGrad(() => {
    for (const [path, layer] of lora.layers) {
      const bl = layer.base_layer;
      if (!(bl instanceof NF4Linear)) continue;
      const ad = layer.adapters.get(active);
      // dense in the source layout, then W += s B A ([out,r][r,in], or its transpose for [in,out])
      const W = bl.dequantize('source');
      const rep: LayerMergeReport = { path, baseError: 0 };
      const ref = opts.reference?.get(path);
      if (ref) {
        const rw = ref instanceof Linear ? ref.weight : ref;
        const e = relativeError(rw, W);
        rep.baseError = e.rel;
        bse += e.sqErr;
        bsr += e.sqRef;
      }
      if (ad) {
        if (bl.sourceLayout === 'out_in') K.gemm(ad.B, ad.A, { into: W, beta: 1, alpha: ad.scale });
        else K.gemm(ad.A, ad.B, { transA: true, transB: true, into: W, beta: 1, alpha: ad.scale });
      }
      const lin = new Linear(bl.inFeatures, bl.outFeatures, { bias: bl.bias !== null, layout: bl.sourceLayout, seed: 0 });
      lin.setParam('weight', W);
      if (bl.bias) lin.setParam('bias', bl.bias.clone());
      lin.requiresGrad_(false);
      let replacement: Module = lin;
      if (opts.requantize) {
        const q = NF4Linear.fromLinear(lin, { blocksize: bl.qweight.blocksize, doubleQuant: bl.qweight.doubleQuant, quantType: bl.qweight.quantType });
        const back = q.dequantize('source');
        const e = relativeError(W, back);
        back.dispose();
        rep.requantError = e.rel;
        rse += e.sqErr;
        rsr += e.sqRef;
        W.dispose();
        replacement = q;
      }
      layers.push(rep);
      const { parent, child } = parentOf(base, path);
      parent.replaceChild(child, replacement);
      bl.qweight.dispose();
      for (const a of layer.adapters.values()) {
        a.A.dispose();
        a.B.dispose();
      }
    }
  });
  if (layers.length === 0) throw new TunekitError('ERR_VALUE', 'mergeQlora: the model has no LoRA layer over an NF4 base (use mergeAndUnload for dense bases)');
  if (!opts.requantize) {
    // a dense result is dense throughout: NF4 layers that carry no adapter are dequantized too
    // (a dense folder saves parameters only, and NF4 codes are buffers: they would be lost), and
    // the config no longer describes a 4-bit model (transformers would try to load it as one)
    noGrad(() => {
      for (const [path, m] of base.namedModules()) {
        if (!(m instanceof NF4Linear) || lora.layers.has(path)) continue;
        const { parent, child } = parentOf(base, path);
        const lin = m.toLinear();
        lin.requiresGrad_(false);
        parent.replaceChild(child, lin);
        m.qweight.dispose();
      }
    });
    delete base.config.raw.quantization_config;
  }
  // any dense LoRA layers (e.g. a head) merge the usual way
  for (const [path, layer] of lora.layers) {
    if (layer.base_layer instanceof NF4Linear) continue;
    if (layer.adapters.has(active)) layer.merge(active);
    const { parent, child } = parentOf(base, path);
    parent.replaceChild(child, layer.base_layer);
  }
  lora.layers.clear();
  const report: MergeReport = {
    layers,
    baseError: bsr > 0 ? Math.sqrt(bse / bsr) : 0,
    hasReference: !!opts.reference,
  };
  if (opts.requantize) report.requantError = rsr > 0 ? Math.sqrt(rse / rsr) : 0;
  return { model: base, report };
}

/** One line per layer plus the totals, for the CLI. */
export function formatMergeReport(r: MergeReport): string {
  const pct = (v: number) => `${(v * 100).toFixed(2)}%`;
  const lines = r.layers.map((l) => `  ${l.path}: base ${r.hasReference ? pct(l.baseError) : 'n/a'}${l.requantError !== undefined ? `, requantized ${pct(l.requantError)}` : ''}`);
  lines.push(`overall relative Frobenius error of the NF4 base: ${r.hasReference ? pct(r.baseError) : 'n/a (no dense reference)'}` +
    (r.requantError !== undefined ? `; re-quantizing the merged weights adds ${pct(r.requantError)}` : ''));
  return lines.join('\n');
}
