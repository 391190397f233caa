/**
 * Every gradient rule, in one table. A rule gets the output gradient g, the tape node (inputs
 * and saved values) and the output, and returns one gradient per input (null where none is
 * needed). Rules run with recording off and must return new tensor objects (never g itself).
 */
import { Tensor, contiguousStrides, numelOf } from '../tensor/tensor.js';
import * as K from '../tensor/kernels.js';
import { zeros, full } from '../tensor/creation.js';
import { installRules, needsGrad, type Node } from './tape.js';
import { nf4LinearBackward, loraNf4LinearBackward } from './nf4_ops.js';
import { packedParts } from './ops.js';
import { conv2dBackward, batchNormBackward, maxPool2dBackward, avgPool2dBackward, adaptiveAvgPool2dBackward, loraConv2dBackward } from './vision_ops.js';

type F32 = Tensor<'f32'>;
type Rule = (g: F32, node: Node<any>, out: Tensor) => readonly (F32 | null)[];

const want = (node: Node, i: number): boolean => needsGrad(node.inputs[i]);

/** g broadcast back to `shape` after a reduction over `dim` (or all dims). */
function expandTo(g: F32, shape: readonly number[], dim: number | null): F32 {
  const strides = dim === null ? shape.map(() => 0) : shape.map((_, i) => (i === dim ? 0 : contiguousStrides(shape.filter((__, j) => j !== dim))[i < dim ? i : i - 1]!));
  const gc = g.contiguousRaw();
  const out = Tensor.empty(shape, 'f32', false, g.device);
  K.run('copyStrided', { src: gc, dst: out, elemSize: 4, shape: [...shape], strides });
  gc.dispose();
  return out;
}

function unaryRule(op: K.UnaryOp): Rule {
  return (g, node, out) => [K.unaryBackward(op, node.inputs[0]!, out, g, node.saved.param)];
}

const scaleBy = (t: F32, s: number): F32 => K.unary('mul_scalar', t, s);

/**
 * maximum (sign +1) / minimum (sign -1). With s = g * sign(a - b) (abs's backward; sign(0) = 0):
 * d max / da = (g + s) / 2 and d max / db = (g - s) / 2, i.e. g to the larger operand and g / 2 to
 * each at a tie, as torch; minimum swaps the two. Exact in f32 (each element is g, g / 2 or 0).
 */
function extremumRule(sign: 1 | -1): Rule {
  return (g, node) => {
    const [a, b] = node.inputs as [Tensor, Tensor];
    const d = K.binary('sub', a, b);
    const s = K.unaryBackward('abs', d, d, g);
    const hi = K.binary('add', g, s), lo = K.binary('sub', g, s);
    const toA = sign > 0 ? hi : lo, toB = sign > 0 ? lo : hi;
    const res: (F32 | null)[] = [null, null];
    if (want(node, 0)) { const t = scaleBy(toA, 0.5); res[0] = K.sumToShape(t, a.shape); t.dispose(); }
    if (want(node, 1)) { const t = scaleBy(toB, 0.5); res[1] = K.sumToShape(t, b.shape); t.dispose(); }
    for (const t of [d, s, hi, lo]) t.dispose();
    return res;
  };
}

export const GRAD_RULES = {
  add: (g, node) => [want(node, 0) ? K.sumToShape(g, node.inputs[0]!.shape) : null, want(node, 1) ? K.sumToShape(g, node.inputs[1]!.shape) : null],
  sub: (g, node) => {
    let gb: F32 | null = null;
    if (want(node, 1)) {
      const n = K.unary('neg', g);
      gb = K.sumToShape(n, node.inputs[1]!.shape);
      n.dispose();
    }
    return [want(node, 0) ? K.sumToShape(g, node.inputs[0]!.shape) : null, gb];
  },
  mul: (g, node) => {
    const [a, b] = node.inputs as [Tensor, Tensor];
    const res: (F32 | null)[] = [null, null];
    if (want(node, 0)) { const t = K.binary('mul', g, b); res[0] = K.sumToShape(t, a.shape); t.dispose(); }
    if (want(node, 1)) { const t = K.binary('mul', g, a); res[1] = K.sumToShape(t, b.shape); t.dispose(); }
    return res;
  },
  div: (g, node) => {
    const [a, b] = node.inputs as [Tensor, Tensor];
    const res: (F32 | null)[] = [null, null];
    if (want(node, 0)) { const t = K.binary('div', g, b); res[0] = K.sumToShape(t, a.shape); t.dispose(); }
    if (want(node, 1)) {
      // d(a/b)/db = -a / b^2
      const q = K.binary('div', a, b), t1 = K.binary('div', q, b), t2 = K.binary('mul', g, t1), t3 = K.unary('neg', t2);
      res[1] = K.sumToShape(t3, b.shape);
      for (const t of [q, t1, t2, t3]) t.dispose();
    }
    return res;
  },
  maximum: extremumRule(1),
  minimum: extremumRule(-1),
  neg: unaryRule('neg'),
  exp: unaryRule('exp'),
  log: unaryRule('log'),
  sqrt: unaryRule('sqrt'),
  rsqrt: unaryRule('rsqrt'),
  abs: unaryRule('abs'),
  tanh: unaryRule('tanh'),
  sigmoid: unaryRule('sigmoid'),
  relu: unaryRule('relu'),
  gelu_tanh: unaryRule('gelu_tanh'),
  gelu_erf: unaryRule('gelu_erf'),
  silu: unaryRule('silu'),
  square: unaryRule('square'),
  mul_scalar: unaryRule('mul_scalar'),
  add_scalar: unaryRule('add_scalar'),
  pow_scalar: unaryRule('pow_scalar'),

  sum: (g, node) => {
    const x = node.inputs[0]!;
    const { dim, mean } = node.saved as { dim: number | null; mean: boolean };
    const e = expandTo(g, x.shape, dim);
    if (!mean) return [e];
    const n = dim === null ? x.numel : x.shape[dim]!;
    const r = scaleBy(e, 1 / n);
    e.dispose();
    return [r];
  },

  reshape: (g, node) => {
    const gc = g.contiguousRaw();
    const r = gc.viewAs(node.saved.shape, contiguousStrides(node.saved.shape), gc.offset);
    gc.dispose();
    return [r as F32];
  },
  permute: (g, node) => {
    const dims: number[] = node.saved.dims;
    const inv = new Array<number>(dims.length);
    dims.forEach((d, i) => (inv[d] = i));
    return [g.viewAs(inv.map((i) => g.shape[i]!), inv.map((i) => g.strides[i]!), g.offset) as F32];
  },
  slice: (g, node) => {
    const { dim, start, shape } = node.saved as { dim: number; start: number; shape: number[] };
    const out = zeros(shape, 'f32', g.device);
    const gc = g.contiguousRaw();
    const outer = numelOf(shape.slice(0, dim)), inner = numelOf(shape.slice(dim + 1));
    const rowBytes = g.shape[dim]! * inner * 4;
    const dst = out.viewAs([out.numel - start * inner], [1], start * inner);
    K.run('copyRows', { src: gc, dst, rows: outer, rowBytes, srcStride: rowBytes, dstStride: shape[dim]! * inner * 4 });
    dst.dispose();
    gc.dispose();
    return [out];
  },
  identity: (g) => [g.contiguousRaw() as F32],
  concat: (g, node) => {
    const { dim, sizes } = node.saved as { dim: number; sizes: number[] };
    let at = 0;
    return sizes.map((n, i) => {
      const s = at;
      at += n;
      if (!want(node, i)) return null;
      const view = g.viewAs(g.shape.map((v, j) => (j === dim ? n : v)), g.strides, g.offset + s * g.strides[dim]!);
      const c = view.contiguousRaw() as F32;
      view.dispose();
      return c;
    });
  },
  cast: (g) => [g.contiguousRaw() as F32],

  matmul: (g, node) => {
    const [a, b] = node.inputs as [Tensor, Tensor];
    const { transA, transB, bf16 } = node.saved as { transA: boolean; transB: boolean; bf16: boolean };
    const res: (F32 | null)[] = [null, null];
    if (b.ndim === 2 && !transA) {
      // a [..., M, K] flattened to [R, K]; b [K, N] (or [N, K] when transB); g [R, N]
      const Kd = a.shape[a.ndim - 1]!, R = a.numel / Kd, N = g.shape[g.ndim - 1]!;
      const g2 = g.contiguousRaw(); const g2v = g2.viewAs([R, N], [N, 1], g2.offset);
      if (want(node, 0)) {
        const da = bf16 ? K.gemmBf16Weight(g2v, b, { transB: !transB }) : K.gemm(g2v, b, { transB: !transB }); // [R, K]
        res[0] = da.viewAs(a.shape, contiguousStrides(a.shape), 0) as F32;
        da.dispose();
      }
      if (want(node, 1)) {
        const ac = a.contiguousRaw(); const a2 = ac.viewAs([R, Kd], [Kd, 1], ac.offset);
        // a weight's gradient goes through bf16 under bf16 compute (as its products did)
        const gemmB = bf16 ? K.gemmBf16Grad : K.gemm;
        res[1] = transB ? gemmB(g2v, a2, { transA: true }) : gemmB(a2, g2v, { transA: true });
        ac.dispose(); a2.dispose();
      }
      g2.dispose(); g2v.dispose();
      return res;
    }
    // batched or plain 2-D: dA = g op(B)^T (arranged for transA), dB likewise
    const nb = a.ndim === 2 ? 0 : numelOf(a.shape.slice(0, -2));
    const as3 = (t: Tensor) => {
      const c = t.contiguousRaw();
      const sh = nb ? [nb, t.shape[t.ndim - 2]!, t.shape[t.ndim - 1]!] : [t.shape[0]!, t.shape[1]!];
      const v = c.viewAs(sh, contiguousStrides(sh), c.offset);
      c.dispose();
      return v;
    };
    const A = as3(a), B = as3(b), G = as3(g);
    if (want(node, 0)) {
      const da = transA ? K.gemm(B, G, { transA: transB, transB: true }) : K.gemm(G, B, { transB: !transB });
      res[0] = da.viewAs(a.shape, contiguousStrides(a.shape), 0) as F32;
      da.dispose();
    }
    if (want(node, 1)) {
      const db = transB ? K.gemm(G, A, { transA: true, transB: transA }) : K.gemm(A, G, { transA: !transA });
      res[1] = db.viewAs(b.shape, contiguousStrides(b.shape), 0) as F32;
      db.dispose();
    }
    A.dispose(); B.dispose(); G.dispose();
    return res;
  },

  linear: (g, node) => {
    const [x, w, bias] = node.inputs as [Tensor, Tensor, Tensor | null];
    const { wInOut, bf16 } = node.saved as { wInOut: boolean; bf16: boolean };
    const outF = g.shape[g.ndim - 1]!, inF = x.shape[x.ndim - 1]!, M = x.numel / inF;
    const gc = g.contiguousRaw(); const g2 = gc.viewAs([M, outF], [outF, 1], gc.offset);
    const res: (F32 | null)[] = [null, null, null];
    if (want(node, 0)) {
      const dx = bf16 ? K.gemmBf16Weight(g2, w, { transB: wInOut }) : K.gemm(g2, w, { transB: wInOut }); // [M, in]
      res[0] = dx.viewAs(x.shape, contiguousStrides(x.shape), 0) as F32;
      dx.dispose();
    }
    if (want(node, 1)) {
      const xc = x.contiguousRaw(); const x2 = xc.viewAs([M, inF], [inF, 1], xc.offset);
      // under bf16 compute the weight's gradient runs on the bf16 GEMM too (autocast's x^T dy)
      const gemmW = bf16 ? K.gemmBf16Grad : K.gemm;
      res[1] = wInOut ? gemmW(x2, g2, { transA: true }) : gemmW(g2, x2, { transA: true });
      xc.dispose(); x2.dispose();
    }
    if (bias && want(node, 2)) {
      const s = K.reduce('sum', g2, 0);
      res[2] = s.viewAs(bias.shape, contiguousStrides(bias.shape), 0) as F32;
      s.dispose();
    }
    gc.dispose(); g2.dispose();
    return res;
  },

  loraLinear: (g, node) => {
    const [, w, bias, a, b] = node.inputs as [Tensor, Tensor, Tensor | null, Tensor, Tensor];
    const s = node.saved as { xc: Tensor; xa: Tensor; mask: Tensor | null; p: number; scale: number; wInOut: boolean; M: number; inF: number; outF: number; r: number; bf16Base: boolean };
    const gc = g.contiguousRaw();
    const dev = g.device;
    // no dx when the input needs none (the first adapted layer over frozen embeddings): the
    // kernel then skips dy W, the backward's largest product
    const dx = want(node, 0) ? Tensor.empty([s.M, s.inF], 'f32', false, dev) : null;
    const da = Tensor.empty(a.shape, 'f32', false, dev), db = Tensor.empty(b.shape, 'f32', false, dev);
    // bf16 compute: the forward's bf16 copy of the frozen weight (the cache's, not disposed here)
    const wc = s.bf16Base ? K.weightBf16Copy(w) : w.contiguousRaw();
    const ac = a.contiguousRaw(), bc = b.contiguousRaw();
    // dx = dy W + the adapter path's input gradient through the dropout mask (one kernel)
    K.run('loraLinearBackward', { dy: gc, x: s.xc, mask: s.mask, w: wc, a: ac, b: bc, xa: s.xa, dx, da, db,
      M: s.M, inF: s.inF, outF: s.outF, r: s.r, scale: s.scale, wInOut: s.wInOut, p: s.p, ...(s.bf16Base ? { wDtype: 'bf16' as const } : {}) });
    if (!s.bf16Base) wc.dispose();
    ac.dispose(); bc.dispose();
    let dbias: F32 | null = null;
    if (bias && want(node, 2)) {
      const g2 = gc.viewAs([s.M, s.outF], [s.outF, 1], gc.offset);
      dbias = K.reduce('sum', g2, 0);
      g2.dispose();
    }
    gc.dispose();
    const x = node.inputs[0]!;
    const dxv = dx ? dx.viewAs(x.shape, contiguousStrides(x.shape), 0) as F32 : null;
    dx?.dispose();
    // saved activations are no longer needed
    s.xc.dispose(); s.xa.dispose(); s.mask?.dispose();
    return [dxv, null, dbias, want(node, 3) ? da : (da.dispose(), null), want(node, 4) ? db : (db.dispose(), null)];
  },

  // NF4 base weights (lib/autograd/nf4_ops.ts): gradients for the input, bias and adapter only, never W
  nf4Linear: (g, node) => nf4LinearBackward(g, node),
  loraNf4Linear: (g, node) => loraNf4LinearBackward(g, node),

  softmax: (g, node, out) => {
    const cols = out.shape[out.ndim - 1]!;
    const gc = g.contiguousRaw();
    const dx = Tensor.empty(out.shape, 'f32', false, g.device);
    K.run('softmaxBackward', { y: out, dy: gc, dx, rows: out.numel / cols, cols, log: node.saved.log });
    gc.dispose();
    return [dx];
  },

  layerNorm: (g, node) => {
    const [x, w] = node.inputs as [Tensor, Tensor, Tensor];
    const s = node.saved as { xc: Tensor; mean: Tensor; rstd: Tensor; rows: number; C: number };
    const needW = want(node, 1) || want(node, 2);
    const gc = g.contiguousRaw(), wc = w.contiguousRaw();
    const dx = Tensor.empty(x.shape, 'f32', false, g.device);
    const dw = Tensor.empty([s.C], 'f32', false, g.device), db = Tensor.empty([s.C], 'f32', false, g.device);
    K.run('layerNormBackward', { x: s.xc, w: wc, mean: s.mean, rstd: s.rstd, dy: gc, dx, dw, db, rows: s.rows, cols: s.C, needWeightGrad: needW });
    gc.dispose(); wc.dispose(); s.xc.dispose(); s.mean.dispose(); s.rstd.dispose();
    const shapeW = node.inputs[1]!.shape;
    const r1 = want(node, 1) ? (dw.viewAs(shapeW, contiguousStrides(shapeW), 0) as F32) : null;
    const r2 = want(node, 2) ? (db.viewAs(shapeW, contiguousStrides(shapeW), 0) as F32) : null;
    dw.dispose(); db.dispose();
    return [want(node, 0) ? dx : (dx.dispose(), null), r1, r2];
  },

  rmsNorm: (g, node) => {
    const [x, w] = node.inputs as [Tensor, Tensor];
    const s = node.saved as { xc: Tensor; rstd: Tensor; rows: number; C: number };
    const gc = g.contiguousRaw(), wc = w.contiguousRaw();
    const dx = Tensor.empty(x.shape, 'f32', false, g.device), dw = Tensor.empty(w.shape, 'f32', false, g.device);
    K.run('rmsNormBackward', { x: s.xc, w: wc, rstd: s.rstd, dy: gc, dx, dw, rows: s.rows, cols: s.C, needWeightGrad: want(node, 1) });
    gc.dispose(); wc.dispose(); s.xc.dispose(); s.rstd.dispose();
    return [want(node, 0) ? dx : (dx.dispose(), null), want(node, 1) ? dw : (dw.dispose(), null)];
  },

  embedding: (g, node) => {
    const s = node.saved as { ids: Tensor; N: number; C: number };
    const dt = zeros([s.N, s.C], 'f32', g.device);
    const gc = g.contiguousRaw();
    K.run('scatterAddRows', { src: gc, idx: s.ids, dst: dt, n: s.ids.numel, rowSize: s.C, numRows: s.N });
    gc.dispose(); s.ids.dispose();
    return [dt];
  },

  gatherRows: (g, node) => {
    const s = node.saved as { idx: Tensor; R: number; C: number; shape: number[] };
    const dx = zeros(s.shape, 'f32', g.device);
    const gc = g.contiguousRaw();
    K.run('scatterAddRows', { src: gc, idx: s.idx, dst: dx, n: s.idx.numel, rowSize: s.C, numRows: s.R });
    gc.dispose(); s.idx.dispose();
    return [dx];
  },

  dropout: (g, node) => {
    const s = node.saved as { mask: Tensor; p: number };
    const gc = g.contiguousRaw();
    const dx = Tensor.empty(g.shape, 'f32', false, g.device);
    K.run('dropoutBackward', { dy: gc, mask: s.mask, dx, n: g.numel, p: s.p });
    gc.dispose(); s.mask.dispose();
    return [dx];
  },

  crossEntropy: (g, node) => {
    const s = node.saved as { lc: Tensor; yc: Tensor; lse: Tensor; N: number; C: number; count: number; ignoreIndex: number };
    const gv = g.item();
    const dl = full([s.N], s.count > 0 ? gv / s.count : 0, 'f32', g.device);
    const dlogits = Tensor.empty(node.inputs[0]!.shape, 'f32', false, g.device);
    K.run('crossEntropyBackward', { logits: s.lc, labels: s.yc, lse: s.lse, dloss: dl, dlogits, rows: s.N, classes: s.C, ignoreIndex: s.ignoreIndex });
    dl.dispose(); s.lc.dispose(); s.yc.dispose(); s.lse.dispose();
    return [dlogits];
  },

  attention: (g, node, out) => {
    const s = node.saved as { qc: Tensor; kc: Tensor; vc: Tensor; mask: Tensor | null; lse: Tensor; B: number; Hq: number; Hkv: number; Tq: number; Tk: number; D: number; scale: number; causal: boolean };
    const gc = g.contiguousRaw();
    const dev = g.device;
    const dq = Tensor.empty(s.qc.shape, 'f32', false, dev), dk = Tensor.empty(s.kc.shape, 'f32', false, dev), dv = Tensor.empty(s.vc.shape, 'f32', false, dev);
    K.run('attentionBackward', { q: s.qc, k: s.kc, v: s.vc, out, lse: s.lse, dout: gc, dq, dk, dv, keyMask: s.mask,
      B: s.B, Hq: s.Hq, Hkv: s.Hkv, Tq: s.Tq, Tk: s.Tk, D: s.D, scale: s.scale, causal: s.causal });
    gc.dispose(); s.qc.dispose(); s.kc.dispose(); s.vc.dispose(); s.mask?.dispose(); s.lse.dispose();
    return [dq, dk, dv];
  },

  qkvAttention: (g, node) => {
    const s = node.saved as { packed: Tensor; o4: Tensor; lse: Tensor; mask: Tensor | null; B: number; H: number; T: number; D: number; scale: number; causal: boolean };
    const { B, H, T, D } = s;
    const C = H * D, n = B * H * T * D;
    const gc = g.contiguousRaw();
    const g4 = Tensor.empty([B, H, T, D], 'f32', false, g.device);
    K.run('copyStrided', { src: gc, dst: g4, elemSize: 4, shape: [B, H, T, D], strides: [T * C, D, C, 1] });
    gc.dispose();
    const d = Tensor.empty([3, B, H, T, D], 'f32', false, g.device);
    const [q, k, v] = packedParts(s.packed, [B, H, T, D]), [dq, dk, dv] = packedParts(d, [B, H, T, D]);
    K.run('attentionBackward', { q, k, v, out: s.o4, lse: s.lse, dout: g4, dq, dk, dv, keyMask: s.mask, B, Hq: H, Hkv: H, Tq: T, Tk: T, D, scale: s.scale, causal: s.causal });
    for (const t of [q, k, v, dq, dk, dv]) t.dispose();
    g4.dispose(); s.packed.dispose(); s.o4.dispose(); s.lse.dispose(); s.mask?.dispose();
    // packed [3, B, H, T, D] -> [B, T, 3, H, D] = [B, T, 3C]
    const dqkv = Tensor.empty([B, T, 3 * C], 'f32', false, g.device);
    K.run('copyStrided', { src: d, dst: dqkv, elemSize: 4, shape: [B, T, 3, H, D], strides: [H * T * D, D, n, T * D, 1] });
    d.dispose();
    return [dqkv];
  },

  attentionRows: (g, node, out) => {
    const s = node.saved as { qkv: Tensor; offsets: Tensor; mask: Tensor | null; lse: Tensor; N: number; S: number; H: number; D: number; scale: number; causal: boolean; lastQueryOnly: boolean };
    const gc = g.contiguousRaw();
    const dqkv = Tensor.empty(node.inputs[0]!.shape, 'f32', false, g.device);
    K.run('attentionRowsBackward', {
      qkv: s.qkv, offsets: s.offsets, keyMask: s.mask, out, lse: s.lse, dout: gc, dqkv, N: s.N, S: s.S, H: s.H, D: s.D, scale: s.scale, causal: s.causal, lastQueryOnly: s.lastQueryOnly,
    });
    gc.dispose(); s.qkv.dispose(); s.offsets.dispose(); s.mask?.dispose(); s.lse.dispose();
    return [dqkv];
  },

  scatterRows: (g, node) => {
    const s = node.saved as { idx: Tensor; C: number; shape: number[] };
    const gc = g.contiguousRaw();
    const dx = Tensor.empty(s.shape, 'f32', false, g.device);
    K.run('gatherRows', { table: gc, idx: s.idx, out: dx, n: s.idx.numel, rowSize: s.C, numRows: gc.numel / s.C });
    gc.dispose(); s.idx.dispose();
    return [dx];
  },

  rope: (g, node) => {
    const s = node.saved as { positions: Tensor; invFreq: Tensor; B: number; H: number; T: number; D: number; rd: number };
    const gc = g.contiguousRaw(), pc = s.positions.contiguousRaw(), fc = s.invFreq.contiguousRaw();
    const dx = Tensor.empty(g.shape, 'f32', false, g.device);
    K.run('rope', { x: gc, out: dx, positions: pc, invFreq: fc, B: s.B, H: s.H, T: s.T, D: s.D, rotDim: s.rd, inverse: true });
    gc.dispose(); pc.dispose(); fc.dispose();
    return [dx];
  },
  // single-direction LSTM layer (lib/peft/p_tuning/lstm.ts): backward through time, natively
  lstm: (g, node, out) => {
    const [x, wih, whh, bih, bhh] = node.inputs as [Tensor, Tensor, Tensor, Tensor | null, Tensor | null];
    const s = node.saved as { xc: Tensor; wihc: Tensor; whhc: Tensor; gates: Tensor; cell: Tensor; B: number; T: number; inF: number; H: number; reverse: boolean };
    const gc = g.contiguousRaw();
    const dev = g.device;
    const dx = want(node, 0) ? Tensor.empty(x.shape, 'f32', false, dev) : null;
    const dwih = Tensor.empty(wih.shape, 'f32', false, dev), dwhh = Tensor.empty(whh.shape, 'f32', false, dev), db = Tensor.empty([4 * s.H], 'f32', false, dev);
    K.run('lstmBackward', { dy: gc, x: s.xc, wih: s.wihc, whh: s.whhc, y: out, gates: s.gates, cell: s.cell, dx, dwih, dwhh, db,
      B: s.B, T: s.T, inF: s.inF, hidden: s.H, reverse: s.reverse });
    gc.dispose(); s.xc.dispose(); s.wihc.dispose(); s.whhc.dispose(); s.gates.dispose(); s.cell.dispose();
    const dbh = bhh && want(node, 4) ? K.unary('mul_scalar', db, 1) : null;
    return [dx, want(node, 1) ? dwih : (dwih.dispose(), null), want(node, 2) ? dwhh : (dwhh.dispose(), null),
      bih && want(node, 3) ? db : (db.dispose(), null), dbh];
  },

  // image ops (lib/autograd/vision_ops.ts): convolution, batch norm, pooling, NCHW
  conv2d: (g, node) => conv2dBackward(g, node),
  batchNorm2d: (g, node) => batchNormBackward(g, node),
  maxPool2d: (g, node) => maxPool2dBackward(g, node),
  avgPool2d: (g, node) => avgPool2dBackward(g, node),
  adaptiveAvgPool2d: (g, node) => adaptiveAvgPool2dBackward(g, node),
  loraConv2d: (g, node) => loraConv2dBackward(g, node),
} satisfies Record<string, Rule>;

export type OpName = keyof typeof GRAD_RULES;

installRules(GRAD_RULES as Record<string, Rule>);
