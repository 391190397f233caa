/**
 * Record formats: detection and normalisation of raw rows into typed records.
 *
 * | format            | fields                                        |
 * |-------------------|-----------------------------------------------|
 * | text              | `text`                                        |
 * | prompt_completion | `prompt`, `completion`                        |
 * | alpaca            | `instruction`, optional `input`, `output`     |
 * | chat              | `messages: [{role, content}]`                 |
 * | labelled          | `text`, `label` (string or integer)           |
 * | preference        | `prompt`, `chosen`, `rejected`                |
 */

import { TunekitError, describe } from '../errors.js';
import { whereIs, type LoadedRecords } from './load.js';
import type { ChatMessage, NormalizedRecord, RawRecord, RecordFormat, RecordSource } from './types.js';

export interface NormalizeOptions {
  /** Force a format instead of detecting it from the first record. */
  format?: RecordFormat;
  /** Field holding the text (default 'text'). */
  textField?: string;
  /** Field holding the label (default 'label'). */
  labelField?: string;
}

/**
 * Guesses the format of one raw record from its fields.
 *
 * @example
 * detectFormat({ prompt: 'Q', completion: 'A' }); // 'prompt_completion'
 */
export function detectFormat(rec: RawRecord, opts: NormalizeOptions = {}): RecordFormat | undefined {
  const textField = opts.textField ?? 'text';
  const labelField = opts.labelField ?? 'label';
  if ('messages' in rec) return 'chat';
  if ('chosen' in rec && 'rejected' in rec) return 'preference';
  if ('instruction' in rec && 'output' in rec) return 'alpaca';
  if ('prompt' in rec && 'completion' in rec) return 'prompt_completion';
  if (textField in rec && labelField in rec) return 'labelled';
  if (textField in rec) return 'text';
  return undefined;
}

/**
 * The Stanford Alpaca prompt (with and without an input), used to turn alpaca records into
 * prompt/completion pairs.
 *
 * @example
 * alpacaPrompt('Add the numbers.', '2 3'); // "Below is an instruction ... ### Response:\n"
 */
export function alpacaPrompt(instruction: string, input?: string): string {
  if (input && input.length > 0) {
    return (
      'Below is an instruction that describes a task, paired with an input that provides further context. ' +
      'Write a response that appropriately completes the request.\n\n' +
      `### Instruction:\n${instruction}\n\n### Input:\n${input}\n\n### Response:\n`
    );
  }
  return (
    'Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n' +
    `### Instruction:\n${instruction}\n\n### Response:\n`
  );
}

function fieldError(where: string, field: string, expected: string, got: unknown): TunekitError {
  return new TunekitError('ERR_FORMAT', `${where}: Expected ${expected} for field "${field}" but received ${got === undefined ? 'nothing (the field is missing)' : describe(got)}`);
}

function str(rec: RawRecord, field: string, where: string, optional = false): string {
  const v = rec[field];
  if (optional && (v === undefined || v === null)) return '';
  if (typeof v !== 'string') throw fieldError(where, field, 'a string', v);
  return v;
}

function normalizeOne(rec: RawRecord, format: RecordFormat, source: RecordSource | undefined, where: string, opts: NormalizeOptions): NormalizedRecord {
  const textField = opts.textField ?? 'text';
  const labelField = opts.labelField ?? 'label';
  switch (format) {
    case 'text':
      return { kind: 'text', text: str(rec, textField, where), source };
    case 'prompt_completion':
      return { kind: 'prompt_completion', prompt: str(rec, 'prompt', where), completion: str(rec, 'completion', where), source };
    case 'alpaca':
      return {
        kind: 'prompt_completion',
        prompt: alpacaPrompt(str(rec, 'instruction', where), str(rec, 'input', where, true)),
        completion: str(rec, 'output', where),
        source,
      };
    case 'chat': {
      const msgs = rec['messages'];
      if (!Array.isArray(msgs) || msgs.length === 0) throw fieldError(where, 'messages', 'a non-empty array of {role, content}', msgs);
      const out: ChatMessage[] = msgs.map((m, i) => {
        if (typeof m !== 'object' || m === null) throw fieldError(where, `messages[${i}]`, 'an object {role, content}', m);
        const { role, content } = m as Record<string, unknown>;
        if (typeof role !== 'string') throw fieldError(where, `messages[${i}].role`, 'a string', role);
        if (typeof content !== 'string') throw fieldError(where, `messages[${i}].content`, 'a string', content);
        return { role, content };
      });
      return { kind: 'chat', messages: out, source };
    }
    case 'labelled': {
      const label = rec[labelField];
      if (typeof label === 'string' ? label.length === 0 : !(typeof label === 'number' && Number.isInteger(label))) {
        throw fieldError(where, labelField, 'a non-empty string or an integer label', label);
      }
      return { kind: 'labelled', text: str(rec, textField, where), label: label as string | number, source };
    }
    case 'preference':
      return {
        kind: 'preference',
        prompt: str(rec, 'prompt', where, true),
        chosen: str(rec, 'chosen', where),
        rejected: str(rec, 'rejected', where),
        source,
      };
    default:
      throw new TunekitError('ERR_VALUE', `Expected one of text, prompt_completion, alpaca, chat, labelled, preference for format but received ${describe(format)}`);
  }
}

/**
 * Turns raw records (from {@link loadRecords} or an array of objects) into typed records.
 * The format is detected from the first record unless given; every record must fit it.
 *
 * @example
 * const loaded = await loadRecords('train.jsonl');
 * const { format, records } = normalizeRecords(loaded);
 */
export function normalizeRecords(
  input: LoadedRecords | RawRecord[],
  opts: NormalizeOptions = {},
): { format: RecordFormat; records: NormalizedRecord[] } {
  const raws = Array.isArray(input) ? input : input.records;
  const sources = Array.isArray(input) ? undefined : input.sources;
  if (raws.length === 0) throw new TunekitError('ERR_FORMAT', 'Expected at least one record but the dataset is empty');
  const format = opts.format ?? detectFormat(raws[0]!, opts);
  if (!format) {
    throw new TunekitError(
      'ERR_FORMAT',
      `${whereIs(sources?.[0], 0)}: could not detect the record format; expected fields such as "${opts.textField ?? 'text'}", ` +
        `"prompt"+"completion", "instruction"+"output", "messages" or "prompt"+"chosen"+"rejected" but received fields ${describe(Object.keys(raws[0]!))}`,
    );
  }
  const records = raws.map((r, i) => normalizeOne(r, format, sources?.[i], whereIs(sources?.[i], i), opts));
  return { format, records };
}
