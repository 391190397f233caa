#!/usr/bin/env node
/**
 * The tunekit command line: train | eval | generate | merge | pretrain | info.
 * Every command validates its arguments up front and prints --help.
 */
import { parseArgs } from 'node:util';
import pc from 'picocolors';
import { TunekitError } from '../errors.js';
import { backendInfo } from '../backend.js';
import { loadConfig, type ConfigOverride, type TrainConfig } from '../train/config.js';
import { runTraining } from '../train/run.js';
import { formatEval, runOutputs } from '../train/run_result.js';
import { activeProcessGroup, launcherWorld } from '../train/distributed/process_group.js';
import { launchRanks } from '../train/distributed/launch.js';
// registers the reward, dpo and ppo jobs with runTraining
import '../rlhf/jobs.js';
import { DEFAULT_TRAIN_CONFIG } from './defaults.js';
import { mergeCommand } from './merge.js';
import { generateCommand } from './generate.js';
import { serveCommand } from './serve.js';

import { evalCommand } from './eval.js';
import { pretrainCommand } from './pretrain.js';
import { benchCommand } from './bench.js';
import '../autograd/index.js';

const HELP: Record<string, string> = {
  main: `tunekit: fine-tune pretrained models from Node.js

Usage: tunekit <command> [options]

Commands:
  train [config.yaml]   fine-tune (no config: LoRA on the built-in GPT-2 base, SpamAssassin spam/ham)
  eval <config.yaml>    evaluate a trained run (its adapter or model) on the config's eval split
  generate              generate text from a model (optionally with an adapter)
  serve                 OpenAI-compatible server for a base model and its LoRA adapters (mixed-adapter batches)
  merge                 merge a LoRA adapter into its base model and save a Hugging Face folder
  pretrain              pretrain a small GPT-2 base on real English text (how the built-in base is made)
  info                  show the native backend (CPU features, threads, CUDA)
  bench                 benchmark suite against PyTorch / transformers + PEFT (source checkout)

Run 'tunekit <command> --help' for a command's options.`,
  train: `Usage: tunekit train [config.yaml|config.json] [options]

With no config, runs the main job: LoRA on builtin:tunekit-gpt2-small, spam/ham on SpamAssassin.

Options:
  --output <dir>      output folder (overrides output_dir)
  --resume            continue from <output>/checkpoint when it exists (same config required)
  --max-steps <n>     stop after n optimizer steps
  --epochs <n>        number of epochs
  --seed <n>          training seed (initialisation, dropout, data order); repeat a run with others to see its spread
  --threads <n>       native threads (default: all cores, shared among the ranks of --nproc)
  --dtype <f32|bf16>  matrix products in bf16 (autocast; weights and optimizer stay f32) or f32 (training.dtype)
  --nproc <n>         data-parallel training on n ranks of this machine, started with mpirun
                      (across machines: mpirun -np N -H a,b tunekit train cfg.yaml; docs/distributed.md)
  --print-config      print the validated config (with defaults) and exit
  -h, --help          this help`,
};

function fail(e: unknown): never {
  const code = (e as { code?: unknown })?.code;
  // a rank of a data-parallel job says which it is
  const world = launcherWorld();
  const rank = world && world.size > 1 ? `[rank ${world.rank}] ` : '';
  // an error every rank meets (a refused resume, a NaN loss) is reported once: rank 0 prints it
  // and ends the job, which ends the others before they print
  if (world && world.rank > 0 && activeProcessGroup()) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 2000);
  if (e instanceof TunekitError) {
    process.stderr.write(`${rank}${pc.red('error')} ${pc.dim(`[${e.code}]`)} ${e.message}\n`);
  } else if (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS')) {
    // a mistyped command line: Node's own message says what was wrong, no stack needed
    process.stderr.write(`${pc.red('error')} ${pc.dim(`[${code}]`)} ${(e as Error).message} (see --help)\n`);
  } else {
    process.stderr.write(`${rank}${pc.red('error')} ${(e as Error)?.stack ?? String(e)}\n`);
  }
  // the other ranks would wait for this one until their timeout: end the whole job now
  activeProcessGroup()?.abort(1);
  process.exit(1);
}

async function trainCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      output: { type: 'string' }, resume: { type: 'boolean' }, 'max-steps': { type: 'string' }, epochs: { type: 'string' }, seed: { type: 'string' },
      threads: { type: 'string' }, dtype: { type: 'string' }, nproc: { type: 'string' }, 'print-config': { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return void console.log(HELP.train);
  if (positionals.length > 1) throw new TunekitError('ERR_CONFIG', `train takes one config file but received ${positionals.length}: ${positionals.join(' ')}`);
  const raw = positionals[0] ?? (structuredClone(DEFAULT_TRAIN_CONFIG) as unknown as Record<string, unknown>);
  // flags go through the config's own schema: `--max-steps 2.5` is refused as the file's field would be
  const flags: [keyof typeof values, string[]][] = [
    ['output', ['output_dir']], ['max-steps', ['training', 'max_steps']], ['epochs', ['training', 'epochs']],
    ['threads', ['training', 'threads']], ['dtype', ['training', 'dtype']], ['seed', ['training', 'seed']], ['nproc', ['distributed', 'nproc']],
  ];
  const overrides: ConfigOverride[] = flags
    .filter(([name]) => values[name] !== undefined)
    .map(([name, path]) => ({ path, value: values[name], flag: `--${name}` }));
  const config: TrainConfig = loadConfig(raw, { overrides });
  if (values['print-config']) return void console.log(JSON.stringify(config, null, 2));
  const world = launcherWorld();
  const nproc = config.distributed?.nproc ?? 1;
  if (nproc > 1 && !world) {
    // this process starts the ranks (mpirun), each of which runs this same command line
    return launchRanks({ nproc, args: ['train', ...argv], outputDir: config.output_dir });
  }
  const res = await runTraining(config, { resume: values.resume });
  // rank 0 reports for the job
  if (world && world.rank > 0) return;
  const e = res.eval;
  const lines = [
    `${pc.bold('done')}: ${res.fit.steps} steps (${res.fit.status}) in ${res.fit.trainSeconds.toFixed(1)} s, ${res.fit.tokensPerSecond.toFixed(0)} tokens/s`,
    e ? `eval: ${formatEval(e)}` : 'no eval split',
    `trainable parameters: ${res.trainableParameters.toLocaleString('en-US')} of ${res.totalParameters.toLocaleString('en-US')}`,
    `outputs in ${res.outputDir}: ${runOutputs(res.outputDir).join(', ')}`,
  ];
  console.log(lines.join('\n'));
}

async function main(): Promise<void> {
  const [cmd, ...rest] = process.argv.slice(2);
  switch (cmd) {
    case 'train': return trainCommand(rest);
    case 'eval': return evalCommand(rest);

    case 'generate': return generateCommand(rest);
    case 'serve': return serveCommand(rest);
    case 'merge': return mergeCommand(rest);
    case 'pretrain': return pretrainCommand(rest);
    case 'bench': return benchCommand(rest);
    case 'info':
      return void console.log(JSON.stringify(backendInfo(), null, 2));
    case undefined:
    case '-h':
    case '--help':
    case 'help':
      return void console.log(HELP.main);
    default:
      throw new TunekitError('ERR_CONFIG', `unknown command '${cmd}'. Commands: train, eval, generate, serve, merge, pretrain, info, bench (see tunekit --help)`);
  }
}

main().catch(fail);
