/**
 * Tokenizers: loading Hugging Face tokenizer folders, chat templates, and training a
 * byte-level BPE.
 *
 * @example
 * import { Tokenizer } from './tokenizer/index.js';
 * const tok = Tokenizer.fromFolder('models/gpt2-tiny');
 * const { inputIds, shape } = tok.encodeBatch(['hello', 'world!'], { padding: 'longest' });
 */
export { Tokenizer } from './tokenizer.js';
export type { Encoding, EncodeOptions, BatchEncodeOptions, BatchEncoding, DecodeOptions } from './tokenizer.js';
export { applyChatTemplate } from './chat_template.js';
export type { ChatMessage, ChatTemplateOptions } from './chat_template.js';
export { trainByteLevelBpe, saveTrainedBpe, GPT2_PATTERN, BYTE_TO_CHAR } from './bpe_trainer.js';
export type { BpeTrainOptions, TrainedBpe, SaveBpeOptions } from './bpe_trainer.js';
