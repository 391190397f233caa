/**
 * Which modules a PEFT method adapts, with PEFT's matching rules: a list matches a module whose
 * name equals an entry or ends with "." + entry; a string is a full-match regex; 'all-linear'
 * takes every linear layer except the output head. layers_to_transform keeps layer indices.
 */
import { TunekitError } from '../../errors.js';
import { Linear, Embedding } from '../../nn/layers.js';
import { NF4Linear } from '../../quant/nf4_linear.js';
import type { Module } from '../../nn/module.js';

export type TargetSpec = string[] | string;

// the output layers PEFT leaves out of 'all-linear' (BERT's pooler.dense is kept, as PEFT does)
const HEAD_NAMES = /(^|\.)(lm_head|score|classifier|qa_outputs)$/;

/** A user's regex (target_modules, pattern keys) compiled, or ERR_CONFIG naming the field (not a raw SyntaxError). */
export function compileUserRegex(source: string, field: string, userText: string = source): RegExp {
  try {
    return new RegExp(source);
  } catch (e) {
    throw new TunekitError('ERR_CONFIG', `${field}: expected a valid regular expression but received ${JSON.stringify(userText)} (${(e as Error).message})`);
  }
}

export function matchesTarget(name: string, spec: TargetSpec): boolean {
  if (Array.isArray(spec)) return spec.some((t) => name === t || name.endsWith(`.${t}`));
  if (spec === 'all-linear') return !HEAD_NAMES.test(name);
  return compileUserRegex(`^(?:${spec})$`, 'target_modules', spec).test(name);
}

/** Layer index of a module path ("transformer.h.3.attn.c_attn" -> 3), or null. */
export function layerIndexOf(name: string): number | null {
  const m = /\.(?:h|layer|layers|blocks)\.(\d+)\./.exec(`.${name}.`);
  return m ? Number(m[1]) : null;
}

/** The linear modules of `model` a spec selects, with their parents (to swap them). */
export function findTargets(
  model: Module,
  spec: TargetSpec,
  layersToTransform?: number[] | number | null,
  opts: { allowEmpty?: boolean; embeddings?: boolean } = {},
): { name: string; parent: Module; child: string; module: Linear }[] {
  const layers = layersToTransform === undefined || layersToTransform === null ? null : new Set(Array.isArray(layersToTransform) ? layersToTransform : [layersToTransform]);
  const out: { name: string; parent: Module; child: string; module: Linear }[] = [];
  for (const [name, parent] of model.namedModules()) {
    for (const [child, m] of parent.children()) {
      const full = name ? `${name}.${child}` : child;
      // a layer already wrapped by a PEFT method keeps its Linear as `base_layer`: not a new target
      // embedding tables are targets only when named explicitly (never by 'all-linear'), as in PEFT
      const isEmbedding = !!opts.embeddings && m instanceof Embedding && spec !== 'all-linear';
      if (!(m instanceof Linear || m instanceof NF4Linear || isEmbedding) || child === 'base_layer') continue;
      if (!matchesTarget(full, spec)) continue;
      if (layers) {
        const li = layerIndexOf(full);
        if (li === null || !layers.has(li)) continue;
      }
      // an NF4Linear (QLoRA base) has Linear's shape fields (layout 'out_in'): LoRA wraps it alike
      out.push({ name: full, parent, child, module: m as Linear });
    }
  }
  if (out.length === 0 && !opts.allowEmpty) {
    const linears = model.namedModules().filter(([, m]) => m instanceof Linear || m instanceof NF4Linear).map(([n]) => n);
    throw new TunekitError('ERR_CONFIG', `target_modules ${JSON.stringify(spec)} matched no linear layer. The model's linear layers are named like: ${[...new Set(linears.map((n) => n.split('.').pop()))].join(', ')} (e.g. ${linears.slice(0, 3).join(', ')})`);
  }
  return out;
}

/** Per-module override from a PEFT rank_pattern / alpha_pattern (keys are regexes or suffixes). */
export function patternValue(name: string, pattern: Record<string, number> | undefined, fallback: number): number {
  if (!pattern) return fallback;
  for (const [key, v] of Object.entries(pattern)) {
    // PEFT matches pattern keys as `(.*\.)?(key)$` against the module path
    if (name === key || compileUserRegex(`^(.*\\.)?(${key})$`, 'rank_pattern/alpha_pattern key', key).test(name)) return v;
  }
  return fallback;
}
