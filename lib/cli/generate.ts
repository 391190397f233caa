/** `tunekit generate`: text from a causal LM (optionally with a LoRA adapter), streamed. */
import { parseArgs } from 'node:util';
import { TunekitError } from '../errors.js';
import { loadPretrained } from '../models/loader.js';
import { resolveModelPath } from '../models/builtin.js';
import { generate } from '../models/generate.js';
import type { PretrainedModel } from '../models/common.js';
import { Tokenizer } from '../tokenizer/index.js';
import { loadPeftFolder } from '../peft/index.js';
import { resolveDevice, GENERATE_PATH } from '../tensor/device.js';
import { setComputeDtype } from '../backend.js';
import '../peft/index.js';

const HELP = `Usage: tunekit generate --prompt <text> [options]

Options:
  --model <dir|builtin:name>   base model (default builtin:tunekit-gpt2-small)
  --adapter <dir>              a PEFT adapter folder to apply
  --prompt <text>              the prompt (repeat --prompt for a batch)
  --max-new-tokens <n>         (default 60)
  --temperature <x>            0 = greedy (default 0.8)
  --top-k <n>  --top-p <x>  --repetition-penalty <x>  --seed <n>
  --device <d>                 cpu | cuda | cuda:N | auto (default auto: the GPU when one is usable
                               and its backend has every op of generation, else the CPU; the choice
                               is printed on stderr). cuda without a usable GPU fails before loading.
  --dtype <f32|bf16>           matrix products in bf16 (default f32): decoding streams the weights'
                               bf16 copies, half the bytes`;

export async function generateCommand(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      model: { type: 'string' }, adapter: { type: 'string' }, prompt: { type: 'string', multiple: true },
      'max-new-tokens': { type: 'string' }, temperature: { type: 'string' }, 'top-k': { type: 'string' }, 'top-p': { type: 'string' },
      'repetition-penalty': { type: 'string' }, seed: { type: 'string' }, device: { type: 'string' }, dtype: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return void console.log(HELP);
  if (!values.prompt?.length) throw new TunekitError('ERR_CONFIG', 'generate: --prompt <text> is required (see tunekit generate --help)');
  const num = (k: string, v: string | undefined, d: number) => {
    if (v === undefined) return d;
    const x = Number(v);
    if (!Number.isFinite(x) || x < 0) throw new TunekitError('ERR_CONFIG', `--${k}: expected a non-negative number but received '${v}'`);
    return x;
  };
  // before anything loads: cuda without a usable GPU (or without a kernel generation needs) stops here
  const { device, note } = resolveDevice(values.device ?? 'auto', '--device', { path: GENERATE_PATH });
  const dtype = values.dtype ?? 'f32';
  if (dtype !== 'f32' && dtype !== 'bf16') throw new TunekitError('ERR_CONFIG', `--dtype: expected f32 or bf16 but received '${dtype}'`);
  setComputeDtype(dtype);
  console.error(`device: ${note}${dtype === 'bf16' ? '; matrix products in bf16 (--dtype)' : ''}`);
  const dir = resolveModelPath(values.model ?? 'builtin:tunekit-gpt2-small');
  const tok = await Tokenizer.fromFolder(dir);
  let { model } = (await loadPretrained(dir, { task: 'causal_lm' })) as { model: PretrainedModel };
  if (values.adapter) {
    const peft = await loadPeftFolder(model, values.adapter);
    peft.eval();
    model = peft as unknown as PretrainedModel;
  }
  // the base and its adapter together (an adapter loaded onto a moved base would stay on the CPU)
  model.to(device);
  const prompts = values.prompt.map((p) => tok.encode(p, { addSpecialTokens: false }).ids);
  const single = prompts.length === 1;
  if (single) process.stdout.write(values.prompt[0]!);
  const res = await generate(model, prompts, {
    tokenizer: tok,
    maxNewTokens: num('max-new-tokens', values['max-new-tokens'], 60), temperature: num('temperature', values.temperature, 0.8),
    topK: num('top-k', values['top-k'], 0), topP: num('top-p', values['top-p'], 1), repetitionPenalty: num('repetition-penalty', values['repetition-penalty'], 1),
    seed: num('seed', values.seed, 0),
    eosTokenId: tok.eosTokenId ?? null,
    onToken: single ? (e) => { if (e.text) process.stdout.write(e.text); } : undefined,
  });
  if (single) process.stdout.write('\n');
  else res.texts?.forEach((t, i) => console.log(`[${i}] ${values.prompt![i]}${t}`));
}
