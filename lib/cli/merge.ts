/** `tunekit merge`: fold a LoRA adapter into its base and write a Hugging Face folder. */
import { parseArgs } from 'node:util';
import { copyFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { TunekitError } from '../errors.js';
import { loadPretrained, savePretrained } from '../models/loader.js';
import { resolveModelPath } from '../models/builtin.js';
import { readAdapterFolder } from '../peft/base/adapter_io.js';
import { LoraModel } from '../peft/lora/model.js';
import type { Task } from '../models/common.js';

const HELP = `Usage: tunekit merge --model <dir|builtin:name> --adapter <dir> --output <dir> [--dtype f32|bf16]

Merges a LoRA adapter (a PEFT folder) into its base model and writes a Hugging Face folder that
transformers loads. The task (and label count) is taken from the adapter's task_type.`;

const TASK_OF: Record<string, Task> = { CAUSAL_LM: 'causal_lm', SEQ_CLS: 'seq_cls', TOKEN_CLS: 'token_cls' };

export async function mergeCommand(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { model: { type: 'string' }, adapter: { type: 'string' }, output: { type: 'string' }, dtype: { type: 'string' }, help: { type: 'boolean', short: 'h' } } });
  if (values.help) return void console.log(HELP);
  for (const k of ['model', 'adapter', 'output'] as const) if (!values[k]) throw new TunekitError('ERR_CONFIG', `merge: --${k} is required (see tunekit merge --help)`);
  const dtype = (values.dtype ?? 'f32') as 'f32' | 'bf16';
  if (dtype !== 'f32' && dtype !== 'bf16') throw new TunekitError('ERR_CONFIG', `merge: --dtype must be f32 or bf16 but received '${values.dtype}'`);
  const modelDir = resolveModelPath(values.model!);
  const { config, tensors } = readAdapterFolder(values.adapter!);
  const task = TASK_OF[String(config.task_type)] ?? 'causal_lm';
  let numLabels: number | undefined;
  for (const [k, t] of tensors) if (/\.(score|classifier)\.weight$/.test(k)) numLabels = t.shape[0];
  const { model } = loadPretrained(modelDir, { task, numLabels });
  const lora = LoraModel.fromPretrained(model, values.adapter!);
  const merged = lora.mergeAndUnload();
  savePretrained(merged, values.output!, { dtype });
  for (const f of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json']) {
    if (existsSync(join(modelDir, f))) copyFileSync(join(modelDir, f), join(values.output!, f));
  }
  console.log(`merged ${values.adapter} into ${values.model} -> ${values.output} (${task}, ${dtype})`);
}
