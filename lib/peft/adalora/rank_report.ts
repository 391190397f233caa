/**
 * The ranks AdaLoRA kept per layer, as a markdown table and an SVG bar chart, with the parameters
 * they hold beside the count of LoRA r = target_r on the same layers. From a trained model
 * (AdaLoraModel.rankReport(); `tunekit train` prints it and writes ranks.svg in the run folder) or
 * from a PEFT AdaLoRA folder (scripts/adalora-ranks.mjs).
 *
 * @example
 * const report = rankReportFromFolder('runs/spam-adalora/adapter');
 * console.log(rankTable(report));
 * writeFileSync('ranks.svg', rankChartSvg(report));
 */
import { join } from 'node:path';
import { TunekitError } from '../../errors.js';
import { openSafetensors, openSafetensorsSync, type SafetensorsHeaderView } from '../../io/safetensors.js';
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS, readAdapterConfig, readAdapterConfigSync } from '../base/adapter_io.js';

export interface RankRow {
  /** module path, e.g. transformer.h.0.attn.c_attn */
  layer: string;
  /** ranks kept (non-masked singular values) */
  kept: number;
  /** init_r */
  initR: number;
  inFeatures: number;
  outFeatures: number;
}

export interface RankReport {
  targetR: number;
  rows: RankRow[];
  /** kept ranks x (in + out + 1): A rows, E, B columns */
  keptParameters: number;
  /** target_r x (in + out) summed over the layers: LoRA r = target_r's count */
  loraParameters: number;
}

/** A report from per-layer rows (sorted by layer path, numbers in order). */
export function rankReportOf(targetR: number, rows: RankRow[]): RankReport {
  rows.sort((a, b) => a.layer.localeCompare(b.layer, 'en', { numeric: true }));
  return {
    targetR,
    rows,
    keptParameters: rows.reduce((s, r) => s + r.kept * (r.inFeatures + r.outFeatures + 1), 0),
    loraParameters: rows.reduce((s, r) => s + targetR * (r.inFeatures + r.outFeatures), 0),
  };
}

type AdaloraFileConfig = { peft_type: string; target_r?: number; rank_pattern?: Record<string, boolean[]> | null };

/** The folder's rank_pattern, checked (an AdaLoRA folder whose allocator has frozen a pattern). */
function patternOf(dir: string, cfg: AdaloraFileConfig): Record<string, boolean[]> {
  if (cfg.peft_type !== 'ADALORA') throw new TunekitError('ERR_FORMAT', `${dir} holds a ${cfg.peft_type} adapter, not ADALORA`);
  const pattern = cfg.rank_pattern ?? {};
  if (Object.keys(pattern).length === 0) throw new TunekitError('ERR_VALUE', `${join(dir, ADAPTER_CONFIG)} has no rank_pattern: the allocator has not frozen one yet (train past total_step - tfinal)`);
  return pattern;
}

/** The report from the pattern and the weights' header (in/out features of each layer's A and B). */
function reportFromHeader(dir: string, cfg: AdaloraFileConfig, pattern: Record<string, boolean[]>, st: SafetensorsHeaderView): RankReport {
  const rows = Object.entries(pattern).map(([key, keep]) => {
    const layer = key.replace(/^base_model\.model\./, '').replace(/\.lora_E$/, '');
    // PEFT names the tensors <prefix><layer>.lora_A[.<adapter>] (AdaLoRA: no .weight suffix)
    const find = (t: string) => st.names.find((n) => n.endsWith(`${layer}.${t}`) || n.includes(`${layer}.${t}.`));
    const a = find('lora_A'), b = find('lora_B');
    if (!a || !b) throw new TunekitError('ERR_FORMAT', `no lora_A/lora_B for ${layer} in ${join(dir, ADAPTER_WEIGHTS)}`);
    return { layer, kept: keep.filter(Boolean).length, initR: keep.length, inFeatures: st.info(a).shape[1]!, outFeatures: st.info(b).shape[0]! };
  });
  return rankReportOf(cfg.target_r ?? 0, rows);
}

/**
 * The same from a PEFT AdaLoRA folder: rank_pattern from its config, in/out features from its
 * weights' header (no tensor is read), through fs/promises.
 * @example rankTable(await rankReportFromFolder('runs/x/adapter'))
 */
export async function rankReportFromFolder(dir: string): Promise<RankReport> {
  const cfg = (await readAdapterConfig(dir)) as AdaloraFileConfig;
  const pattern = patternOf(dir, cfg);
  const st = await openSafetensors(join(dir, ADAPTER_WEIGHTS));
  try {
    return reportFromHeader(dir, cfg, pattern, st);
  } finally {
    await st.close();
  }
}

/**
 * {@link rankReportFromFolder} with blocking reads.
 * @example rankTable(rankReportFromFolderSync('runs/x/adapter'))
 */
export function rankReportFromFolderSync(dir: string): RankReport {
  const cfg = readAdapterConfigSync(dir) as AdaloraFileConfig;
  const pattern = patternOf(dir, cfg);
  const st = openSafetensorsSync(join(dir, ADAPTER_WEIGHTS));
  try {
    return reportFromHeader(dir, cfg, pattern, st);
  } finally {
    st.close();
  }
}

const fmt = (n: number) => n.toLocaleString('en-US');

/** Markdown table, one row per layer, then the totals beside LoRA's. */
export function rankTable(r: RankReport): string {
  const lines = ['| layer | kept rank | of | parameters kept |', '|---|---|---|---|'];
  for (const row of r.rows) lines.push(`| ${row.layer} | ${row.kept} | ${row.initR} | ${fmt(row.kept * (row.inFeatures + row.outFeatures + 1))} |`);
  const total = r.rows.reduce((s, row) => s + row.kept, 0);
  lines.push(`total kept ranks ${total} (target_r x layers = ${r.targetR * r.rows.length}); parameters kept ${fmt(r.keptParameters)} (A rows + E + B columns; LoRA r = ${r.targetR} on these layers: ${fmt(r.loraParameters)})`);
  return lines.join('\n');
}

/** Horizontal bars: kept ranks (blue) over init_r (grey), one per layer. */
export function rankChartSvg(r: RankReport): string {
  const W = 760, bh = 16, x0 = 230;
  const H = 60 + r.rows.length * (bh + 4);
  const maxR = Math.max(1, ...r.rows.map((row) => row.initR));
  const scale = (W - x0 - 40) / maxR;
  const total = r.rows.reduce((s, row) => s + row.kept, 0);
  const bars = r.rows.map((row, i) => {
    const y = 40 + i * (bh + 4);
    return `<text x="${x0 - 8}" y="${y + 12}" text-anchor="end" font-size="11">${row.layer}</text>` +
      `<rect x="${x0}" y="${y}" width="${row.initR * scale}" height="${bh}" fill="#e6e6e6"/>` +
      `<rect x="${x0}" y="${y}" width="${row.kept * scale}" height="${bh}" fill="#1f77b4"/>` +
      `<text x="${x0 + row.kept * scale + 4}" y="${y + 12}" font-size="11">${row.kept}</text>`;
  }).join('\n');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">
<rect width="100%" height="100%" fill="white"/>
<text x="${W / 2}" y="22" text-anchor="middle" font-size="14">AdaLoRA: ranks kept per layer (blue) of init_r ${maxR} (grey), total ${total}, ${fmt(r.keptParameters)} parameters</text>
${bars}
</svg>
`;
}
