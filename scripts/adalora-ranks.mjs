// The ranks AdaLoRA kept per layer, from an adapter folder's rank_pattern: printed as a table and
// drawn as an SVG bar chart. Usage: node scripts/adalora-ranks.mjs <adapter_dir> [out.svg]
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const dir = process.argv[2];
const out = process.argv[3] ?? join(dir, 'ranks.svg');
const cfg = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8'));
if (cfg.peft_type !== 'ADALORA') throw new Error(`${dir} is a ${cfg.peft_type} adapter, not ADALORA`);
const pattern = cfg.rank_pattern ?? {};
const rows = Object.entries(pattern).map(([k, mask]) => [k.replace(/^base_model\.model\./, '').replace(/\.lora_E$/, ''), mask.filter(Boolean).length, mask.length]);
if (rows.length === 0) throw new Error('no rank_pattern in the adapter (the allocator has not frozen a pattern yet)');
rows.sort((a, b) => a[0].localeCompare(b[0], 'en', { numeric: true }));
// in/out features from the weights' safetensors header (u64 LE length, then JSON): A [r, in], B [out, r]
const buf = readFileSync(join(dir, 'adapter_model.safetensors'));
const header = JSON.parse(buf.subarray(8, 8 + Number(buf.readBigUInt64LE(0))).toString('utf8'));
const dims = (layer) => {
  const key = (t) => Object.keys(header).find((k) => k.endsWith(`${layer}.${t}`) || k.includes(`${layer}.${t}.`));
  const a = header[key('lora_A')], b = header[key('lora_B')];
  if (!a || !b) throw new Error(`no lora_A/lora_B for ${layer} in adapter_model.safetensors`);
  return { inF: a.shape[1], outF: b.shape[0] };
};
const total = rows.reduce((s, r) => s + r[1], 0);
let kept = 0, lora = 0;
console.log(`| layer | kept rank | of | parameters kept |\n|---|---|---|---|`);
for (const [n, k, r] of rows) {
  const { inF, outF } = dims(n);
  kept += k * (inF + outF + 1);
  lora += cfg.target_r * (inF + outF);
  console.log(`| ${n} | ${k} | ${r} | ${(k * (inF + outF + 1)).toLocaleString('en')} |`);
}
console.log(`total kept ranks ${total} (target_r x layers = ${cfg.target_r * rows.length}); parameters kept ${kept.toLocaleString('en')} (A rows + E + B columns; LoRA r = ${cfg.target_r} on these layers: ${lora.toLocaleString('en')})`);
const W = 760, bh = 16, H = 60 + rows.length * (bh + 4), maxR = Math.max(...rows.map((r) => r[2]));
const x0 = 230, scale = (W - x0 - 40) / maxR;
const bars = rows.map(([n, k, r], i) => {
  const y = 40 + i * (bh + 4);
  return `<text x="${x0 - 8}" y="${y + 12}" text-anchor="end" font-size="11">${n}</text>` +
    `<rect x="${x0}" y="${y}" width="${r * scale}" height="${bh}" fill="#e6e6e6"/>` +
    `<rect x="${x0}" y="${y}" width="${k * scale}" height="${bh}" fill="#1f77b4"/>` +
    `<text x="${x0 + k * scale + 4}" y="${y + 12}" font-size="11">${k}</text>`;
}).join('\n');
writeFileSync(out, `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">
<rect width="100%" height="100%" fill="white"/>
<text x="${W / 2}" y="22" text-anchor="middle" font-size="14">AdaLoRA: ranks kept per layer (blue) of init_r ${maxR} (grey), total ${total}</text>
${bars}
</svg>
`);
console.log(`wrote ${out}`);
