/**
 * A run's data as its config asks, for training and for `tunekit eval` alike: the dataset read
 * and split, the examples of each task (classification, causal LM with chat/packing/truncation,
 * token classification), the label names and the multiple-choice set. One function so that eval
 * sees exactly the examples training evaluated on.
 */
import { TunekitError } from '../errors.js';
import { Tokenizer } from '../tokenizer/index.js';
import { loadDataset } from '../data/dataset.js';
import { loadTaggedRecords, buildTagMap, buildTokenClassificationExamples, splitTagged } from '../data/token_cls.js';
import type { NormalizedRecord } from '../data/types.js';
import { buildLabelMap, requireTwoClasses, type LabelMap } from '../data/labels.js';
import { buildClassificationExamples, buildCausalLmSplit } from '../data/examples.js';
import type { ChoiceSet } from '../data/choices.js';
import { choiceSetFor } from './choice_eval.js';
import type { TrainExample } from './trainer.js';
import type { TrainConfig } from './config.js';

export interface RunData {
  /** empty when only the eval split was asked for */
  train: TrainExample[];
  eval: TrainExample[];
  /** class or tag names (classification tasks), in id order */
  labels?: string[];
  labelMap?: LabelMap;
  /** causal LM with a few fixed answers: scored as multiple choice */
  choices?: ChoiceSet;
  padTokenId: number;
}

/**
 * Reads and prepares the config's dataset. `splits: 'eval'` skips tokenizing the training split
 * (the label map and choice set still come from the training records, as in training).
 *
 * @example
 * const data = await prepareRunData(config, { tokenizer, modelDir, log: console.error });
 */
export async function prepareRunData(
  config: TrainConfig,
  opts: { tokenizer: Tokenizer; modelDir: string; log?: (s: string) => void; splits?: 'both' | 'eval' },
): Promise<RunData> {
  const { tokenizer, modelDir } = opts;
  const log = opts.log ?? (() => undefined);
  const both = (opts.splits ?? 'both') === 'both';
  const d = config.dataset;
  const maxLength = d.max_length;
  const padTokenId = tokenizer.padTokenId ?? tokenizer.eosTokenId ?? 0;

  if (config.task === 'token_cls') {
    // words + one tag per word (fields `tokens` / `tags` unless named)
    if (d.path.startsWith('builtin:')) throw new TunekitError('ERR_CONFIG', `task token_cls needs a file of {tokens, tags} records, not ${d.path}`);
    const fields = {
      wordsField: d.text_field === 'text' ? 'tokens' : d.text_field,
      tagsField: d.label_field === 'label' ? 'tags' : d.label_field,
      format: d.format, onError: d.on_error, invalidUtf8: d.invalid_utf8, warn: log,
    };
    const all = loadTaggedRecords(d.path, fields);
    const split = d.eval.path ? { train: all, eval: loadTaggedRecords(d.eval.path, fields) } : splitTagged(all, d.eval);
    const labels = buildTagMap(split.train);
    requireTwoClasses(split.train.flatMap((r) => r.tags.map(String)), 'tag', `${d.path}'s training words`);
    return {
      train: both ? buildTokenClassificationExamples(split.train, tokenizer, labels, { maxLength }) : [],
      eval: buildTokenClassificationExamples(split.eval, tokenizer, labels, { maxLength }),
      labels,
      labelMap: { kind: 'string', names: labels, numLabels: labels.length },
      padTokenId,
    };
  }

  const data = await loadDataset({
    path: d.path, format: d.format, recordFormat: d.record_format, textField: d.text_field, labelField: d.label_field,
    onError: d.on_error, invalidUtf8: d.invalid_utf8, eval: d.eval,
  });
  if (data.skipped) log(`skipped ${data.skipped} malformed row(s): ${data.skipReasons.slice(0, 3).join('; ')}`);
  for (const w of data.warnings ?? []) log(w);
  if (config.task === 'seq_cls') {
    const labelMap = buildLabelMap(data.train as never);
    requireTwoClasses(data.train.map((r) => String((r as { label?: unknown }).label)), 'label', `${d.path}'s training records`);
    return {
      train: both ? buildClassificationExamples(data.train, tokenizer, labelMap, { maxLength, truncation: d.truncation }) : [],
      eval: buildClassificationExamples(data.eval, tokenizer, labelMap, { maxLength, truncation: d.truncation }),
      labels: labelMap.names,
      labelMap,
      padTokenId,
    };
  }
  return {
    train: both ? causalLmExamplesFor(config, data.train, data.format, tokenizer, modelDir) : [],
    eval: causalLmExamplesFor(config, data.eval, data.format, tokenizer, modelDir),
    choices: choiceSetFor(config, data.train, data.eval, tokenizer, log),
    padTokenId,
  };
}

/**
 * The causal-LM examples of one split as the config asks: chat records through the tokenizer's
 * chat template (tokenizer_config.json), packing, truncation, EOS.
 */
export function causalLmExamplesFor(config: TrainConfig, records: NormalizedRecord[], format: string, tokenizer: Tokenizer, modelDir: string): TrainExample[] {
  const renderChat = tokenizer.chatTemplate
    ? (messages: { role: string; content: string }[], o?: { addGenerationPrompt?: boolean }) =>
        tokenizer.applyChatTemplate(messages, { addGenerationPrompt: o?.addGenerationPrompt ?? false }) as string
    : undefined;
  if (format === 'chat' && !renderChat) throw new TunekitError('ERR_CONFIG', `chat records need a chat_template in ${modelDir}/tokenizer_config.json`);
  const d = config.dataset;
  return buildCausalLmSplit(records, tokenizer, { maxLength: d.max_length, renderChat, addEos: d.add_eos, packing: d.packing, truncation: d.truncation as 'keep_start' | 'keep_end' }); // loadConfig refuses keep_start_and_end for causal_lm
}
