/**
 * Plain-data types shared by the dataset, example-building and batching code. Nothing here
 * touches tensors: examples are number arrays and batches are Int32Arrays, ready to be handed
 * to the tensor layer.
 */

/**
 * What tunekit needs of a tokenizer: text to ids (the data builders, tunekit serve) and ids to
 * text (generate's `texts` and streamed tokens, tunekit serve), plus its special token ids. One
 * interface for every caller: a tunekit `Tokenizer` satisfies it as it is; tests and users may
 * pass a plain object.
 *
 * `maxLength` / `truncationSide` ask for the first ('right', the default: the right end is cut)
 * or last ('left') maxLength ids only; a tokenizer may use them to tokenize just that much of a
 * long text (the real one does) and may also ignore them: callers cut the ids again.
 * A special token id that is null or absent means the tokenizer has none.
 *
 * @example
 * const tok = await Tokenizer.fromFolder(dir);
 * data.buildClassificationExamples(records, tok, labels);              // the real tokenizer
 * const chars: TokenizerLike = {                                         // or a plain object
 *   encode: (s) => ({ ids: [...s].map((c) => c.charCodeAt(0)) }),
 *   decode: (ids) => String.fromCharCode(...ids),
 *   eosTokenId: 0,
 * };
 */
export interface TokenizerLike {
  encode(text: string, opts?: { addSpecialTokens?: boolean; maxLength?: number; truncationSide?: 'right' | 'left' }): { ids: number[] };
  decode(ids: readonly number[], opts?: { skipSpecialTokens?: boolean }): string;
  eosTokenId?: number | null;
  bosTokenId?: number | null;
  padTokenId?: number | null;
}

/** One chat turn. */
export interface ChatMessage {
  role: string;
  content: string;
}

/** Renders a conversation to text (the tokenizer's chat template lives elsewhere). */
export type ChatRenderer = (messages: ChatMessage[], opts?: { addGenerationPrompt?: boolean }) => string;

/** The record shapes tunekit understands. */
export type RecordFormat = 'text' | 'prompt_completion' | 'alpaca' | 'chat' | 'labelled' | 'preference';

/** A raw record as read from a file (one JSON object / CSV row). */
export type RawRecord = Record<string, unknown>;

/** Where a record came from, for error messages. */
export interface RecordSource {
  file?: string;
  /** 1-based line (JSONL, CSV) or 0-based array index (JSON) of the record. */
  line?: number;
  index?: number;
}

/** Normalised records, one per format. `source` is kept for error messages. */
export interface TextRecord { kind: 'text'; text: string; source?: RecordSource }
export interface PromptCompletionRecord { kind: 'prompt_completion'; prompt: string; completion: string; source?: RecordSource }
export interface ChatRecord { kind: 'chat'; messages: ChatMessage[]; source?: RecordSource }
export interface LabelledRecord { kind: 'labelled'; text: string; label: string | number; source?: RecordSource }
export interface PreferenceRecord { kind: 'preference'; prompt: string; chosen: string; rejected: string; source?: RecordSource }

export type NormalizedRecord =
  | TextRecord
  | PromptCompletionRecord
  | ChatRecord
  | LabelledRecord
  | PreferenceRecord;

/** A causal-LM training example: `labels[i]` is -100 where no loss is taken. */
export interface CausalLmExample {
  inputIds: number[];
  labels: number[];
}

/** A sequence-classification example. */
export interface ClassificationExample {
  inputIds: number[];
  label: number;
}

/** A preference pair, tokenised: prompt ids plus the two completions (for reward / DPO). */
export interface PreferenceExample {
  promptIds: number[];
  chosenIds: number[];
  rejectedIds: number[];
}

export type Example = CausalLmExample | ClassificationExample;

/** A padded batch. Row-major [batch, seqLen]. */
export interface Batch {
  inputIds: Int32Array;
  attentionMask: Int32Array;
  /** Causal LM: [B*T], -100 on padding and prompt tokens. */
  labels?: Int32Array;
  /** Classification: [B]. */
  classLabels?: Int32Array;
  batch: number;
  seqLen: number;
}

/** Label value meaning "no loss here" (PyTorch's CrossEntropyLoss ignore_index). */
export const IGNORE_INDEX = -100;
