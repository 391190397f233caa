/** 4-bit NF4 / FP4 weights (bitsandbytes layout), NF4 layers, 4-bit checkpoints. (Merging a QLoRA adapter: peft's mergeQlora.) */
export { NF4Tensor, codebook, dynamicMap, doubleQuantize, relativeError, type QuantType, type QuantizeOptions, type AbsmaxState } from '../tensor/nf4.js';
export { NF4Linear } from './nf4_linear.js';
export { nf4Linear, loraNf4Linear } from '../autograd/nf4_ops.js';
export { quantizeModel, quantizeModelSync, DEFAULT_SKIP, type QuantizeModelOptions, type QuantizeModelReport } from './quantize.js';
export { saveNf4Pretrained, saveNf4PretrainedSync, loadNf4Pretrained, loadNf4PretrainedSync, isNf4Checkpoint, isNf4CheckpointSync, nf4StateTensors, nf4FromState, quantStateBytes } from './checkpoint.js';
