/**
 * The main job's data, written once for both sides of `tunekit bench --suite mainjob`: the
 * built-in SpamAssassin split (the same cleaned bodies and the same fixed 80/20 split that
 * `npx tunekit train` uses) as train.jsonl / eval.jsonl of {text, label}, and a tunekit config
 * that is the main job's own (lib/cli/defaults.ts) reading those files. The reference
 * (bench/reference/mainjob_peft.py) reads the same files and the same model folder.
 *
 *   node bench/.out/mainjob_export.js --out bench/.out/mainjob
 */
import { parseArgs } from 'node:util';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { data, resolveModelPath } from 'tunekit';

/** The fields of lib/cli/defaults.ts's DEFAULT_TRAIN_CONFIG this script reads. */
interface MainJobConfig {
  model: string;
  peft: Record<string, unknown>;
  dataset: { path: string; max_length: number; truncation?: string };
  training: Record<string, unknown>;
  logging: Record<string, unknown>;
}
// the main job's config lives with the CLI (dist/, the same module instance `tunekit train` uses)
const { DEFAULT_TRAIN_CONFIG } = (await import(new URL('../../dist/cli/defaults.js', import.meta.url).href)) as { DEFAULT_TRAIN_CONFIG: MainJobConfig };
const { values } = parseArgs({ options: { out: { type: 'string', default: 'bench/.out/mainjob' } } });
const out = resolve(values.out!);
mkdirSync(out, { recursive: true });
const split = await data.loadDataset({ path: DEFAULT_TRAIN_CONFIG.dataset.path });
const lines = (recs: typeof split.train) => recs.map((r) => JSON.stringify({ text: (r as { text: string }).text, label: (r as { label: string }).label })).join('\n') + '\n';
writeFileSync(join(out, 'train.jsonl'), lines(split.train));
writeFileSync(join(out, 'eval.jsonl'), lines(split.eval));
const config = {
  ...DEFAULT_TRAIN_CONFIG,
  dataset: { ...DEFAULT_TRAIN_CONFIG.dataset, path: join(out, 'train.jsonl'), eval: { path: join(out, 'eval.jsonl') } },
  output_dir: join(out, 'run-tunekit'),
  logging: { ...DEFAULT_TRAIN_CONFIG.logging, progress: 'none' },
};
writeFileSync(join(out, 'config.json'), JSON.stringify(config, null, 2));
// what the reference needs to run the identical job
writeFileSync(join(out, 'job.json'), JSON.stringify({
  model: resolveModelPath(DEFAULT_TRAIN_CONFIG.model), ...DEFAULT_TRAIN_CONFIG.peft, ...DEFAULT_TRAIN_CONFIG.training,
  max_length: DEFAULT_TRAIN_CONFIG.dataset.max_length, truncation: DEFAULT_TRAIN_CONFIG.dataset.truncation ?? 'keep_start', max_grad_norm: 1.0, train: split.train.length, eval: split.eval.length,
}, null, 2));
console.log(JSON.stringify({ out, train: split.train.length, eval: split.eval.length }));
