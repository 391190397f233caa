/**
 * LoRA on an embedding table (PEFT's lora.Embedding): targeted by name, PEFT's init (A = 0, so
 * the model is unchanged at start), merge == unmerged, trains, and saves PEFT's key names
 * (`lora_embedding_A` [r, num], `lora_embedding_B` [dim, r], no `.weight`).
 */
import { describe, it, expect } from 'vitest';
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import '../../lib/index.js';
import { GPT2, parseGPT2Config } from '../../lib/models/index.js';
import { LoraModel } from '../../lib/peft/lora/model.js';
import { LoraEmbedding } from '../../lib/peft/lora/embedding.js';
import { readAdapterFolderSync } from '../../lib/peft/base/adapter_io.js';
import { manualSeed } from '../../lib/nn/random.js';
import { noGrad, backward } from '../../lib/autograd/tape.js';
import { tidy } from '../../lib/tensor/scope.js';
import { tensor } from '../../lib/tensor/creation.js';
import * as F from '../../lib/autograd/ops.js';
import type { Tensor } from '../../lib/tensor/tensor.js';

function tiny() {
  manualSeed(5);
  const cfg = parseGPT2Config({ model_type: 'gpt2', vocab_size: 50, n_embd: 16, n_layer: 1, n_head: 2, n_positions: 32, resid_pdrop: 0, embd_pdrop: 0, num_labels: 2 });
  return new GPT2(cfg, 'seq_cls').eval();
}
const ids = tensor(new Int32Array([3, 7, 9, 11, 4, 5, 6, 2]), [2, 4]) as Tensor<'i32'>;
const logits = (m: { forward: GPT2['forward'] }) => noGrad(() => m.forward({ inputIds: ids }).logits.toArray());

describe('LoRA on embeddings', () => {
  it('wraps the named table only, starts as the base model, and merges exactly', () => {
    const base = tiny();
    const before = logits(base);
    const lora = new LoraModel(base, { r: 4, lora_alpha: 8, target_modules: ['wte', 'c_attn'] });
    expect(lora.layers.get('transformer.wte')).toBeInstanceOf(LoraEmbedding);
    expect(lora.layers.has('transformer.wpe')).toBe(false);
    logits(lora).forEach((v, i) => expect(v).toBeCloseTo(before[i]!, 6)); // A = 0 at init
    // make the delta non-zero, then merged must equal unmerged
    const emb = lora.layers.get('transformer.wte') as LoraEmbedding;
    emb.adapters.get('default')!.A.fill_(0.01);
    const unmerged = logits(lora);
    lora.merge();
    logits(lora).forEach((v, i) => expect(v).toBeCloseTo(unmerged[i]!, 4));
    lora.unmerge();
    logits(lora).forEach((v, i) => expect(v).toBeCloseTo(unmerged[i]!, 4));
  });

  it('gets gradients and saves PEFT key names', () => {
    const lora = new LoraModel(tiny(), { r: 4, lora_alpha: 8, target_modules: ['wte'] });
    lora.train();
    const emb = lora.layers.get('transformer.wte') as LoraEmbedding;
    tidy(() => backward(F.crossEntropy(lora.forward({ inputIds: ids }).logits, tensor(new Int32Array([0, 1]), [2]) as Tensor<'i32'>)));
    const ad = emb.adapters.get('default')!;
    expect(ad.A.grad).not.toBeNull();
    expect(ad.A.grad!.toArray().some((v) => v !== 0)).toBe(true);
    const dir = mkdtempSync(join(tmpdir(), 'tunekit-loraemb-'));
    lora.saveAdapterSync(dir);
    const { tensors } = readAdapterFolderSync(dir);
    expect(tensors.get('base_model.model.transformer.wte.lora_embedding_A')!.shape).toEqual([4, 50]);
    expect(tensors.get('base_model.model.transformer.wte.lora_embedding_B')!.shape).toEqual([16, 4]);
    const again = LoraModel.fromPretrainedSync(tiny(), dir);
    expect(again.layers.get('transformer.wte')).toBeInstanceOf(LoraEmbedding);
    const a = logits(lora), b = logits(again);
    a.forEach((v, i) => expect(v).toBeCloseTo(b[i]!, 5));
  });
});
