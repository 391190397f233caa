/**
 * QLoRA: LoRA adapters over a frozen 4-bit (NF4) base. A registry variant of LoRA: `qlora` in
 * tunekit configs, with its own schema (the QLoRA recipe's defaults, double_quant, blocksize);
 * `create` quantizes the base's linear layers (heads and embeddings stay f32) and adds LoRA.
 * Its folders are LoRA's (peft_type "LORA"), so loading goes through LoRA.
 */
import { registerPeftMethod } from '../base/registry.js';
import '../lora/index.js'; // LoRA registers first: this is its variant
import { LoraModel } from '../lora/model.js';
import { quantizeModelSync } from '../../quant/quantize.js';
import { QloraSchema, parseQloraConfig, splitQloraConfig } from './config.js';

registerPeftMethod({
  peftType: 'LORA',
  name: 'qlora',
  variantOf: 'lora',
  schema: QloraSchema,
  create: (model, config, adapterName) => {
    const { quantization, lora } = splitQloraConfig(parseQloraConfig(config));
    // already-quantized layers are left as they are (quantizeModel only replaces dense Linear layers)
    quantizeModelSync(model, quantization);
    return new LoraModel(model, lora, adapterName);
  },
});

export { mergeQlora, formatMergeReport, type MergeReport, type LayerMergeReport, type MergeQloraOptions } from './merge.js';
export { QloraSchema, parseQloraConfig, splitQloraConfig, type QloraConfig, type QloraConfigInput } from './config.js';
