/** The prompt-learning base shared by prompt tuning, P-tuning and prefix tuning. */
export { PromptLearningModel, PromptEncoder, SavedPromptEncoder } from './prompt_model.js';
export { promptLearningShape, promptConfigFor, type PromptLearningConfig, type WithModelFields } from './config.js';
export { PromptTable, Sequential } from './layers.js';
