/**
 * `tunekit bench`: the benchmark suite of a source checkout (bench/ is not in the npm package).
 * Kernels through the JS API (bench/kernels.bench.ts, tinybench) against PyTorch's
 * (bench/reference/torch_kernels.py), and whole training steps, one process per measurement
 * (bench/train_step.ts) against transformers + PEFT (bench/reference/peft_step.py), ours and the
 * reference interleaved in the same run. Prints one table with the machine (CPU, cores, load).
 * The kernels also run in TensorFlow.js on its wasm backend (bench/reference/tfjs/kernels.mjs),
 * the JavaScript alternative, when bench/reference/tfjs/setup.sh has installed it: their rows
 * gain a TF.js column and ratio beside PyTorch's.
 * `--suite scaling` measures tokens/s against sequence length, batch size and model size (ours)
 * and writes an SVG plot.
 */
import { parseArgs } from 'node:util';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TunekitError } from '../errors.js';

const HELP = `Usage: tunekit bench [options]      (from a source checkout: uses bench/)

Options:
  --suite <list>     comma list of kernels, train, mainjob, scaling (default kernels,train);
                     mainjob runs the whole main job on both sides from one exported split
  --rounds <n>       interleaved rounds, each side's best kept (default 2)
  --steps <n>        timed training steps per process, after 2 warm-up steps (default 4)
  --modes <list>     training modes for the train suite: lora, full, lora-bf16, full-bf16 (default lora,full;
                     -bf16: ours with training.dtype bf16 against PEFT under torch.autocast(bf16))
  --threads <n>      threads for ours and PyTorch (default 2; TF.js wasm runs one under Node)
  --python <path>    the reference's Python (default: $TUNEKIT_BENCH_PYTHON, bench/reference/.venv, .venv)
  --reference <list> references to run beside ours, each when installed: torch (PyTorch / transformers
                     + PEFT; all suites), tfjs (TensorFlow.js wasm; kernels only, one thread)
                     (default torch,tfjs)
  --no-reference     ours only
  --json <file>      also write the raw results as JSON
  --svg <file>       scaling plot (default docs/scaling.svg)

The references are installed by bench scripts, never by npm install: PyTorch, transformers and
PEFT by 'bash bench/reference/setup.sh', TensorFlow.js by 'bash bench/reference/tfjs/setup.sh'.`;

/** One table row; ref is PyTorch's figure, tfjs TensorFlow.js wasm's (kernels only). */
export interface Row { name: string; ours: number | null; ref: number | null; tfjs?: number | null; unit: string; better: 'higher' | 'lower' }
type Json = Record<string, unknown>;
const REFERENCES = ['torch', 'tfjs'] as const;
type Reference = (typeof REFERENCES)[number];

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

function sh(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): string {
  const r = spawnSync(cmd, args, { cwd: root, env: { ...process.env, ...env }, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new TunekitError('ERR_BACKEND', `bench: ${cmd} ${args.join(' ')} failed (${r.status}):\n${(r.stderr || r.stdout || '').slice(-2000)}`);
  return r.stdout;
}
const jsonLines = (s: string): Json[] => s.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Json);

function findPython(explicit?: string): string | null {
  const cands = [explicit, process.env.TUNEKIT_BENCH_PYTHON, join(root, 'bench/reference/.venv/bin/python'), join(root, '.venv/bin/python')];
  for (const c of cands) {
    if (!c || !existsSync(c)) continue;
    const r = spawnSync(c, ['-c', 'import torch, transformers, peft'], { encoding: 'utf8' });
    if (r.status === 0) return c;
  }
  return null;
}

/** bench/reference/tfjs/kernels.mjs when setup.sh has installed its packages, else null. */
function findTfjs(): string | null {
  const dir = join(root, 'bench/reference/tfjs');
  const installed = ['@tensorflow/tfjs', '@tensorflow/tfjs-backend-wasm'].every((p) => existsSync(join(dir, 'node_modules', p, 'package.json')));
  return installed ? join(dir, 'kernels.mjs') : null;
}

/**
 * The --reference list, checked: parseReferences('torch,tfjs') -> ['torch', 'tfjs'];
 * parseReferences('') -> [].
 */
export function parseReferences(list: string): Reference[] {
  const names = list.split(',').map((s) => s.trim()).filter(Boolean);
  for (const n of names) {
    if (!(REFERENCES as readonly string[]).includes(n)) throw new TunekitError('ERR_CONFIG', `bench: unknown reference '${n}' in --reference; expected a comma list of ${REFERENCES.join(', ')}`);
  }
  return [...new Set(names)] as Reference[];
}

/**
 * Adds each kernel line ({ name, ms }) to the samples of its name and returns the lines that have
 * no name (a reference's description of itself, e.g. TF.js's { backend: {...} }).
 */
export function addKernelSamples(samples: Map<string, number[]>, lines: Json[]): Json[] {
  const other: Json[] = [];
  for (const j of lines) {
    if (typeof j.name !== 'string' || typeof j.ms !== 'number') {
      other.push(j);
      continue;
    }
    samples.set(j.name, [...(samples.get(j.name) ?? []), j.ms]);
  }
  return other;
}

export function machine(): string {
  const [l1, l5] = loadavg();
  return `${cpus()[0]?.model ?? 'unknown CPU'}${cpuFamily()}, ${availableParallelism()} cores, load ${l1!.toFixed(2)} / ${l5!.toFixed(2)} (1 / 5 min)`;
}

/**
 * ' (CPU family 25 model 17)' from /proc/cpuinfo: the model name alone ('AMD EPYC' in these
 * guests) does not tell Zen 4 (family 25) from Zen 5 (26), whose GEMM peaks differ by 1.8x.
 */
function cpuFamily(): string {
  try {
    const info = readFileSync('/proc/cpuinfo', 'utf8');
    const family = /^cpu family\s*:\s*(\d+)/m.exec(info), model = /^model\s*:\s*(\d+)/m.exec(info);
    return family ? ` (CPU family ${family[1]}${model ? ` model ${model[1]}` : ''})` : '';
  } catch {
    return '';
  }
}

/**
 * How many times better ours is than a reference figure: speed ours/ref, time ref/ours; for memory
 * (unit MB) ours/ref as the targets state it, marked 'size'. '-' when either is missing.
 */
export function ratioText(ours: number | null, ref: number | null, unit: string, better: 'higher' | 'lower'): string {
  if (ours === null || ref === null) return '-';
  if (unit === 'MB') return `${(ours / ref).toFixed(2)}x size`;
  return `${(better === 'higher' ? ours / ref : ref / ours).toFixed(2)}x`;
}

/**
 * The markdown table. With a TF.js figure in any row, PyTorch and TF.js wasm each get a column
 * and a ratio; without, the layout is ours | reference | ratio as before.
 */
export function table(rows: Row[]): string {
  const fmt = (v: number | null | undefined) => (v == null ? '-' : v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));
  const withTfjs = rows.some((r) => r.tfjs != null);
  const lines = withTfjs
    ? ['| measurement | ours | PyTorch | ratio | TF.js wasm | ratio | unit |', '| --- | ---: | ---: | ---: | ---: | ---: | --- |']
    : ['| measurement | ours | reference | ratio | unit |', '| --- | ---: | ---: | ---: | --- |'];
  for (const r of rows) {
    const torch = `${fmt(r.ref)} | ${ratioText(r.ours, r.ref, r.unit, r.better)}`;
    const tfjs = withTfjs ? ` ${fmt(r.tfjs)} | ${ratioText(r.ours, r.tfjs ?? null, r.unit, r.better)} |` : '';
    lines.push(`| ${r.name} | ${fmt(r.ours)} | ${torch} |${tfjs} ${r.unit} |`);
  }
  return lines.join('\n');
}

function best(vals: number[], better: 'higher' | 'lower'): number | null {
  if (!vals.length) return null;
  return better === 'higher' ? Math.max(...vals) : Math.min(...vals);
}

export async function benchCommand(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      suite: { type: 'string', default: 'kernels,train' }, rounds: { type: 'string', default: '2' }, steps: { type: 'string', default: '4' },
      modes: { type: 'string', default: 'lora,full' }, threads: { type: 'string', default: '2' }, python: { type: 'string' },
      reference: { type: 'string', default: REFERENCES.join(',') }, 'no-reference': { type: 'boolean', default: false }, json: { type: 'string' }, svg: { type: 'string', default: 'docs/scaling.svg' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return void console.log(HELP);
  if (!existsSync(join(root, 'bench', 'train_step.ts'))) throw new TunekitError('ERR_NOT_FOUND', 'tunekit bench runs from a source checkout (bench/ is not in the npm package)');
  const suites = values.suite!.split(',');
  const rounds = +values.rounds!, steps = values.steps!, threads = values.threads!;
  // checked before the bench/ compile, so a typo fails at once
  const refs = values['no-reference'] ? [] : parseReferences(values.reference!);
  const log = (s: string) => process.stderr.write(s + '\n');
  log('compiling bench/ (tsc -p bench/tsconfig.json)');
  sh(join(root, 'node_modules/.bin/tsc'), ['-p', 'bench/tsconfig.json']);
  const py = refs.includes('torch') ? findPython(values.python) : null;
  if (!py && refs.includes('torch')) log('no reference Python with torch, transformers and peft found: run `bash bench/reference/setup.sh` (reference columns left empty)');
  // TF.js has only the kernels; its column appears when that suite runs and it is installed
  const tfjs = refs.includes('tfjs') && suites.includes('kernels') ? findTfjs() : null;
  if (!tfjs && refs.includes('tfjs') && suites.includes('kernels')) log('TensorFlow.js not installed: run `bash bench/reference/tfjs/setup.sh` for its kernel column');
  let tfjsBackend: Json | null = null;
  const startMachine = machine();
  const rows: Row[] = [];
  const raw: Json[] = [];

  if (suites.includes('kernels')) {
    const ours = new Map<string, number[]>(), ref = new Map<string, number[]>(), tfjsMs = new Map<string, number[]>();
    // each round runs ours, PyTorch, TF.js one after the other, so load drifts hit all three
    const run = (samples: Map<string, number[]>, cmd: string, args: string[]): Json[] => {
      const lines = jsonLines(sh(cmd, args));
      raw.push(...lines);
      return addKernelSamples(samples, lines);
    };
    for (let r = 0; r < rounds; r++) {
      log(`kernels, round ${r + 1}/${rounds}`);
      run(ours, 'node', ['bench/.out/kernels.bench.js', '--threads', threads]);
      if (py) run(ref, py, ['bench/reference/torch_kernels.py', '--threads', threads]);
      if (tfjs) tfjsBackend = (run(tfjsMs, 'node', [tfjs, '--threads', threads]).find((j) => j.backend)?.backend as Json) ?? tfjsBackend;
    }
    for (const [name, v] of ours) {
      rows.push({ name: `kernel: ${name}`, ours: best(v, 'lower'), ref: best(ref.get(name) ?? [], 'lower'), ...(tfjs ? { tfjs: best(tfjsMs.get(name) ?? [], 'lower') } : {}), unit: 'ms', better: 'lower' });
    }
  }

  if (suites.includes('train')) {
    const modes = values.modes!.split(',');
    const got = new Map<string, { ours: Json[]; ref: Json[] }>();
    for (let r = 0; r < rounds; r++) {
      for (const mode of modes) {
        log(`train step ${mode}, round ${r + 1}/${rounds}`);
        // 'lora-bf16': ours with TUNEKIT_COMPUTE_DTYPE=bf16 against PEFT under torch.autocast(bf16)
        const bf16 = mode.endsWith('-bf16');
        const args = ['--mode', mode.replace('-bf16', ''), '--batch', '4', '--seq', '128', '--steps', steps, '--warmup', '2', '--threads', threads];
        const g = got.get(mode) ?? { ours: [], ref: [] };
        g.ours.push(...jsonLines(sh('node', ['bench/.out/train_step.js', ...args], bf16 ? { TUNEKIT_COMPUTE_DTYPE: 'bf16' } : {})));
        if (py) g.ref.push(...jsonLines(sh(py, ['bench/reference/peft_step.py', ...args, ...(bf16 ? ['--dtype', 'bf16'] : [])])));
        got.set(mode, g);
      }
    }
    for (const [mode, g] of got) {
      raw.push(...g.ours, ...g.ref);
      const base = mode.startsWith('lora') ? 'GPT-2 124M LoRA r8 c_attn, 4x128, AdamW' : 'GPT-2 124M full fine-tuning, 4x128, AdamW';
      const label = mode.endsWith('-bf16') ? `${base}, bf16 compute (PEFT: autocast bf16)` : base;
      const oursTps = best(g.ours.map((j) => j.tokensPerSec as number), 'higher'), refTps = best(g.ref.map((j) => j.tokensPerSec as number), 'higher');
      rows.push({ name: `${label}: tokens/s`, ours: oursTps, ref: refTps, unit: 'tokens/s', better: 'higher' });
      // the step as a share of its GEMM bound (its matrix-product work at our GEMM's 2048^3 rate,
      // measured by each of our runs right after its steps): both sides against the same bound
      const bound = best(g.ours.map((j) => j.boundTokensPerSec as number).filter((x) => x > 0), 'higher');
      if (bound !== null) {
        rows.push({ name: `${label}: share of the GEMM bound (${bound.toFixed(0)} tokens/s)`, ours: oursTps === null ? null : (100 * oursTps) / bound,
          ref: refTps === null ? null : (100 * refTps) / bound, unit: '%', better: 'higher' });
      }
      rows.push({ name: `${label}: peak RSS`, ours: best(g.ours.map((j) => j.peakRssMB as number), 'lower'), ref: best(g.ref.map((j) => j.peakRssMB as number), 'lower'), unit: 'MB', better: 'lower' });
    }
  }

  if (suites.includes('mainjob')) {
    // the main job itself on both sides: one exported split, the same model folder and settings
    const out = join(root, 'bench', '.out', 'mainjob');
    const exp = jsonLines(sh('node', ['bench/.out/mainjob_export.js', '--out', out]))[0]!;
    log(`main job split: ${String(exp.train)} train / ${String(exp.eval)} eval e-mails in ${out}`);
    const ours: Json[] = [], ref: Json[] = [];
    for (let r = 0; r < rounds; r++) {
      log(`main job, round ${r + 1}/${rounds}: tunekit`);
      const t0 = performance.now();
      sh('node', ['dist/cli/main.js', 'train', join(out, 'config.json'), '--threads', threads, '--output', join(out, 'run-tunekit')]);
      const res = JSON.parse(readFileSync(join(out, 'run-tunekit', 'results.json'), 'utf8')) as Json & { eval: Json };
      ours.push({ wall_seconds: (performance.now() - t0) / 1000, train_seconds: res.train_seconds, tokens_per_second: res.tokens_per_second, accuracy: res.eval.accuracy, f1: res.eval.f1 });
      if (py) {
        log(`main job, round ${r + 1}/${rounds}: transformers + PEFT`);
        ref.push(...jsonLines(sh(py, ['bench/reference/mainjob_peft.py', '--data', out, '--threads', threads])));
      }
    }
    raw.push(...ours.map((j) => ({ impl: 'tunekit', suite: 'mainjob', ...j })), ...ref.map((j) => ({ suite: 'mainjob', ...j })));
    const col = (js: Json[], k: string, better: 'higher' | 'lower') => best(js.map((j) => j[k] as number), better);
    const job = JSON.parse(readFileSync(join(out, 'job.json'), 'utf8')) as { max_length: number; truncation?: string };
    const label = `main job (LoRA, tunekit-gpt2-small, SpamAssassin, 303 steps of 16 x <=${job.max_length}, ${job.truncation ?? 'keep_start'})`;
    rows.push({ name: `${label}: wall time`, ours: col(ours, 'wall_seconds', 'lower'), ref: col(ref, 'wall_seconds', 'lower'), unit: 's', better: 'lower' });
    rows.push({ name: `${label}: training time`, ours: col(ours, 'train_seconds', 'lower'), ref: col(ref, 'train_seconds', 'lower'), unit: 's', better: 'lower' });
    rows.push({ name: `${label}: tokens/s`, ours: col(ours, 'tokens_per_second', 'higher'), ref: col(ref, 'tokens_per_second', 'higher'), unit: 'tokens/s', better: 'higher' });
    // in percent: two decimals of a fraction (0.98) cannot tell 98.26% from 97.52%
    const pct = (x: number | null) => (x === null ? null : 100 * x);
    rows.push({ name: `${label}: held-out accuracy`, ours: pct(col(ours, 'accuracy', 'higher')), ref: pct(col(ref, 'accuracy', 'higher')), unit: '%', better: 'higher' });
    rows.push({ name: `${label}: held-out F1`, ours: pct(col(ours, 'f1', 'higher')), ref: pct(col(ref, 'f1', 'higher')), unit: '%', better: 'higher' });
  }

  if (suites.includes('scaling')) {
    const series = scalingSeries();
    const results: { series: string; x: number; tokensPerSec: number; stepSeconds: number }[] = [];
    for (const s of series) {
      for (const p of s.points) {
        log(`scaling ${s.name} ${p.x}`);
        const [j] = jsonLines(sh('node', ['bench/.out/train_step.js', ...p.args, '--steps', '2', '--warmup', '1', '--threads', threads]));
        raw.push({ ...j!, series: s.name, x: p.x });
        results.push({ series: s.name, x: p.x, tokensPerSec: j!.tokensPerSec as number, stepSeconds: j!.medianStep as number });
        rows.push({ name: `scaling: ${s.name} = ${p.x}`, ours: j!.tokensPerSec as number, ref: null, unit: 'tokens/s', better: 'higher' });
      }
    }
    const svgPath = join(root, values.svg!);
    mkdirSync(dirname(svgPath), { recursive: true });
    writeFileSync(svgPath, scalingSvg(results, machine()));
    log(`wrote ${svgPath}`);
  }

  const endMachine = machine();
  console.log(`Machine: ${startMachine} at the start; load ${endMachine.split('load ')[1]} at the end`);
  console.log(`Ratio: how many times faster ours is (time and throughput rows); for peak RSS, ours / reference (lower is better)`);
  console.log(`Reference: ${py ? `PyTorch / transformers / PEFT from ${py}` : 'none'}; threads ${threads}; best of ${rounds} interleaved rounds`);
  if (tfjs) console.log(`TF.js: ${tfjsDescription(tfjsBackend)}; kernels only`);
  console.log(table(rows));
  if (values.json) writeFileSync(values.json, JSON.stringify({ machine: { start: startMachine, end: endMachine }, rows, raw }, null, 1));
}

/** 'TensorFlow.js 4.22.0, wasm backend (SIMD, 1 thread)' from kernels.mjs's backend line. */
export function tfjsDescription(backend: Json | null): string {
  if (!backend) return 'TensorFlow.js, wasm backend';
  const threads = Number(backend.threads);
  const why = threads === 1 && backend.multithreadSupported === false ? ': tfjs-backend-wasm has no threads under Node' : '';
  return `TensorFlow.js ${String(backend.version)}, ${String(backend.backend)} backend (${backend.simd ? 'SIMD' : 'no SIMD'}, ${threads} thread${threads === 1 ? '' : 's'}${why})`;
}

function scalingSeries(): { name: string; unit: string; points: { x: number; args: string[] }[] }[] {
  return [
    { name: 'sequence length (LoRA, batch 1)', unit: 'tokens', points: [128, 256, 512, 1024].map((x) => ({ x, args: ['--mode', 'lora', '--batch', '1', '--seq', String(x)] })) },
    { name: 'batch size (LoRA, 128 tokens)', unit: 'sequences', points: [1, 2, 4, 8].map((x) => ({ x, args: ['--mode', 'lora', '--batch', String(x), '--seq', '128'] })) },
    {
      name: 'model size (LoRA, 4x128)', unit: 'M parameters',
      points: ([['tiny', 6.7], ['mini', 30], ['small', 124], ['medium', 355]] as const).map(([m, x]) => ({ x, args: ['--mode', 'lora', '--batch', '4', '--seq', '128', '--model', m] })),
    },
  ];
}

/** Three small line charts (tokens/s and step time against each scaling axis), log-2 x axes. */
export function scalingSvg(results: { series: string; x: number; tokensPerSec: number; stepSeconds: number }[], machineLine: string): string {
  const names = [...new Set(results.map((r) => r.series))];
  const W = 300, Hh = 220, pad = { l: 52, r: 12, t: 28, b: 40 };
  const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
  let body = '';
  names.forEach((name, i) => {
    const pts = results.filter((r) => r.series === name).sort((a, b) => a.x - b.x);
    const ox = i * (W + 20);
    const xs = pts.map((p) => Math.log2(p.x)), x0 = Math.min(...xs), x1 = Math.max(...xs);
    const ymax = Math.max(...pts.map((p) => p.tokensPerSec)) * 1.15;
    const sx = (x: number) => ox + pad.l + ((Math.log2(x) - x0) / Math.max(1e-9, x1 - x0)) * (W - pad.l - pad.r);
    const sy = (y: number) => pad.t + (1 - y / ymax) * (Hh - pad.t - pad.b);
    body += `<text x="${ox + W / 2}" y="16" text-anchor="middle" font-size="12">${esc(name)}</text>`;
    body += `<line x1="${ox + pad.l}" y1="${Hh - pad.b}" x2="${ox + W - pad.r}" y2="${Hh - pad.b}" stroke="#444"/><line x1="${ox + pad.l}" y1="${pad.t}" x2="${ox + pad.l}" y2="${Hh - pad.b}" stroke="#444"/>`;
    for (let k = 0; k <= 4; k++) {
      const y = (ymax / 1.15) * (k / 4);
      body += `<text x="${ox + pad.l - 4}" y="${sy(y) + 4}" text-anchor="end" font-size="9">${y.toFixed(0)}</text><line x1="${ox + pad.l}" y1="${sy(y)}" x2="${ox + W - pad.r}" y2="${sy(y)}" stroke="#ddd"/>`;
    }
    body += `<polyline fill="none" stroke="#1f77b4" stroke-width="2" points="${pts.map((p) => `${sx(p.x).toFixed(1)},${sy(p.tokensPerSec).toFixed(1)}`).join(' ')}"/>`;
    for (const p of pts) {
      body += `<circle cx="${sx(p.x).toFixed(1)}" cy="${sy(p.tokensPerSec).toFixed(1)}" r="3" fill="#1f77b4"/>`;
      body += `<text x="${sx(p.x).toFixed(1)}" y="${Hh - pad.b + 13}" text-anchor="middle" font-size="9">${p.x}</text>`;
      body += `<text x="${sx(p.x).toFixed(1)}" y="${(sy(p.tokensPerSec) - 6).toFixed(1)}" text-anchor="middle" font-size="8" fill="#555">${p.stepSeconds.toFixed(2)} s</text>`;
    }
    body += `<text x="${ox + pad.l + (W - pad.l - pad.r) / 2}" y="${Hh - 8}" text-anchor="middle" font-size="10">${esc(name.split(' (')[0]!)} (log scale)</text>`;
    body += `<text transform="translate(${ox + 12},${(Hh - pad.b + pad.t) / 2}) rotate(-90)" text-anchor="middle" font-size="10">tokens/s</text>`;
  });
  const total = names.length * (W + 20);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${total}" height="${Hh + 24}" viewBox="0 0 ${total} ${Hh + 24}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>${body}
<text x="8" y="${Hh + 16}" font-size="9" fill="#555">tunekit training step (forward, backward, AdamW), GPT-2 random init; labels: median step time. ${esc(machineLine)}</text>
</svg>
`;
}
