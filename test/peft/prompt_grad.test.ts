/**
 * The gradient of a causal-LM loss with respect to the virtual-token embeddings, through the
 * whole frozen GPT-2 (concat, position embeddings, attention over the virtual tokens, the sliced
 * logits), against central finite differences of the same loss.
 */
import { describe, it, expect } from 'vitest';
import '../../lib/index.js';
import '../../lib/peft/index.js';
import { peftMethodFor } from '../../lib/peft/base/registry.js';
import { backward, noGrad } from '../../lib/autograd/tape.js';
import { tidy } from '../../lib/tensor/scope.js';
import { taskLoss } from '../../lib/train/losses.js';
import { baseModel } from './prompt_helpers.js';
import { ids2d } from '../models/helpers.js';

describe('prompt tuning: d loss / d prompt embeddings', () => {
  it('equals central finite differences (f32, relative error < 3e-2 on the largest entries)', () => {
    const m = peftMethodFor('prompt_tuning').create(baseModel('gpt2_lm'), { num_virtual_tokens: 3, prompt_tuning_init: 'RANDOM' }, 'default');
    m.eval();
    const ids = [[5, 17, 33, 2, 9], [9, 3, 41, 7, 1]];
    const labels = [[-100, -100, 33, 2, 9], [-100, 3, 41, -100, -100]];
    const batch = { inputIds: ids2d(ids), attentionMask: ids2d([[1, 1, 1, 1, 1], [1, 1, 1, 1, 1]]) };
    const lb = { labels: Int32Array.from(labels.flat()), batch: 2, seqLen: 5 } as never;
    const lossOf = () => tidy(() => taskLoss('causal_lm', m.forward(batch), lb).loss.item());
    const [, emb] = m.namedParameters().find(([, p]) => p.requiresGrad)!;
    tidy(() => backward(taskLoss('causal_lm', m.forward(batch), lb).loss));
    const g = emb.grad!.toArray();
    const w = emb.data() as Float32Array;
    // the 8 largest gradient entries, checked by central differences
    const order = [...g.keys()].sort((a, b) => Math.abs(g[b]!) - Math.abs(g[a]!)).slice(0, 8);
    const h = 1e-2;
    for (const i of order) {
      const w0 = w[i]!;
      w[i] = w0 + h;
      const up = noGrad(lossOf);
      w[i] = w0 - h;
      const down = noGrad(lossOf);
      w[i] = w0;
      const fd = (up - down) / (2 * h);
      expect(Math.abs(fd - g[i]!), `entry ${i}: analytic ${g[i]} vs fd ${fd}`).toBeLessThan(3e-2 * Math.abs(g[i]!) + 1e-4);
    }
  });
});
