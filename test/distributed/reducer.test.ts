/**
 * The DDP-style gradient reducer and the ranks' arithmetic, in one process against a recording
 * process group (the other ranks' contributions are given): buckets in reverse parameter order
 * with a small first one, each bucket's all-reduce started by gradient hooks while backward is
 * still running, starts in bucket order whatever order the hooks fire in, hooks idle between
 * updates (gradient accumulation), parameters without a gradient sent as zeros, `.grad` the sum
 * over ranks afterwards; shards of a batch and the loss scales that make the ranks' summed
 * gradient the combined batch's. Real ranks over MPI: data_parallel.test.ts.
 */
import { describe, it, expect } from 'vitest';
import '../../lib/index.js';
import * as F from '../../lib/autograd/ops.js';
import { backward } from '../../lib/autograd/tape.js';
import { tidy } from '../../lib/tensor/scope.js';
import { tensor } from '../../lib/tensor/creation.js';
import type { Tensor } from '../../lib/tensor/tensor.js';
import { TunekitError } from '../../lib/errors.js';
import { GradientReducer } from '../../lib/train/distributed/reducer.js';
import { DataParallel } from '../../lib/train/distributed/data_parallel.js';
import type { ProcessGroup, Work } from '../../lib/train/distributed/process_group.js';

interface Started {
  label: string;
  numel: number;
  /** what `probe()` said when the operation started (e.g. whether backward had finished) */
  note: string;
}

/** A process group whose other ranks contribute `peers(label, mine)` to every sum. */
class RecordingGroup implements ProcessGroup {
  readonly localSize = 1;
  readonly backend = 'recording';
  readonly timeoutSeconds = 1;
  readonly started: Started[] = [];
  probe: () => string = () => '';

  constructor(readonly rank: number, readonly size: number, private readonly peers: (label: string, mine: number[]) => number[]) {}

  allreduce(t: Tensor<'f32'> | Tensor<'f64'>, _op: 'sum' | 'max' | 'min' = 'sum', label = ''): Work {
    this.started.push({ label, numel: t.numel, note: this.probe() });
    const data = t.data() as Float32Array | Float64Array;
    const others = this.peers(label, Array.from(data));
    for (let i = 0; i < data.length; i++) data[i] = data[i]! + others[i]!;
    t.storage.markWritten();
    return { wait: () => undefined };
  }
  broadcast(): Work {
    return { wait: () => undefined };
  }
  barrier(): Work {
    return { wait: () => undefined };
  }
  stats() {
    return { ops: this.started.length, bytes: 0, busySeconds: 0 };
  }
  abort(): never {
    throw new Error('abort');
  }
  close(): void {}
}

const param = (values: number[], shape: number[], name: string): Tensor<'f32'> => {
  const t = tensor(values, shape) as Tensor<'f32'>;
  t.requiresGrad = true;
  t.name = name;
  return t;
};
const seq = (n: number, scale = 0.01) => Array.from({ length: n }, (_, i) => ((i % 7) - 3) * scale);

describe('GradientReducer', () => {
  it('puts parameters into buckets in reverse order of registration, the first bucket small', () => {
    const g = new RecordingGroup(0, 2, (_l, m) => m.map(() => 0));
    const a = param(seq(1000), [1000], 'a'), b = param(seq(300_000), [300_000], 'b'), c = param(seq(10), [10], 'c');
    // first bucket closes once it reaches 1 MiB: c (40 B) + b (1.2 MB); then a alone
    const r = new GradientReducer(g, [['a', a], ['b', b], ['c', c]], { firstBucketBytes: 2 ** 20, bucketBytes: 25 * 2 ** 20 });
    expect(r.buckets.map((k) => k.slots.map((s) => s.name))).toEqual([['c', 'b'], ['a']]);
    expect(r.bytesPerUpdate).toBe((1000 + 300_000 + 10) * 4);
    r.dispose();
  });

  it('starts a bucket from the gradient hooks while backward still runs; .grad becomes the sum over ranks', () => {
    // loss = sum((x W1) W2): backward reaches W2 before W1
    const x = tensor([1, 2, 3, 4, 5, 6], [2, 3]);
    const w1 = param(seq(12, 0.1), [3, 4], 'w1'), w2 = param(seq(8, 0.2), [4, 2], 'w2');
    const peer = new Map<string, number[]>();
    const g = new RecordingGroup(0, 2, (label, mine) => peer.get(label) ?? mine.map((v) => v * 10));
    // one parameter per bucket: [w2] then [w1]
    const r = new GradientReducer(g, [['w1', w1], ['w2', w2]], { firstBucketBytes: 4, bucketBytes: 4 });
    expect(r.buckets.map((k) => k.slots[0]!.name)).toEqual(['w2', 'w1']);
    g.probe = () => (w1.grad ? 'w1 has its gradient' : 'w1 not yet');
    // the local gradients, from a pass without the reducer armed (hooks idle)
    tidy(() => backward(F.sum(F.matmul(F.matmul(x, w1), w2))));
    expect(g.started).toHaveLength(0);
    const local1 = Array.from(w1.grad!.toTypedArray()), local2 = Array.from(w2.grad!.toTypedArray());
    w1.grad = null;
    w2.grad = null;

    r.arm();
    tidy(() => backward(F.sum(F.matmul(F.matmul(x, w1), w2))));
    // w2's bucket started inside backward, before w1's gradient existed
    expect(g.started.map((s) => s.note)).toEqual(['w1 not yet', 'w1 has its gradient']);
    const report = r.finish();
    expect(report).toMatchObject({ buckets: 2, startedInBackward: 2 });
    expect(Array.from(w1.grad!.toTypedArray())).toEqual(local1.map((v) => Math.fround(v * 11)));
    expect(Array.from(w2.grad!.toTypedArray())).toEqual(local2.map((v) => Math.fround(v * 11)));
    r.dispose();
  });

  it('starts buckets in index order even when a later bucket fills first, and sends zeros for a parameter without a gradient', () => {
    const x = tensor([1, 2, 3, 4, 5, 6], [2, 3]);
    const w1 = param(seq(12, 0.1), [3, 4], 'w1'), w2 = param(seq(8, 0.2), [4, 2], 'w2');
    const unused = param([1, 2, 3], [3], 'unused');
    const g = new RecordingGroup(1, 2, (_l, mine) => mine.map(() => 1));
    // registration [w2, unused, w1] -> buckets [w1], [unused], [w2]: w2's (bucket 3) fills first,
    // but waits for bucket 1 (w1, last in backward) and bucket 2 (never filled by a hook)
    const r = new GradientReducer(g, [['w2', w2], ['unused', unused], ['w1', w1]], { firstBucketBytes: 4, bucketBytes: 4 });
    g.probe = () => (w1.grad ? 'after w1' : 'before w1');
    r.arm();
    tidy(() => backward(F.sum(F.matmul(F.matmul(x, w1), w2))));
    // w1's hook started bucket 1; bucket 2 (unused) blocks bucket 3 until finish()
    expect(g.started.map((s) => s.label.replace(/ \(.*/, ''))).toEqual(['all-reduce of gradient bucket 1 of 3']);
    const report = r.finish();
    expect(g.started.map((s) => s.label.replace(/ \(.*/, ''))).toEqual([
      'all-reduce of gradient bucket 1 of 3', 'all-reduce of gradient bucket 2 of 3', 'all-reduce of gradient bucket 3 of 3',
    ]);
    expect(report.startedInBackward).toBe(1);
    // zeros from this rank plus the other rank's ones
    expect(Array.from(unused.grad!.toTypedArray())).toEqual([1, 1, 1]);
    expect(() => r.finish()).toThrow(TunekitError);
    r.dispose();
  });
});

describe('DataParallel arithmetic', () => {
  it('shards a global batch contiguously, as evenly as possible, larger parts first', () => {
    const batch = ['a', 'b', 'c', 'd', 'e', 'f', 'g'];
    const parts = [0, 1, 2].map((rank) => new DataParallel(new RecordingGroup(rank, 3, () => [])).shard(batch));
    expect(parts).toEqual([['a', 'b', 'c'], ['d', 'e'], ['f', 'g']]);
    const short = [0, 1, 2].map((rank) => new DataParallel(new RecordingGroup(rank, 3, () => [])).shard(['x', 'y']));
    expect(short).toEqual([['x'], ['y'], []]);
  });

  it('scales each shard by its share of the combined batch, so the summed gradient is the combined batch mean', () => {
    // rank 0 of 2, two micro-batches: rank 0 has 3 and 5 targets, rank 1 has 1 and none (an empty shard)
    const other = [1, 0, 1, 0, 1];
    const dp = new DataParallel(new RecordingGroup(0, 2, () => other));
    const s = dp.stepScales([3, 5], true);
    // micro 0: 3 of 4 targets; micro 1: all 5; each micro-batch weighs 1/2 (grad_accum 2)
    expect(s.loss).toEqual([3 / 4 / 2, 5 / 5 / 2]);
    // extra terms (the same on every rank) count once per micro-batch: split among the ranks with a shard
    expect(s.extra).toEqual([1 / 2 / 2, 1 / 1 / 2]);
    // an objective without counts: every shard weighs the same (DDP's average of the ranks' means)
    const eq = new DataParallel(new RecordingGroup(0, 2, () => [1, 0, 1, 0, 0])).stepScales([1, 1], false);
    expect(eq.loss).toEqual([1 / 2 / 2, 1 / 1 / 2]);
  });
});
