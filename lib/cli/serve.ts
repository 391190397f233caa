/** `tunekit serve`: an OpenAI-compatible server for a base model and its LoRA adapters. */
import { parseArgs } from 'node:util';
import { TunekitError } from '../errors.js';
import { TunekitServer } from '../serve/server.js';
import { readServeConfigFile } from '../serve/config.js';

const HELP = `Usage: tunekit serve [config.yaml] [options]

An OpenAI-compatible HTTP server (/v1/completions, /v1/chat/completions with streaming,
/v1/models, /health, /metrics). A request's "model" names an adapter (or the base); requests for
different adapters are decoded together in one batch.

Options:
  --model <dir|builtin:name>   base model (default builtin:tunekit-gpt2-small)
  --adapter <name=dir>         a PEFT LoRA folder served as <name> (repeat for more)
  --served-model-name <name>   the base model's id (default: its folder name)
  --host <addr>                bind address (default 127.0.0.1; any other needs an API key)
  --port <n>                   (default 8000; 0 picks a free port)
  --api-key <key>              clients must send 'Authorization: Bearer <key>' (or set TUNEKIT_API_KEY,
                               which does not show in the process list)
  --allow-adapter-loading      enable POST /v1/load_lora_adapter and /v1/unload_lora_adapter
  --max-batch <n>              sequences decoded together (default 16; 1 = one request at a time)
  --max-tokens <n>             largest max_tokens a request may ask for (default 256)
  --max-concurrent <n>         prompts in flight before 429 (default 64)
  --request-timeout-ms <n>     time per request before 504 (default 120000)
  --threads <n>                native threads (default: all cores)
  --device <d>                 cpu | cuda | cuda:N | auto (default auto: the GPU when one is usable and
                               its backend has every op serving runs, else the CPU; printed at start).
                               cuda without a usable GPU, or without one of those ops, fails at start.
  -h, --help                   this help

Stops on SIGINT/SIGTERM after draining the requests in flight (a second signal stops at once).`;

/** Parses argv into the raw serve config (file first, flags over it); exported for tests. */
export function serveConfigFromArgs(argv: string[]): Record<string, unknown> | null {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      model: { type: 'string' }, adapter: { type: 'string', multiple: true }, 'served-model-name': { type: 'string' },
      host: { type: 'string' }, port: { type: 'string' }, 'api-key': { type: 'string' }, 'allow-adapter-loading': { type: 'boolean' },
      'max-batch': { type: 'string' }, 'max-tokens': { type: 'string' }, 'max-concurrent': { type: 'string' },
      'request-timeout-ms': { type: 'string' }, threads: { type: 'string' }, device: { type: 'string' }, help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return null;
  if (positionals.length > 1) throw new TunekitError('ERR_CONFIG', `serve takes one config file but received ${positionals.length}: ${positionals.join(' ')}`);
  const raw = (positionals[0] ? readServeConfigFile(positionals[0]) : {}) as Record<string, unknown>;
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new TunekitError('ERR_CONFIG', `serve config ${positionals[0]}: expected a mapping of fields`);
  const out: Record<string, unknown> = { ...raw };
  // numeric flags become numbers; anything else is left for the schema to refuse by name
  const num = (v: string) => (v.trim() !== '' && Number.isFinite(Number(v)) ? Number(v) : v);
  if (values.model !== undefined) out.model = values.model;
  if (values['served-model-name'] !== undefined) out.served_model_name = values['served-model-name'];
  if (values.host !== undefined) out.host = values.host;
  if (values.port !== undefined) out.port = num(values.port);
  if (values['api-key'] !== undefined) out.api_key = values['api-key'];
  if (values['allow-adapter-loading']) out.allow_adapter_loading = true;
  if (values.threads !== undefined) out.threads = num(values.threads);
  if (values.device !== undefined) out.device = values.device;
  if (values.adapter?.length) {
    const adapters = { ...((raw.adapters as Record<string, string> | undefined) ?? {}) };
    for (const spec of values.adapter) {
      const eq = spec.indexOf('=');
      if (eq <= 0 || eq === spec.length - 1) throw new TunekitError('ERR_CONFIG', `--adapter: expected <name>=<folder> but received '${spec}'`);
      adapters[spec.slice(0, eq)] = spec.slice(eq + 1);
    }
    out.adapters = adapters;
  }
  const limits: Record<string, unknown> = { ...((raw.limits as Record<string, unknown> | undefined) ?? {}) };
  const limitFlags: [keyof typeof values, string][] = [['max-batch', 'max_batch'], ['max-tokens', 'max_tokens'], ['max-concurrent', 'max_concurrent_requests'], ['request-timeout-ms', 'request_timeout_ms']];
  for (const [flag, field] of limitFlags) if (values[flag] !== undefined) limits[field] = num(values[flag] as string);
  if (Object.keys(limits).length) out.limits = limits;
  return out;
}

export async function serveCommand(argv: string[]): Promise<void> {
  const raw = serveConfigFromArgs(argv);
  if (raw === null) return void console.log(HELP);
  const server = await TunekitServer.start(raw);
  const adapters = server.adapters.list();
  console.error(`device: ${server.deviceNote}`);
  console.log(`tunekit serve: ${server.modelName}${adapters.length ? ` + ${adapters.length} adapter${adapters.length === 1 ? '' : 's'} (${adapters.map((a) => a.name).join(', ')})` : ''} on ${server.url}`);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      console.error(`${signal} again: stopping now`);
      process.exit(130);
    }
    stopping = true;
    console.error(`${signal}: draining requests in flight...`);
    server.close().then(() => process.exit(0), (e: unknown) => {
      console.error(e);
      process.exit(1);
    });
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}
