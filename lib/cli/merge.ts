/** `tunekit merge`: fold a LoRA adapter into its base and write a Hugging Face folder. */
import { parseArgs } from 'node:util';
import { existsSync } from 'node:fs';
import { copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import { TunekitError } from '../errors.js';
import { loadPretrained, readConfig, savePretrained } from '../models/loader.js';
import { resolveModelPath } from '../models/builtin.js';
import { readAdapterFolder } from '../peft/base/adapter_io.js';
import { LoraModel } from '../peft/lora/model.js';
import { loadPeftFolder } from '../peft/base/registry.js';
import '../peft/index.js';
import type { Task } from '../models/common.js';
import { quantizeModel } from '../quant/quantize.js';
import { isNf4Checkpoint, loadNf4Pretrained, saveNf4Pretrained } from '../quant/checkpoint.js';
import { mergeQlora, formatMergeReport } from '../peft/qlora/merge.js';
import { readLabelNames } from '../data/labels.js';
import { prepareOutputDir } from '../io/output_dir.js';

const HELP = `Usage: tunekit merge --model <dir|builtin:name> --adapter <dir> --output <dir> [--dtype f32|bf16] [--nf4 [--requantize]]

Merges a LoRA or AdaLoRA adapter (a PEFT folder) into its base model and writes a Hugging Face
folder that transformers loads. The task (and label count) is taken from the adapter's task_type,
the label names from the labels.json tunekit train writes beside the adapter.

QLoRA adapters: with --nf4 (implied when --model is a bitsandbytes 4-bit folder) the base is the
NF4 one the adapter was trained on: the merged weights are dequant(W) + s B A, written dense, and
the base's quantization error is reported (relative Frobenius error per layer and overall,
against the dense weights when --model is dense). --requantize writes the merged model as NF4
(bitsandbytes layout) and reports the error that adds.`;

const TASK_OF: Record<string, Task> = { CAUSAL_LM: 'causal_lm', SEQ_CLS: 'seq_cls', TOKEN_CLS: 'token_cls' };
/** Image models: their adapters are image classification (task_type null in PEFT's files). */
const IMAGE_MODEL_TYPES = ['resnet', 'vit'];

export async function mergeCommand(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { model: { type: 'string' }, adapter: { type: 'string' }, output: { type: 'string' }, dtype: { type: 'string' }, nf4: { type: 'boolean' }, requantize: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } });
  if (values.help) return void console.log(HELP);
  for (const k of ['model', 'adapter', 'output'] as const) if (!values[k]) throw new TunekitError('ERR_CONFIG', `merge: --${k} is required (see tunekit merge --help)`);
  const dtype = (values.dtype ?? 'f32') as 'f32' | 'bf16';
  if (dtype !== 'f32' && dtype !== 'bf16') throw new TunekitError('ERR_CONFIG', `merge: --dtype must be f32 or bf16 but received '${values.dtype}'`);
  const modelDir = resolveModelPath(values.model!);
  const { config, tensors } = await readAdapterFolder(values.adapter!);
  // PEFT writes task_type null for image classification (it has no image task type)
  const task = TASK_OF[String(config.task_type)] ?? (IMAGE_MODEL_TYPES.includes(String((await readConfig(modelDir)).model_type)) ? 'image_cls' : 'causal_lm');
  let numLabels: number | undefined;
  // ResNet's head is classifier.1 (transformers' Sequential(Flatten, Linear))
  for (const [k, t] of tensors) if (/\.(score|classifier)(\.1)?\.weight$/.test(k)) numLabels = t.shape[0];
  // label names written by tunekit train beside the adapter (labels.json); LABEL_i without it
  const labels = readLabelNames(values.adapter!) ?? undefined;
  if (labels && numLabels !== undefined && labels.length !== numLabels) {
    throw new TunekitError('ERR_FORMAT', `merge: ${values.adapter}/labels.json names ${labels.length} labels but the adapter's head has ${numLabels} outputs`);
  }
  prepareOutputDir(values.output!);
  const nf4Base = await isNf4Checkpoint(modelDir);
  if (values.requantize && !values.nf4 && !nf4Base) throw new TunekitError('ERR_CONFIG', 'merge: --requantize needs an NF4 base (--nf4, or a 4-bit --model folder)');
  if (values.nf4 || nf4Base) {
    let model, dense;
    if (nf4Base) model = (await loadNf4Pretrained(modelDir, { task, numLabels, labels })).model;
    else {
      model = (await loadPretrained(modelDir, { task, numLabels, labels })).model;
      dense = (await quantizeModel(model, { keepDense: true })).dense;
    }
    const lora = await LoraModel.fromPretrained(model, values.adapter!);
    const { model: merged, report } = mergeQlora(lora, { reference: dense, requantize: !!values.requantize });
    if (values.requantize) await saveNf4Pretrained(merged, values.output!, { dtype });
    else await savePretrained(merged, values.output!, { dtype });
    console.log(formatMergeReport(report));
  } else {
    const { model } = await loadPretrained(modelDir, { task, numLabels, labels });
    // LoRA and AdaLoRA (its B diag(E) A folds in the same way); prompt methods have no weights to fold into
    const peft = await loadPeftFolder(model, values.adapter!);
    if (!(peft instanceof LoraModel)) throw new TunekitError('ERR_CONFIG', `merge: ${values.adapter} holds a ${String(config.peft_type)} adapter; only LoRA-family adapters (LORA, ADALORA) fold into the weights (prompt methods stay adapters: use them with tunekit generate/eval --adapter)`);
    const merged = peft.mergeAndUnload();
    await savePretrained(merged, values.output!, { dtype });
  }
  for (const f of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'preprocessor_config.json']) {
    if (existsSync(join(modelDir, f))) await copyFile(join(modelDir, f), join(values.output!, f));
  }
  console.log(`merged ${values.adapter} into ${values.model}${values.nf4 || nf4Base ? ' (NF4 base)' : ''} -> ${values.output} (${task}, ${values.requantize ? 'nf4 + ' : ''}${dtype})`);
}
