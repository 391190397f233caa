/**
 * The autograd tape. Differentiable ops (ops.ts) call `record` with their inputs, output and
 * whatever their gradient rule needs; `backward` walks the recorded graph in reverse
 * topological order, applying the rules of rules.ts. Leaves with `requiresGrad` accumulate
 * `.grad`; frozen tensors (requiresGrad false, no gradFn) get no gradient computed at all.
 */
import { Tensor, type GradNode } from '../tensor/tensor.js';
import { keep } from '../tensor/scope.js';
import { binary } from '../tensor/kernels.js';
import { full } from '../tensor/creation.js';
import { TunekitError } from '../errors.js';
import type { OpName } from './rules.js';

let gradEnabled = true;

/** Whether ops are recorded for backward right now. */
export function isGradEnabled(): boolean {
  return gradEnabled;
}

/**
 * Runs fn with recording off (evaluation, optimizer updates).
 * @example const logits = noGrad(() => model.forward(ids));
 */
export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

export class Node<S = unknown> implements GradNode {
  constructor(
    readonly op: OpName,
    readonly inputs: readonly (Tensor | null)[],
    public saved: S,
  ) {}
}

/** True when gradients must flow into t (a trainable leaf or the output of a recorded op). */
export function needsGrad(t: Tensor | null | undefined): boolean {
  return !!t && (t.requiresGrad || t.gradFn !== null);
}

/** Records output = op(inputs) if recording is on and any input needs a gradient. */
export function record<S>(op: OpName, inputs: readonly (Tensor | null)[], output: Tensor, saved: S): void {
  if (!gradEnabled) return;
  if (!inputs.some(needsGrad)) return;
  output.gradFn = new Node(op, inputs, saved);
}

/**
 * Hooks called when backward() has accumulated a leaf's gradient for this pass: every gradient
 * flowing into the leaf is summed before its visit (reverse topological order), so `.grad` is
 * final for the pass when a hook runs. PyTorch's register_post_accumulate_grad_hook; data-parallel
 * training (lib/train/distributed/reducer.ts) starts each bucket's all-reduce from them while the
 * rest of the backward pass runs.
 */
const gradReadyHooks = new Map<Tensor, ((leaf: Tensor) => void)[]>();

/**
 * Registers `hook(leaf)` to run each time backward() has accumulated `leaf`'s gradient; returns
 * the function that removes it.
 * @example const remove = registerGradReadyHook(p, (leaf) => console.log(leaf.grad!.numel)); ...; remove();
 */
export function registerGradReadyHook(leaf: Tensor, hook: (leaf: Tensor) => void): () => void {
  const list = gradReadyHooks.get(leaf) ?? [];
  list.push(hook);
  gradReadyHooks.set(leaf, list);
  return () => {
    const now = gradReadyHooks.get(leaf);
    if (!now) return;
    const i = now.indexOf(hook);
    if (i >= 0) now.splice(i, 1);
    if (now.length === 0) gradReadyHooks.delete(leaf);
  };
}

type Rule = (g: Tensor<'f32'>, node: Node, output: Tensor) => readonly (Tensor<'f32'> | null)[];
let ruleTable: Record<string, Rule> | null = null;

/** rules.ts registers its table here (it imports ops that import this file). */
export function installRules(table: Record<string, Rule>): void {
  ruleTable = table;
}

/**
 * Computes gradients of `root` (a scalar unless `gradOutput` is given) with respect to every
 * leaf that requires grad, accumulating into `.grad`.
 * @example
 * const loss = crossEntropy(model.forward(x), y);
 * backward(loss);
 */
export function backward(root: Tensor, gradOutput?: Tensor<'f32'>): void {
  if (!ruleTable) throw new TunekitError('ERR_STATE', 'autograd rules are not loaded (import tunekit, not its files)');
  if (!needsGrad(root)) {
    throw new TunekitError('ERR_VALUE', 'backward(): the tensor does not depend on anything that requires grad');
  }
  if (!gradOutput && root.numel !== 1) {
    throw new TunekitError('ERR_SHAPE', `backward(): expected a scalar loss but received shape [${root.shape}]; pass gradOutput`);
  }
  // Checked here: a mismatched gradOutput would otherwise surface deep in some rule, with the graph
  // half consumed (or, broadcast silently, as a wrong gradient).
  if (gradOutput && !(gradOutput.numel === 1 && root.numel === 1) &&
      (gradOutput.shape.length !== root.shape.length || gradOutput.shape.some((d, i) => d !== root.shape[i]))) {
    throw new TunekitError('ERR_SHAPE', `backward(): expected gradOutput of shape [${root.shape}] (the tensor's) but received [${gradOutput.shape}]`);
  }
  if (gradOutput && gradOutput.dtype !== 'f32') {
    throw new TunekitError('ERR_DTYPE', `backward(): expected an f32 gradOutput but received ${gradOutput.dtype}`);
  }
  // Topological order by iterative DFS over gradFn edges.
  const order: Tensor[] = [];
  const visited = new Set<Tensor>();
  const stack: [Tensor, number][] = [[root, 0]];
  visited.add(root);
  while (stack.length) {
    const top = stack[stack.length - 1]!;
    const [t, i] = top;
    const inputs = t.gradFn ? t.gradFn.inputs : [];
    if (i < inputs.length) {
      top[1]++;
      const child = inputs[i];
      if (child && child.isDisposed && !visited.has(child)) {
        throw new TunekitError('ERR_DISPOSED', `backward(): tensor [${child.shape}] of the graph was disposed before backward ran (a tidy() scope ended?). Call backward inside the scope that built the graph.`);
      }
      if (child && needsGrad(child) && !visited.has(child)) {
        visited.add(child);
        stack.push([child, 0]);
      }
    } else {
      order.push(t);
      stack.pop();
    }
  }
  const table = ruleTable;
  noGradRun(() => {
    const grads = new Map<Tensor, Tensor<'f32'>>();
    grads.set(root, gradOutput ?? full(root.shape, 1, 'f32', root.device));
    for (let k = order.length - 1; k >= 0; k--) {
      const t = order[k]!;
      const g = grads.get(t);
      if (!g) continue;
      grads.delete(t);
      const node = t.gradFn as Node | null;
      if (!node) {
        if (t.requiresGrad) {
          accumulateLeaf(t, g);
          const hooks = gradReadyHooks.get(t);
          if (hooks) for (const hook of [...hooks]) hook(t);
        } else g.dispose();
        continue;
      }
      const rule = table[node.op];
      if (!rule) throw new TunekitError('ERR_STATE', `no gradient rule for op '${node.op}'`);
      // Rules return new tensor objects (views share storage and hold their own reference), so
      // g can always be released here.
      const inGrads = rule(g, node, t);
      node.inputs.forEach((inp, i) => {
        const ig = inGrads[i];
        if (!ig) return;
        if (!inp || !needsGrad(inp)) {
          ig.dispose();
          return;
        }
        const prev = grads.get(inp);
        if (prev) {
          grads.set(inp, binary('add', prev, ig));
          prev.dispose();
          ig.dispose();
        } else {
          grads.set(inp, ig);
        }
      });
      if (g !== gradOutput) g.dispose();
      // The graph below t is consumed: drop references so saved tensors can be freed.
      node.saved = null;
      t.gradFn = null;
    }
  });
}

function accumulateLeaf(t: Tensor, g: Tensor<'f32'>): void {
  if (g.shape.length !== t.shape.length || g.shape.some((d, i) => d !== t.shape[i])) {
    throw new TunekitError('ERR_SHAPE', `gradient of ${t.name ?? 'a leaf'} has shape [${g.shape}] but the tensor is [${t.shape}]`);
  }
  if (!t.grad) {
    if (g.isContiguous) {
      t.grad = keep(g);
    } else {
      t.grad = keep(g.contiguousRaw() as Tensor<'f32'>);
      g.dispose();
    }
    return;
  }
  const sum = binary('add', t.grad, g);
  g.dispose();
  t.grad.dispose();
  t.grad = keep(sum);
}

function noGradRun(fn: () => void): void {
  noGrad(fn);
}
