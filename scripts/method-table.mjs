// Prints the markdown table of runs/<dir>/<method>/seed-<n>/results.json (scripts/compare-methods.sh):
// accuracy and F1 as the mean over seeds with each seed's figure, the rest from the first seed.
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';

const root = process.argv[2] ?? 'runs/compare';
const order = ['head', 'full', 'lora', 'qlora', 'adalora', 'prompt-tuning', 'p-tuning', 'prefix-tuning'];
const names = { head: 'frozen base, head only', full: 'full fine-tuning', lora: 'LoRA', qlora: 'QLoRA (NF4 base)', adalora: 'AdaLoRA', 'prompt-tuning': 'prompt tuning', 'p-tuning': 'P-tuning', 'prefix-tuning': 'prefix tuning' };
const rank = (m) => (order.includes(m) ? order.indexOf(m) : order.length);
const methods = readdirSync(root).filter((d) => existsSync(join(root, d))).sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
const mb = (b) => (b / 2 ** 20).toFixed(0);
const pct = (x) => `${(100 * x).toFixed(2)}%`;
console.log('| method | accuracy (mean; each seed) | F1 macro (mean) | trainable parameters | step time | tokens/s | train time | peak native memory | peak RSS |');
console.log('|---|---|---|---|---|---|---|---|---|');
for (const m of methods) {
  const runs = readdirSync(join(root, m))
    .filter((d) => /^seed-\d+$/.test(d) && existsSync(join(root, m, d, 'results.json')))
    .sort((a, b) => Number(a.slice(5)) - Number(b.slice(5)))
    .map((d) => ({ seed: Number(d.slice(5)), r: JSON.parse(readFileSync(join(root, m, d, 'results.json'), 'utf8')) }));
  if (runs.length === 0) continue;
  const mean = (f) => runs.reduce((s, x) => s + f(x.r), 0) / runs.length;
  const r = runs[0].r;
  const share = (100 * r.trainable_parameters) / r.total_parameters;
  const each = runs.length > 1 ? ` (${runs.map((x) => `${x.seed}: ${pct(x.r.eval.accuracy)}`).join(', ')})` : ` (seed ${runs[0].seed})`;
  console.log(
    `| ${names[m] ?? m} | **${pct(mean((x) => x.eval.accuracy))}**${each} | ${pct(mean((x) => x.eval.f1))} | ${r.trainable_parameters.toLocaleString('en-US')} (${share < 1 ? share.toFixed(3) : share.toFixed(1)}%) | ` +
      `${(1000 * r.step_seconds).toFixed(0)} ms | ${r.tokens_per_second.toFixed(0)} | ${r.train_seconds.toFixed(0)} s | ${mb(r.peak_native_bytes)} MiB | ${r.peak_rss_bytes ? mb(r.peak_rss_bytes) + ' MiB' : '-'} |`,
  );
}
