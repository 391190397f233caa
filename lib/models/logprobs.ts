/**
 * Log-probabilities of completion tokens under a causal LM, differentiable: per token, and
 * summed per sequence (DPO's logp(y|x)). Prompt and padding positions are masked out; only the
 * rows that predict a completion token go through the log-softmax, so the [B, T, V] logits are
 * never normalised whole.
 */
import { Tensor } from '../tensor/tensor.js';
import { tensor } from '../tensor/creation.js';
import type { Device } from '../tensor/device.js';
import * as F from '../autograd/ops.js';
import { TunekitError } from '../errors.js';
import type { ModelInputs, ModelOutput } from './common.js';

type F32 = Tensor<'f32'>;

/** Anything with a causal-LM forward (a PretrainedModel or a PeftModel). */
export interface CausalForward {
  forward(inputs: ModelInputs): ModelOutput;
}

/** A prompt and the completion scored after it (token ids). */
export interface PromptCompletion {
  promptIds: readonly number[];
  completionIds: readonly number[];
}

/** Right-padded prompt+completion sequences and where their completion tokens are. */
export interface CompletionBatch {
  inputIds: Int32Array;
  attentionMask: Int32Array;
  batch: number;
  seqLen: number;
  /** flat index b*T + t of each position that predicts a completion token (t = token index - 1) */
  positions: Int32Array;
  /** the completion token predicted at each position */
  targets: Int32Array;
  /** the sequence each position belongs to */
  owner: Int32Array;
  /** completion tokens per sequence */
  completionLengths: number[];
}

/**
 * Concatenates prompt and completion per sequence and right-pads them to one length.
 * @example const b = collateCompletions([{ promptIds: [5, 6], completionIds: [7, 2] }], 0);
 */
export function collateCompletions(seqs: readonly PromptCompletion[], padTokenId: number): CompletionBatch {
  if (seqs.length === 0) throw new TunekitError('ERR_VALUE', 'collateCompletions: expected at least one sequence');
  const B = seqs.length;
  const T = Math.max(...seqs.map((s) => s.promptIds.length + s.completionIds.length));
  const inputIds = new Int32Array(B * T).fill(padTokenId);
  const attentionMask = new Int32Array(B * T);
  const pos: number[] = [], tgt: number[] = [], own: number[] = [];
  seqs.forEach((s, b) => {
    const P = s.promptIds.length, C = s.completionIds.length;
    if (P === 0) throw new TunekitError('ERR_VALUE', `collateCompletions: sequence ${b} has an empty prompt; at least one token (e.g. BOS) must precede the completion`);
    s.promptIds.forEach((id, t) => { inputIds[b * T + t] = id; attentionMask[b * T + t] = 1; });
    s.completionIds.forEach((id, j) => {
      inputIds[b * T + P + j] = id;
      attentionMask[b * T + P + j] = 1;
      pos.push(b * T + P + j - 1);
      tgt.push(id);
      own.push(b);
    });
    void C;
  });
  return {
    inputIds, attentionMask, batch: B, seqLen: T, positions: Int32Array.from(pos), targets: Int32Array.from(tgt), owner: Int32Array.from(own),
    completionLengths: seqs.map((s) => s.completionIds.length),
  };
}

/**
 * log softmax(logits[row] / temperature)[target] for chosen rows of logits [..., V] -> [n].
 * @example const lp = gatherLogprobs(out.logits, positions, targets);
 */
export function gatherLogprobs(logits: Tensor, positions: Int32Array, targets: Int32Array, temperature = 1): F32 {
  const V = logits.shape[logits.ndim - 1]!;
  const n = positions.length;
  if (targets.length !== n) throw new TunekitError('ERR_SHAPE', `gatherLogprobs: ${n} positions but ${targets.length} targets`);
  for (const t of targets) if (t < 0 || t >= V) throw new TunekitError('ERR_INDEX', `gatherLogprobs: target token ${t} is outside the vocabulary [0, ${V})`);
  if (n === 0) return tensor(new Float32Array(0), [0], 'f32', logits.device);
  // the indices beside the logits (on a GPU, in its memory)
  const rows = F.gatherRows(F.reshape(logits, [-1, V]), tensor(positions, [n], 'i32', logits.device));
  const lsm = F.logSoftmax(temperature === 1 ? rows : F.scale(rows, 1 / temperature));
  const flatIdx = Int32Array.from(targets, (t, i) => i * V + t);
  return F.reshape(F.gatherRows(F.reshape(lsm, [n * V, 1]), tensor(flatIdx, [n], 'i32', logits.device)), [n]);
}

/**
 * Sums per-position values [n] into their sequences [B] (a [B, n] 0/1 matrix product, so the
 * gradient flows back to every position).
 */
export function sumBySequence(values: Tensor, owner: Int32Array, B: number): F32 {
  const n = owner.length;
  if (n === 0) return tensor(new Float32Array(B), [B], 'f32', values.device);
  const S = new Float32Array(B * n);
  owner.forEach((b, i) => { S[b * n + i] = 1; });
  return F.reshape(F.matmul(tensor(S, [B, n], 'f32', values.device), F.reshape(values, [n, 1])), [B]);
}

/**
 * Summed log-probs of each sequence's completion tokens, differentiable: [B]. Also returns the
 * per-token log-probs [n] and the model output (its hidden states feed PPO's value head).
 * @example
 * const batch = collateCompletions(pairs, pad);
 * const { sums } = completionLogprobs(model, batch); // logp(y | x) per sequence
 */
export function completionLogprobs(model: CausalForward, batch: CompletionBatch, opts: { temperature?: number } = {}): { sums: F32; perToken: F32; output: ModelOutput } {
  // the batch where the model's weights are (a Module's device: on a GPU, in its memory; the CPU for a bare forward)
  const device = (model as { device?: Device }).device ?? 'cpu';
  const inputs: ModelInputs = {
    inputIds: tensor(batch.inputIds, [batch.batch, batch.seqLen], 'i32', device),
    attentionMask: tensor(batch.attentionMask, [batch.batch, batch.seqLen], 'i32', device),
  };
  const output = model.forward(inputs);
  if (output.logits.ndim !== 3) throw new TunekitError('ERR_VALUE', `completionLogprobs: expected a causal LM's [B, T, V] logits but received [${output.logits.shape}]`);
  const perToken = gatherLogprobs(output.logits, batch.positions, batch.targets, opts.temperature ?? 1);
  return { sums: sumBySequence(perToken, batch.owner, batch.batch), perToken, output };
}
