/** AdaLoRA: SVD-form adapters with importance-based rank allocation (registers itself). */
export { AdaLoraModel, type AllocationInfo } from './model.js';
export { AdaLoraLinear, type SvdAdapter } from './layer.js';
export { RankAllocator, budgetSchedule, type AllocatorLayer, type AllocatorOptions, type RankPattern } from './allocator.js';
export { normalizeAdaloraConfig, adaloraScale, type AdaloraConfig } from './config.js';
export { rankReportFromFolder, rankReportOf, rankTable, rankChartSvg, type RankReport, type RankRow } from './rank_report.js';
