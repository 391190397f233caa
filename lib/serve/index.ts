/**
 * Serving: an OpenAI-compatible server for a base model and many LoRA adapters, with
 * continuous batching across adapters (see server.ts, engine.ts, adapters.ts).
 */
export { TunekitServer } from './server.js';
export { BatchEngine, type SequenceRequest, type SequenceResult, type SequenceHandle, type EngineOptions, type EngineStats } from './engine.js';
export { AdapterSet, type AdapterInfo } from './adapters.js';
export { MultiLoraLinear, RowSlots } from './multi_lora.js';
export { TextStream } from './text_stream.js';
export { ServeConfigSchema, LimitsSchema, parseServeConfig, readServeConfigFile, isLoopbackHost, type ServeConfig, type ServeLimits } from './config.js';
export { HttpError, errorBody, toHttpError } from './openai_errors.js';
