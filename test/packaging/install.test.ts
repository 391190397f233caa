/**
 * What a user gets: `npm pack`, then a fresh project installs the tarball with cmake, make and
 * every C/C++/CUDA compiler hidden from PATH (PATH holds only `node` and `sh`) and without the
 * network (`npm ci --offline` from npm's cache, which the repository's own `npm ci` filled), then
 * imports tunekit and trains LoRA for 2 steps on the built-in base, with the kernels chosen on
 * this CPU and again with the portable ones (TUNEKIT_ISA=portable). Prints the tarball's size
 * and the install time (docs/packaging.md records them).
 *
 * The consumer's lockfile is the repository's, production entries only, with the registry URLs
 * npm would record: resolving versions offline would need npm's cached registry metadata, which
 * a clean CI machine's `npm ci` (lockfile-driven) never fetches.
 */
import { describe, it, expect, afterAll } from 'vitest';
import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';

const ROOT = resolve(__dirname, '../..');
const onLinuxX64 = process.platform === 'linux' && process.arch === 'x64';
const work = mkdtempSync(join(tmpdir(), 'tunekit-install-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** npm's own entry point, run by this node (npm is not on the consumer's PATH). */
function npmCli(): string {
  const viaNode = join(dirname(realpathSync(process.execPath)), '..', 'lib', 'node_modules', 'npm', 'bin', 'npm-cli.js');
  if (existsSync(viaNode)) return viaNode;
  const which = spawnSync('sh', ['-c', 'command -v npm'], { encoding: 'utf8' }).stdout.trim();
  return join(dirname(realpathSync(which)), 'npm-cli.js');
}

function run(cmd: string, args: string[], opts: SpawnSyncOptions & { what: string }): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20, ...opts });
  if (r.status !== 0) throw new Error(`${opts.what} failed (exit ${r.status ?? r.signal}):\n${String(r.stdout).slice(-4000)}\n${String(r.stderr).slice(-4000)}`);
  return String(r.stdout);
}

interface ConsumerReport {
  losses: number[];
  backend: { gemmKernel: string; cpu: { avx2: boolean; avx512: boolean }; addon: { path: string; kind: string } };
  nativeExported: boolean;
  unexported: string;
  subpaths: Record<string, string>;
  sameObjects: boolean;
}

describe.runIf(onLinuxX64)('the packed package installs and trains without a compiler', () => {
  it('npm pack -> npm ci --offline (no cmake, make, cc, c++, nvcc) -> import, 2 training steps on each kernel family', () => {
    const npm = npmCli();
    // the consumer runs the committed prebuild: a stale one fails below in ways that do not say why
    const fresh = spawnSync(process.execPath, ['scripts/prebuild.mjs', '--check'], { cwd: ROOT, encoding: 'utf8' });
    expect(fresh.status, `the prebuild this test installs is stale:\n${fresh.stderr}`).toBe(0);
    // ---- pack (dist/ is fresh: the global setup built it)
    const packJson = run(process.execPath, [npm, 'pack', '--ignore-scripts', '--json', '--pack-destination', work], { cwd: ROOT, what: 'npm pack' });
    const pack = (JSON.parse(packJson) as { filename: string; size: number; unpackedSize: number; entryCount: number; files: { path: string }[] }[])[0]!;
    const shipped = new Set(pack.files.map((f) => f.path));
    for (const f of ['prebuilds/linux-x64/tunekit.glibc.node', 'prebuilds/linux-x64/sources.json', 'dist/index.js', 'dist/index.d.ts', 'dist/entries/rlhf.js', 'binding.gyp', 'native/napi/addon.cpp', 'models/tunekit-gpt2-small/model.safetensors']) {
      expect(shipped.has(f), `the tarball holds ${f}`).toBe(true);
    }
    const unwanted = [...shipped].filter((f) => f.endsWith('.map') || f.startsWith('lib/') || f.startsWith('test/') || f.startsWith('native/tests/') || f.startsWith('build/'));
    expect(unwanted, 'nothing of the development tree in the tarball').toEqual([]);

    // ---- a consumer project: package.json + lockfile (production entries of ours, registry URLs)
    const consumer = join(work, 'consumer');
    mkdirSync(consumer);
    const tgz = pack.filename;
    copyFileSync(join(work, tgz), join(consumer, tgz));
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as Record<string, unknown>;
    const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, Record<string, unknown>> };
    const packages: Record<string, Record<string, unknown>> = {
      '': { name: 'consumer', dependencies: { tunekit: `file:${tgz}` } },
      'node_modules/tunekit': {
        version: pkg.version, resolved: `file:${tgz}`, hasInstallScript: true, license: pkg.license, dependencies: pkg.dependencies, bin: pkg.bin, engines: pkg.engines,
        integrity: `sha512-${createHash('sha512').update(readFileSync(join(consumer, tgz))).digest('base64')}`,
      },
    };
    // the tarball URLs npm downloaded (and cached) them from: <registry>/<name>/-/<basename>-<version>.tgz
    const registry = run(process.execPath, [npm, 'config', 'get', 'registry'], { cwd: ROOT, what: 'npm config get registry' }).trim().replace(/\/$/, '');
    for (const [path, entry] of Object.entries(lock.packages)) {
      if (!path.startsWith('node_modules/') || entry.dev) continue;
      const name = path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length);
      packages[path] = { resolved: `${registry}/${name}/-/${name.split('/').pop()}-${String(entry.version)}.tgz`, ...entry };
    }
    writeFileSync(join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module', dependencies: { tunekit: `file:${tgz}` } }, null, 2));
    writeFileSync(join(consumer, 'package-lock.json'), JSON.stringify({ name: 'consumer', lockfileVersion: 3, requires: true, packages }, null, 2));
    copyFileSync(join(__dirname, 'fixtures', 'consumer_train.mjs'), join(consumer, 'train.mjs'));

    // ---- PATH with node and sh only: no build tool can run
    const bin = join(work, 'bin');
    mkdirSync(bin);
    symlinkSync(process.execPath, join(bin, 'node'));
    symlinkSync('/bin/sh', join(bin, 'sh'));
    const env = { HOME: process.env.HOME ?? work, PATH: bin, TMPDIR: work, ...(process.env.npm_config_cache ? { npm_config_cache: process.env.npm_config_cache } : {}) };
    const found = spawnSync('/bin/sh', ['-c', 'for t in cmake make cc c++ gcc g++ clang clang++ nvcc node-gyp python3; do command -v $t; done'], { env, encoding: 'utf8' });
    expect(found.stdout.trim().split('\n').filter((l) => l && !l.endsWith('/node')), 'build tools visible on the consumer PATH').toEqual([]);

    const t0 = performance.now();
    run(process.execPath, [npm, 'ci', '--offline', '--no-audit', '--no-fund', '--foreground-scripts'], { cwd: consumer, env, what: 'npm ci --offline in the consumer' });
    const installSeconds = (performance.now() - t0) / 1000;
    const installed = join(consumer, 'node_modules', 'tunekit');
    expect(existsSync(join(installed, 'build')), 'nothing was compiled at install').toBe(false);

    // ---- import and train: the kernels this CPU gets, then the portable ones
    const trainOn = (extra: Record<string, string>) => JSON.parse(run(process.execPath, ['train.mjs'], { cwd: consumer, env: { ...env, ...extra }, what: 'the consumer script' }).trim().split('\n').at(-1)!) as ConsumerReport;
    const best = trainOn({});
    const portable = trainOn({ TUNEKIT_ISA: 'portable' });
    const info = JSON.parse(run(join(consumer, 'node_modules', '.bin', 'tunekit'), ['info'], { cwd: consumer, env, what: 'tunekit info' })) as ConsumerReport['backend'];

    for (const r of [best, portable]) {
      expect(r.losses).toHaveLength(2);
      expect(r.losses.every(Number.isFinite)).toBe(true);
      expect(r.backend.addon).toEqual({ kind: 'prebuild', path: join(realpathSync(installed), 'prebuilds', 'linux-x64', 'tunekit.glibc.node') });
      expect(r.nativeExported).toBe(false);
      expect(r.unexported).toBe('ERR_PACKAGE_PATH_NOT_EXPORTED');
      expect(r.subpaths).toEqual({ rlhf: 'function', quant: 'function', data: 'function', io: 'function' });
      expect(r.sameObjects).toBe(true);
    }
    const expectedKernel = best.backend.cpu.avx512 ? 'avx512' : best.backend.cpu.avx2 ? 'avx2' : 'portable';
    expect(best.backend.gemmKernel).toBe(expectedKernel);
    expect(portable.backend.gemmKernel).toBe('portable');
    for (let i = 0; i < 2; i++) expect(Math.abs(portable.losses[i]! - best.losses[i]!)).toBeLessThan(1e-3 * Math.abs(best.losses[i]!));
    expect(info.gemmKernel).toBe(expectedKernel);
    expect(info.addon.kind).toBe('prebuild');

    console.log(
      `[packaging] tarball ${pack.filename}: ${(pack.size / 1e6).toFixed(2)} MB (${(pack.unpackedSize / 1e6).toFixed(2)} MB unpacked, ${pack.entryCount} files); ` +
        `npm ci --offline without compilers: ${installSeconds.toFixed(1)} s; kernel ${best.backend.gemmKernel}, losses ${best.losses.map((l) => l.toFixed(4)).join(', ')} ` +
        `(portable: ${portable.losses.map((l) => l.toFixed(4)).join(', ')})`,
    );
  }, 600_000);
});
