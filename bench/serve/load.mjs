// Load test of `tunekit serve` on loopback: 4 LoRA adapters on the built-in GPT-2 base, 1, 4 and
// 16 concurrent clients (autocannon), each cell a fixed number of greedy completions that cycle
// over the adapters and 8 prompts. Mixed-adapter continuous batching (--max-batch 16) beside
// one-request-at-a-time serving (--max-batch 1) of the same requests, same machine, same run.
//
// Usage: node bench/serve/load.mjs [--max-tokens 32] [--rounds 3] [--threads N]   (after `npm run build`)
// Prints one JSON line per cell, then a table; figures: generated tokens/s over the cell's wall
// time, tokens per CPU-second of the server process (user + system; less distorted than wall
// time when other jobs share the cores), p50/p99 request latency (ms, full response), mean
// decode batch (scheduler's metrics).
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync, readFileSync } from 'node:fs';
import { tmpdir, loadavg } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const MAIN = join(ROOT, 'dist', 'cli', 'main.js');
if (!existsSync(MAIN)) throw new Error('build first: npm run build');
const { values } = parseArgs({ options: { 'max-tokens': { type: 'string', default: '32' }, threads: { type: 'string' }, rounds: { type: 'string', default: '3' } } });
const MAX_TOKENS = Number(values['max-tokens']);
const ROUNDS = Number(values.rounds);

const { loadPretrainedSync, LoraModel, resolveModelPath } = await import(join(ROOT, 'dist', 'index.js'));
const { manualSeed } = await import(join(ROOT, 'dist', 'nn', 'random.js'));

const BASE = 'builtin:tunekit-gpt2-small';
const ADAPTERS = ['support', 'legal', 'poetry', 'sql'];
const PROMPTS = [
  'The quarterly report shows that',
  'Dear customer, thank you for',
  'In the beginning there was',
  'SELECT name FROM users WHERE',
  'The court held that the contract',
  'Roses are red and the sky',
  'To reset your password, first',
  'The weather tomorrow will be',
];
const CELLS = [{ clients: 1, requests: 12 }, { clients: 4, requests: 32 }, { clients: 16, requests: 64 }];

/** Four rank-8 adapters on every linear layer, random A and B (a trained adapter's shapes and cost). */
function writeAdapters(dir) {
  const out = {};
  ADAPTERS.forEach((name, i) => {
    manualSeed(1000 + i);
    const { model } = loadPretrainedSync(resolveModelPath(BASE), { task: 'causal_lm' });
    const lora = new LoraModel(model, { r: 8, lora_alpha: 16, target_modules: ['c_attn', 'c_proj', 'c_fc'], init_lora_weights: false });
    out[name] = join(dir, name);
    lora.saveAdapterSync(out[name]);
    lora.dispose();
  });
  return out;
}

function startServer(adapters, maxBatch) {
  const args = [MAIN, 'serve', '--model', BASE, '--port', '0', '--max-batch', String(maxBatch), '--max-tokens', String(MAX_TOKENS),
    '--max-concurrent', '1024', '--request-timeout-ms', '600000', ...Object.entries(adapters).flatMap(([n, p]) => ['--adapter', `${n}=${p}`])];
  if (values.threads) args.push('--threads', values.threads);
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let buf = '';
    child.stdout.on('data', (d) => {
      buf += d;
      const m = /on (http:\/\/127\.0\.0\.1:\d+)/.exec(buf);
      if (m) resolve({ child, url: m[1] });
    });
    child.on('exit', (code) => reject(new Error(`serve exited with ${code} before listening`)));
  });
}

async function metrics(url) {
  const text = await (await fetch(`${url}/metrics`)).text();
  const get = (name) => Number(text.split('\n').find((l) => l.startsWith(`${name} `))?.split(' ')[1] ?? NaN);
  return { steps: get('tunekit_decode_steps_total'), rows: get('tunekit_decode_rows_total'), mixed: get('tunekit_mixed_adapter_steps_total') };
}

function bodies() {
  const out = [];
  for (let i = 0; i < PROMPTS.length * ADAPTERS.length; i++) {
    out.push(JSON.stringify({ model: ADAPTERS[i % ADAPTERS.length], prompt: PROMPTS[i % PROMPTS.length], max_tokens: MAX_TOKENS, temperature: 0 }));
  }
  return out;
}

/** CPU seconds (user + system) a process has used so far, from /proc (Linux). */
function cpuSeconds(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ 100)
}

async function runCell(url, cell, pid) {
  const list = bodies();
  let next = 0, tokens = 0, bad = 0, last = 0;
  const before = await metrics(url);
  const cpu0 = cpuSeconds(pid);
  const t0 = performance.now();
  const result = await autocannon({
    url, connections: cell.clients, amount: cell.requests, timeout: 600,
    requests: [{
      method: 'POST', path: '/v1/completions', headers: { 'content-type': 'application/json' },
      // requests go out round-robin over adapters and prompts, whichever client sends them
      setupRequest: (req) => ({ ...req, body: list[next++ % list.length] }),
      onResponse: (status, body) => {
        last = performance.now();
        if (status !== 200) { bad++; return; }
        tokens += JSON.parse(body).usage.completion_tokens;
      },
    }],
  });
  // up to the last response: autocannon itself resolves on its next one-second tick
  const seconds = (last - t0) / 1000;
  const cpu = cpuSeconds(pid) - cpu0;
  const after = await metrics(url);
  const steps = after.steps - before.steps;
  return {
    clients: cell.clients, requests: result.requests.total, errors: bad + result.errors + result.timeouts, tokens,
    tokens_per_s: +(tokens / seconds).toFixed(1), tokens_per_cpu_s: +(tokens / cpu).toFixed(1), p50_ms: result.latency.p50, p99_ms: result.latency.p99,
    mean_batch: +((after.rows - before.rows) / Math.max(1, steps)).toFixed(2), mixed_steps: after.mixed - before.mixed, seconds: +seconds.toFixed(2),
  };
}

const cpu = execFileSync('lscpu', { encoding: 'utf8' }).split('\n').filter((l) => /^(Model name|CPU family|Model|CPU\(s\)):/.test(l)).map((l) => l.replace(/\s+/g, ' ').trim());
console.log(`machine: ${cpu.join('; ')}; load average before: ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
const dir = mkdtempSync(join(tmpdir(), 'tunekit-serve-bench-'));
const rows = [];
const MODES = [['mixed batch (max 16)', 16], ['one at a time', 1]];
try {
  const adapters = writeAdapters(dir);
  // both servers up at once, idle while the other is measured; the modes alternate cell by cell
  // and each cell runs ROUNDS times (best tokens/s kept), so load from other jobs on this shared
  // machine falls on both sides alike rather than on whichever ran during a busy minute
  const servers = [];
  for (const [mode, maxBatch] of MODES) servers.push({ mode, ...(await startServer(adapters, maxBatch)) });
  try {
    for (const { url } of servers) {
      // warm-up: every adapter once
      for (const model of ADAPTERS) await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model, prompt: 'Hello', max_tokens: 4 }) });
    }
    for (const cell of CELLS) {
      for (const { mode, url, child } of servers) {
        let best = null;
        for (let round = 0; round < ROUNDS; round++) {
          const r = { mode, round, ...(await runCell(url, cell, child.pid)) };
          console.log(JSON.stringify(r));
          if (!best || r.tokens_per_s > best.tokens_per_s) best = r;
        }
        rows.push(best);
      }
    }
  } finally {
    for (const { child } of servers) {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
console.log(`load average after: ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
console.log(`\nbest of ${ROUNDS} rounds per cell (by tokens/s)\nmode                  clients  requests  tokens/s  tok/CPU-s    p50 ms    p99 ms  mean batch`);
for (const r of rows) {
  console.log(`${r.mode.padEnd(22)}${String(r.clients).padStart(7)}${String(r.requests).padStart(10)}${r.tokens_per_s.toFixed(1).padStart(10)}${r.tokens_per_cpu_s.toFixed(1).padStart(11)}${String(r.p50_ms).padStart(10)}${String(r.p99_ms).padStart(10)}${r.mean_batch.toFixed(2).padStart(12)}`);
}
