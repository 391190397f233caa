export {
  openSafetensors, openSafetensorsSync, openCheckpoint, openCheckpointSync,
  writeSafetensors, writeSafetensorsSync, writeShardedSafetensors, writeShardedSafetensorsSync, decodeValues,
  type RawTensor, type TensorInfo, type SafetensorsHeaderView, type SafetensorsReader, type SafetensorsReaderSync,
  type OpenCheckpointOptions, type TensorsToWrite, type ShardedWriteOptions,
} from './safetensors.js';
export { writeFileAtomic, writeFileAtomicSync, writeJsonAtomic, writeJsonAtomicSync } from './atomic.js';
export { prepareOutputDir } from './output_dir.js';
