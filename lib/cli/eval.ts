/** `tunekit eval`: evaluate a finished run on its config's eval split. */
import { parseArgs } from 'node:util';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { TunekitError } from '../errors.js';
import { loadConfig } from '../train/config.js';
import { evaluateRun } from '../train/evaluate.js';

const HELP = `Usage: tunekit eval <config.yaml> [--run <dir>] [--base]

Evaluates the adapter (or full model) in the run folder (default: the config's output_dir) on the
config's eval split and prints loss and accuracy/F1 (classification) or perplexity (causal LM;
plus multiple-choice accuracy/F1 when the completions are a few fixed answers, dataset.choices).
--base evaluates the base model without the adapter (a frozen-base or zero-shot baseline).`;

export async function evalCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { run: { type: 'string' }, base: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } });
  if (values.help) return void console.log(HELP);
  if (positionals.length !== 1) throw new TunekitError('ERR_CONFIG', 'eval: expected one config file (see tunekit eval --help)');
  const config = loadConfig(positionals[0]!);
  const runDir = values.run ?? config.output_dir;
  if (!values.base && !existsSync(join(runDir, 'adapter')) && !existsSync(join(runDir, 'model'))) {
    throw new TunekitError('ERR_NOT_FOUND', `no adapter/ or model/ in ${runDir}: train first, or pass --run <dir>`);
  }
  const r = await evaluateRun(config, { runDir, base: values.base });
  console.log(JSON.stringify(r, null, 2));
}
