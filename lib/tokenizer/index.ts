/**
 * Tokenizers: loading Hugging Face tokenizer folders, chat templates, and training a
 * byte-level BPE.
 *
 * @example
 * import { Tokenizer } from './tokenizer/index.js';
 * const tok = await Tokenizer.fromFolder('models/gpt2-tiny');
 * const { inputIds, shape } = tok.encodeBatch(['hello', 'world!'], { padding: 'longest' });
 */
export { Tokenizer } from './tokenizer.js';
export type { Encoding, EncodeOptions, BatchEncodeOptions, BatchEncoding, DecodeOptions } from './tokenizer.js';
export { applyChatTemplate, defaultTemplateBudget, MAX_TEMPLATE_CHARS } from './chat_template.js';
export type { ChatMessage, ChatTemplateOptions, TemplateBudget } from './chat_template.js';
export { validateTokenizerJson, MAX_TOKEN_ID } from './validate.js';
export { planCuts, MAX_UNCUT_UNITS } from './long_text.js';
export { trainByteLevelBpe, saveTrainedBpe, GPT2_PATTERN, BYTE_TO_CHAR } from './bpe_trainer.js';
export type { BpeTrainOptions, TrainedBpe, SaveBpeOptions } from './bpe_trainer.js';
