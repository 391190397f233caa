export { openSafetensors, openCheckpoint, writeSafetensors, writeShardedSafetensors, decodeValues, type RawTensor, type SafetensorsReader } from './safetensors.js';
export { writeFileAtomic, writeFileAtomicSync, writeJsonAtomic, writeJsonAtomicSync } from './atomic.js';
export { prepareOutputDir } from './output_dir.js';
