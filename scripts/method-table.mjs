// Prints the markdown table of runs/<dir>/*/results.json (see scripts/compare-methods.sh).
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';

const root = process.argv[2] ?? 'runs/compare';
const order = ['head', 'full', 'lora', 'qlora', 'adalora', 'prompt-tuning', 'p-tuning', 'prefix-tuning'];
const names = { head: 'frozen base, head only', full: 'full fine-tuning', lora: 'LoRA', qlora: 'QLoRA (NF4 base)', adalora: 'AdaLoRA', 'prompt-tuning': 'prompt tuning', 'p-tuning': 'P-tuning', 'prefix-tuning': 'prefix tuning' };
const dirs = readdirSync(root).filter((d) => existsSync(join(root, d, 'results.json'))).sort((a, b) => order.indexOf(a) - order.indexOf(b));
const mb = (b) => (b / 2 ** 20).toFixed(0);
console.log('| method | accuracy | F1 (macro) | trainable parameters | step time | tokens/s | peak native memory | peak RSS |');
console.log('|---|---|---|---|---|---|---|---|');
for (const d of dirs) {
  const r = JSON.parse(readFileSync(join(root, d, 'results.json'), 'utf8'));
  const pct = (100 * r.trainable_parameters / r.total_parameters);
  console.log(`| ${names[d] ?? d} | ${(100 * r.eval.accuracy).toFixed(2)}% | ${(100 * r.eval.f1).toFixed(2)}% | ${r.trainable_parameters.toLocaleString('en-US')} (${pct < 1 ? pct.toFixed(3) : pct.toFixed(1)}%) | ${(1000 * r.step_seconds).toFixed(0)} ms | ${r.tokens_per_second.toFixed(0)} | ${mb(r.peak_native_bytes)} MiB | ${r.peak_rss_bytes ? mb(r.peak_rss_bytes) + ' MiB' : '-'} |`);
}
