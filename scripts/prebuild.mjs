#!/usr/bin/env node
/**
 * The CPU prebuild that ships in the package: prebuilds/linux-x64/tunekit.glibc.node (N-API 8,
 * stripped; AVX-512 / AVX2 / portable kernels chosen at run time), built by prebuildify through
 * node-gyp from binding.gyp, and beside it prebuilds/linux-x64/sources.json: a SHA-256 of every
 * file the binary is built from (binding.gyp, native/core, native/cpu, native/napi) and the
 * node-addon-api version, so a test can tell when the committed binary no longer matches the C++.
 *
 *   npm run prebuildify                  rebuild it and record the sources (about 1-2 min on 2 cores)
 *   node scripts/prebuild.mjs --check    exit 1, naming the changed files, when it is stale
 *
 * Run the build through npm: node-gyp finds Node's headers through npm's `nodedir` setting
 * (npm_config_nodedir), and downloads them otherwise. The build runs in a temporary copy of the
 * sources, because node-gyp's `rebuild` empties build/, where the CMake build lives.
 */
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const TARGET = 'linux-x64';
const OUT_DIR = join(ROOT, 'prebuilds', TARGET);
const BINARY = 'tunekit.glibc.node'; // prebuildify's name: <package>.<libc tag>.node (N-API: no ABI tag)
const MANIFEST = join(OUT_DIR, 'sources.json');
/** What binding.gyp compiles (native/cuda, native/tests and native/bench are not in the CPU addon). */
const SOURCE_DIRS = ['native/core', 'native/cpu', 'native/napi'];

function sourceFiles() {
  const files = ['binding.gyp'];
  for (const d of SOURCE_DIRS) {
    for (const e of readdirSync(join(ROOT, d), { withFileTypes: true, recursive: true })) {
      if (e.isFile()) files.push(relative(ROOT, join(e.parentPath, e.name)));
    }
  }
  return files.sort();
}

/** path -> first 16 hex digits of the file's SHA-256, and the hash over all of them (+ node-addon-api's version). */
export function hashSources() {
  const files = {};
  for (const f of sourceFiles()) files[f] = createHash('sha256').update(readFileSync(join(ROOT, f))).digest('hex').slice(0, 16);
  const nodeAddonApi = JSON.parse(readFileSync(join(ROOT, 'node_modules', 'node-addon-api', 'package.json'), 'utf8')).version;
  const all = createHash('sha256').update(JSON.stringify({ files, nodeAddonApi })).digest('hex');
  return { sourcesHash: all, nodeAddonApi, files };
}

function check() {
  if (!existsSync(MANIFEST) || !existsSync(join(OUT_DIR, BINARY))) {
    console.error(`no prebuild: ${relative(ROOT, join(OUT_DIR, BINARY))} or its sources.json is missing. Run \`npm run prebuildify\`.`);
    return 1;
  }
  const recorded = JSON.parse(readFileSync(MANIFEST, 'utf8'));
  const now = hashSources();
  if (recorded.sourcesHash === now.sourcesHash) {
    console.log(`prebuild ${relative(ROOT, join(OUT_DIR, BINARY))} matches the native sources (${now.sourcesHash.slice(0, 12)})`);
    return 0;
  }
  const changed = [];
  for (const [f, h] of Object.entries(now.files)) {
    if (!(f in recorded.files)) changed.push(`added    ${f}`);
    else if (recorded.files[f] !== h) changed.push(`changed  ${f}`);
  }
  for (const f of Object.keys(recorded.files)) if (!(f in now.files)) changed.push(`removed  ${f}`);
  if (recorded.nodeAddonApi !== now.nodeAddonApi) changed.push(`node-addon-api ${recorded.nodeAddonApi} -> ${now.nodeAddonApi}`);
  console.error(
    `the committed prebuild is stale: the native sources changed since it was built:\n  ${changed.join('\n  ')}\n` +
      'Run `npm run prebuildify` and commit prebuilds/linux-x64/ with the C++ change.',
  );
  return 1;
}

/** Highest GLIBC_x.y and GLIBCXX_x.y.z version strings referenced by an ELF file (its .gnu.version_r names). */
function requiredVersions(elf) {
  const text = elf.toString('latin1');
  const cmp = (a, b) => {
    for (let i = 0; i < Math.max(a.length, b.length); i++) if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) - (b[i] ?? 0);
    return 0;
  };
  const newest = (re) => {
    let best = null;
    for (const [, v] of text.matchAll(re)) {
      const n = v.split('.').map(Number);
      if (!best || cmp(n, best) > 0) best = n;
    }
    return best ? best.join('.') : null;
  };
  return { glibc: newest(/GLIBC_(\d+(?:\.\d+)+)/g), glibcxx: newest(/GLIBCXX_(\d+(?:\.\d+)+)/g) };
}

function run(cmd, args, opts) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', ...opts });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.status ?? r.signal})`);
}

function build() {
  if (`${process.platform}-${process.arch}` !== TARGET) throw new Error(`the shipped prebuild is ${TARGET}; this machine is ${process.platform}-${process.arch}`);
  if (!process.env.npm_config_nodedir) {
    console.warn('npm_config_nodedir is not set: node-gyp will download Node\'s headers. Run this as `npm run prebuildify` to use npm\'s nodedir.');
  }
  const t0 = Date.now();
  const work = mkdtempSync(join(tmpdir(), 'tunekit-prebuild-'));
  try {
    cpSync(join(ROOT, 'binding.gyp'), join(work, 'binding.gyp'));
    cpSync(join(ROOT, 'package.json'), join(work, 'package.json'));
    for (const d of SOURCE_DIRS) cpSync(join(ROOT, d), join(work, d), { recursive: true });
    symlinkSync(join(ROOT, 'node_modules'), join(work, 'node_modules'), 'dir');
    run(process.execPath, [join(ROOT, 'node_modules', 'prebuildify', 'bin.js'), '--napi', '--strip', '--tag-libc'], {
      cwd: work,
      env: { ...process.env, JOBS: String(availableParallelism()) },
    });
    const built = join(work, 'prebuilds', TARGET, BINARY);
    if (!existsSync(built)) throw new Error(`prebuildify did not write ${relative(work, built)}`);
    rmSync(OUT_DIR, { recursive: true, force: true });
    mkdirSync(OUT_DIR, { recursive: true });
    cpSync(built, join(OUT_DIR, BINARY));
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  const compiler = spawnSync('c++', ['--version'], { encoding: 'utf8' }).stdout?.split('\n')[0] ?? 'unknown';
  const manifest = {
    binary: BINARY,
    bytes: statSync(join(OUT_DIR, BINARY)).size,
    napiVersion: 8,
    // the newest symbol versions the binary links against: the oldest glibc / libstdc++ it loads on
    requires: requiredVersions(readFileSync(join(OUT_DIR, BINARY))),
    builtWith: { compiler, node: process.version },
    ...hashSources(),
  };
  writeFileSync(MANIFEST, `${JSON.stringify(manifest, null, 2)}\n`);
  console.log(`wrote ${relative(ROOT, join(OUT_DIR, BINARY))} (${manifest.bytes} bytes) in ${((Date.now() - t0) / 1000).toFixed(0)} s; sources ${manifest.sourcesHash.slice(0, 12)}`);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  if (process.argv.includes('--check')) process.exit(check());
  build();
}
