/** ADALORA: SVD-form adapters with importance-based rank allocation; registers the method (`adalora` in tunekit configs) with its schema. */
import { registerPeftMethod } from '../base/registry.js';
import { AdaLoraModel } from './model.js';
import { AdaloraSchema } from './config.js';

registerPeftMethod({
  peftType: 'ADALORA',
  name: 'adalora',
  schema: AdaloraSchema,
  create: (model, config, adapterName) => new AdaLoraModel(model, config, adapterName),
  fromPretrained: (model, dir, adapterName) => AdaLoraModel.fromPretrained(model, dir, adapterName),
  fromPretrainedSync: (model, dir, adapterName) => AdaLoraModel.fromPretrainedSync(model, dir, adapterName),
});

export { AdaLoraModel, type AllocationInfo, type CompactLoraSummary } from './model.js';
export { AdaLoraLinear, type SvdAdapter } from './layer.js';
export { RankAllocator, budgetSchedule, type AllocatorLayer, type AllocatorOptions, type RankPattern } from './allocator.js';
export { AdaloraSchema, parseAdaloraConfig, normalizeAdaloraConfig, adaloraScale, checkSchedule, type AdaloraConfig, type AdaloraConfigInput } from './config.js';
export { rankReportFromFolder, rankReportFromFolderSync, rankReportOf, rankTable, rankChartSvg, type RankReport, type RankRow } from './rank_report.js';
