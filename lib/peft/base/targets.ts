/**
 * Which modules a PEFT method adapts, with PEFT's matching rules: a list matches a module whose
 * name equals an entry or ends with "." + entry; a string is a full-match regex; 'all-linear'
 * takes every linear layer except the output head. layers_to_transform keeps layer indices,
 * found in module paths as PEFT finds them (layers_pattern names the layer list).
 */
import { TunekitError } from '../../errors.js';
import { Linear, Embedding } from '../../nn/layers.js';
import { NF4Linear } from '../../quant/nf4_linear.js';
import { Conv2d } from '../../nn/conv.js';
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

/** The config fields that select an adapter's modules (those PEFT's check_target_module_exists reads). */
export interface TargetSelection {
  target_modules: TargetSpec;
  layers_to_transform?: number[] | number | null;
  /** the layer list's name(s) in module paths (regexes): 'h' (GPT-2), 'layer' (BERT), 'layers' (Llama) */
  layers_pattern?: string | string[] | null;
}

/**
 * Layer index of a module path, as PEFT finds it: with layers_pattern, the number after the
 * first "<pattern>." segment; without, the first numbered segment after a dotted component.
 * @example layerIndexOf('transformer.h.3.attn.c_attn') // 3
 * @example layerIndexOf('model.layers.1.mlp.experts.0.up', 'layers') // 1
 */
export function layerIndexOf(name: string, layersPattern?: string | string[] | null): number | null {
  const patterns = layersPattern === null || layersPattern === undefined || layersPattern.length === 0 ? null : Array.isArray(layersPattern) ? layersPattern : [layersPattern];
  if (!patterns) {
    // PEFT: re.match(r".*?\.[^.]*\.(?P<idx>\d+)\.", key): lazy, so the first index (not an expert's)
    const m = /^.*?\.[^.]*\.(\d+)\./.exec(name);
    return m ? Number(m[1]) : null;
  }
  for (const p of patterns) {
    // PEFT: re.match(rf"(?:^|.*?\.){pattern}\.(?P<idx>\d+)\.", key); the pattern is grouped here so an alternation stays inside it
    const m = compileUserRegex(`^(?:|.*?\\.)(?:${p})\\.(\\d+)\\.`, 'layers_pattern', p).exec(name);
    if (m) return Number(m[1]);
  }
  return null;
}

/**
 * Whether module `name` is a target of `sel`, by PEFT's rules: a regex string (or 'all-linear')
 * alone decides; a list entry equal to the whole path selects it whatever the layer; a suffix
 * match is kept only in layers_to_transform (when given).
 * @example isTarget('transformer.h.1.attn.c_attn', { target_modules: ['c_attn'], layers_to_transform: [1], layers_pattern: 'h' }) // true
 */
export function isTarget(name: string, sel: TargetSelection): boolean {
  const spec = sel.target_modules;
  if (!Array.isArray(spec)) return matchesTarget(name, spec);
  if (spec.includes(name)) return true;
  if (!spec.some((t) => name.endsWith(`.${t}`))) return false;
  const lt = sel.layers_to_transform;
  if (lt === null || lt === undefined || (Array.isArray(lt) && lt.length === 0)) return true;
  const li = layerIndexOf(name, sel.layers_pattern);
  return li !== null && (Array.isArray(lt) ? lt.includes(li) : lt === li);
}

/** The linear modules of `model` a spec selects, with their parents (to swap them). */
export function findTargets(
  model: Module,
  spec: TargetSpec,
  layersToTransform?: number[] | number | null,
  opts: { allowEmpty?: boolean; embeddings?: boolean; convolutions?: boolean; layersPattern?: string | string[] | null } = {},
): { name: string; parent: Module; child: string; module: Linear }[] {
  const sel: TargetSelection = { target_modules: spec, layers_to_transform: layersToTransform, layers_pattern: opts.layersPattern };
  const out: { name: string; parent: Module; child: string; module: Linear }[] = [];
  for (const [name, parent] of model.namedModules()) {
    for (const [child, m] of parent.children()) {
      const full = name ? `${name}.${child}` : child;
      // a layer already wrapped by a PEFT method keeps its Linear as `base_layer`: not a new target
      // embedding tables are targets only when named explicitly (never by 'all-linear'), as in PEFT
      const isEmbedding = !!opts.embeddings && m instanceof Embedding && spec !== 'all-linear';
      // convolutions likewise: by name only (PEFT's 'all-linear' takes linear layers alone)
      const isConv = !!opts.convolutions && m instanceof Conv2d && spec !== 'all-linear';
      if (!(m instanceof Linear || m instanceof NF4Linear || isEmbedding || isConv) || child === 'base_layer') continue;
      if (!isTarget(full, sel)) continue;
      // an NF4Linear (QLoRA base) has Linear's shape fields (layout 'out_in'): LoRA wraps it alike
      out.push({ name: full, parent, child, module: m as Linear });
    }
  }
  if (out.length === 0 && !opts.allowEmpty) {
    const linears = model.namedModules().filter(([, m]) => m instanceof Linear || m instanceof NF4Linear || (!!opts.convolutions && m instanceof Conv2d)).map(([n]) => n);
    throw new TunekitError('ERR_CONFIG', `target_modules ${JSON.stringify(spec)} matched no ${opts.convolutions ? 'linear or convolution' : 'linear'} layer. The model's linear layers are named like: ${[...new Set(linears.map((n) => n.split('.').pop()))].join(', ')} (e.g. ${linears.slice(0, 3).join(', ')})`);
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
