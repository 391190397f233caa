/**
 * Loading skips the random fill of weights the checkpoint provides (lib/nn/init.ts): a new head
 * still gets exactly the values of an eager build with the same seed stream, the trunk exactly
 * the checkpoint's, and tied weights are never overwritten.
 */
import { describe, it, expect } from 'vitest';
import '../../lib/index.js';
import { loadPretrainedSync, readConfigSync } from '../../lib/models/loader.js';
import { architectureFor } from '../../lib/models/registry.js';
import { manualSeed, nextSeed } from '../../lib/nn/random.js';
import { withDeferredInit, uniformParam } from '../../lib/nn/init.js';
import { openCheckpointSync } from '../../lib/io/safetensors.js';
import { f32FromRaw } from '../../lib/models/weights.js';
import { tensor } from '../../lib/tensor/creation.js';
import { dir } from './helpers.js';

const arr = (t: { toArray(): ArrayLike<number> }) => Array.from(t.toArray());

describe('deferred initialisation on load', () => {
  it('a new seq_cls head equals the eager build; trunk and tied weights equal the checkpoint', () => {
    const folder = dir('gpt2_lm');
    manualSeed(11);
    const { model, report } = loadPretrainedSync(folder, { task: 'seq_cls', numLabels: 3 });
    expect(report.initialised).toEqual(['score.weight']);
    manualSeed(11);
    const raw = { ...readConfigSync(folder), num_labels: 3 };
    const arch = architectureFor((raw as Record<string, unknown>).model_type as string);
    const eager = arch.build(arch.parseConfig(raw), 'seq_cls');
    const p = new Map(model.namedParameters());
    const e = new Map(eager.namedParameters());
    expect(arr(p.get('score.weight')!)).toEqual(arr(e.get('score.weight')!));
    const ck = openCheckpointSync(folder);
    try {
      const wte = f32FromRaw(ck.readTensor(ck.names.find((n) => n.endsWith('wte.weight'))!));
      expect(arr(p.get('transformer.wte.weight')!)).toEqual(arr(wte));
    } finally {
      ck.close();
    }
    // causal LM: the LM head is tied to wte and absent from the file; it must stay the loaded table
    const { model: lm } = loadPretrainedSync(folder);
    const named = new Map(lm.namedParameters());
    expect(arr(named.get('transformer.wte.weight')!)).toEqual(arr(p.get('transformer.wte.weight')!));
  });

  it('fills only the parameters asked for, with the seeds drawn at construction; no nesting', () => {
    manualSeed(5);
    const eagerA = uniformParam([3, 4], nextSeed(), -1, 1);
    const eagerB = uniformParam([2, 2], nextSeed(), -1, 1);
    manualSeed(5);
    const { value: [a, b], initialise } = withDeferredInit(() => [uniformParam([3, 4], nextSeed(), -1, 1), uniformParam([2, 2], nextSeed(), -1, 1)] as const);
    b.assign(tensor(Float32Array.from([9, 8, 7, 6]), [2, 2])); // "loaded" from a checkpoint
    const loadedB = arr(b);
    initialise([a]);
    expect(arr(a)).toEqual(arr(eagerA));
    expect(arr(b)).toEqual(loadedB);
    expect(arr(eagerB)).not.toEqual(loadedB);
    expect(() => withDeferredInit(() => withDeferredInit(() => 1))).toThrow(/already under way/);
  });
});
