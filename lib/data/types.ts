/**
 * Plain-data types shared by the dataset, example-building and batching code. Nothing here
 * touches tensors: examples are number arrays and batches are Int32Arrays, ready to be handed
 * to the tensor layer.
 */

/**
 * The part of a tokenizer the data pipeline needs. The real tokenizer (Hugging Face
 * `tokenizer.json`) satisfies it; tests use tiny fakes.
 *
 * `maxLength` / `truncationSide` ask for the first ('right', the default: the right end is cut)
 * or last ('left') maxLength ids only; a tokenizer may use them to tokenize just that much of a
 * long text (the real one does) and may also ignore them: callers cut the ids again.
 *
 * @example
 * const tok: TokenizerLike = { encode: (s) => ({ ids: [...s].map((c) => c.charCodeAt(0)) }), eosTokenId: 0 };
 */
export interface TokenizerLike {
  encode(text: string, opts?: { addSpecialTokens?: boolean; maxLength?: number; truncationSide?: 'right' | 'left' }): { ids: number[] };
  eosTokenId?: number;
  bosTokenId?: number;
  padTokenId?: number;
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
