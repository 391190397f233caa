/**
 * `tunekit serve` as a user runs it (node dist/cli/main.js): it prints where it listens, a greedy
 * completion with an adapter equals `tunekit generate --adapter` on the same prompt, SIGTERM
 * drains and exits 0; bad command lines and configs fail with a typed error before binding anything.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeServeWorld, type ServeWorld } from './helpers.js';
import { serveConfigFromArgs } from '../../lib/cli/serve.js';
import { TunekitServer } from '../../lib/serve/server.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const MAIN = path.join(ROOT, 'dist', 'cli', 'main.js');

let w: ServeWorld;
beforeAll(() => {
  expect(fs.existsSync(MAIN)).toBe(true); // built by test/global_setup.ts
  w = makeServeWorld();
});
afterAll(() => w?.cleanup());

function cli(args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1', TUNEKIT_API_KEY: '' }, timeout: 60_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

describe('tunekit serve (CLI)', () => {
  it('serves an adapter with the text tunekit generate gives, and drains on SIGTERM', async () => {
    const prompt = 'Hello there';
    const child = spawn(process.execPath, [MAIN, 'serve', '--model', w.modelDir, '--served-model-name', 'tiny', '--adapter', `alpha=${w.adapterDirs.alpha}`, '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      let out = '';
      const url = await new Promise<string>((resolve, reject) => {
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          const m = /on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
          if (m) resolve(m[1]!);
        });
        child.on('exit', (code) => reject(new Error(`serve exited with ${code}: ${out}`)));
      });
      expect(out).toMatch(/tiny \+ 1 adapter \(alpha\)/);
      const res = await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'alpha', prompt, max_tokens: 10, temperature: 0 }) });
      const body = (await res.json()) as { choices: { text: string; finish_reason: string }[] };
      expect(body.choices[0]!.finish_reason).toBe('length'); // no EOS: the CLI's printed text is comparable
      const gen = cli(['generate', '--model', w.modelDir, '--adapter', w.adapterDirs.alpha!, '--prompt', prompt, '--temperature', '0', '--max-new-tokens', '10']);
      expect(gen.code, gen.stderr).toBe(0);
      expect(gen.stdout).toBe(`${prompt}${body.choices[0]!.text}\n`);
    } finally {
      const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    }
  });

  it('refuses bad command lines with a typed error before binding anything', async () => {
    expect(serveConfigFromArgs(['--help'])).toBeNull();
    expect(() => serveConfigFromArgs(['--model', w.modelDir, '--adapter', 'alpha'])).toThrow(/--adapter: expected <name>=<folder>/);
    const start = (args: string[]) => TunekitServer.start(serveConfigFromArgs(args));
    await expect(start(['--model', w.modelDir, '--host', '0.0.0.0', '--port', '0'])).rejects.toMatchObject({ code: 'ERR_CONFIG', message: expect.stringMatching(/API key/) });
    await expect(start(['--model', w.modelDir, '--max-batch', 'many'])).rejects.toMatchObject({ code: 'ERR_CONFIG', message: expect.stringMatching(/limits\.max_batch: expected a number/) });
    await expect(start(['--model', w.modelDir, '--adapter', `p=${w.dir}/nowhere`, '--port', '0'])).rejects.toMatchObject({ code: 'ERR_NOT_FOUND' });
    // a config file, with a flag over it
    const cfg = path.join(w.dir, 'serve.yaml');
    fs.writeFileSync(cfg, `model: ${w.modelDir}\nadapters:\n  alpha: ${w.adapterDirs.alpha}\nlimits:\n  max_batch: 3\n  max_tokens: 50\n`);
    expect(serveConfigFromArgs([cfg, '--max-batch', '5'])).toMatchObject({ model: w.modelDir, adapters: { alpha: w.adapterDirs.alpha }, limits: { max_batch: 5, max_tokens: 50 } });
    fs.writeFileSync(cfg, 'model: x\nmodel: y\n');
    expect(() => serveConfigFromArgs([cfg])).toThrow(/serve config/);
  });
});
