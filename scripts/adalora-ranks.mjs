// The ranks AdaLoRA kept per layer, from an adapter folder's rank_pattern: printed as a table (with
// the parameters kept beside LoRA r = target_r's) and drawn as an SVG bar chart (lib/peft/adalora/
// rank_report.ts; `tunekit train` does the same for its own run). Usage:
//   node scripts/adalora-ranks.mjs <adapter_dir> [out.svg]
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { rankReportFromFolder, rankTable, rankChartSvg } from '../dist/index.js';

const dir = process.argv[2];
if (!dir) throw new Error('usage: node scripts/adalora-ranks.mjs <adapter_dir> [out.svg]');
const out = process.argv[3] ?? join(dir, 'ranks.svg');
const report = rankReportFromFolder(dir);
console.log(rankTable(report));
writeFileSync(out, rankChartSvg(report));
console.log(`wrote ${out}`);
