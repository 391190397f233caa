/**
 * The layering of the training code, read from the import statements of lib/train and lib/rlhf
 * (static, re-exports and dynamic import()s, type-only ones included):
 *  - lib/train imports nothing from lib/rlhf (the RLHF objectives sit on top of the Trainer and
 *    register their jobs with runTraining; the two folders used to import each other);
 *  - no import cycle among the files of both folders;
 *  - optimizer, schedules, metrics, checkpoints, progress and plotting import nothing above
 *    them (no Trainer, objective, runner or RLHF module), so both kinds of objective build on them;
 *  - one plotter: lib/train/plot.ts is the only file of either folder that writes SVG.
 */
import { describe, it, expect } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const LIB = path.join(ROOT, 'lib');

function tsFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? tsFiles(p) : e.name.endsWith('.ts') ? [p] : [];
  });
}

/** Module specifiers of a file: `import ... from`, `import '...'`, `export ... from`, `import('...')`. */
export function importSpecifiers(source: string): string[] {
  const code = source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
  const out: string[] = [];
  const patterns = [/\b(?:import|export)\s[^'"]*?\sfrom\s*['"]([^'"]+)['"]/g, /\bimport\s*['"]([^'"]+)['"]/g, /\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g];
  for (const re of patterns) for (const m of code.matchAll(re)) out.push(m[1]!);
  return out;
}

/** lib-relative paths of the lib files a file imports (packages and node: modules left out). */
function libImports(file: string): string[] {
  return importSpecifiers(fs.readFileSync(file, 'utf8'))
    .filter((s) => s.startsWith('.'))
    .map((s) => path.relative(LIB, path.resolve(path.dirname(file), s.replace(/\.js$/, '.ts'))).split(path.sep).join('/'));
}

const files = [...tsFiles(path.join(LIB, 'train')), ...tsFiles(path.join(LIB, 'rlhf'))];
const graph = new Map(files.map((f) => [path.relative(LIB, f).split(path.sep).join('/'), libImports(f)]));

describe('layering of lib/train and lib/rlhf', () => {
  it('the import parser sees every kind of import', () => {
    expect(importSpecifiers(`import { a } from './a.js';\nimport type { B } from "../b.js";\nexport * from './c.js';\nimport './d.js';\nconst e = await import('./e.js');\n// import { f } from './f.js';`))
      .toEqual(['./a.js', '../b.js', './c.js', './d.js', './e.js']);
    expect(graph.get('train/trainer.ts')).toContain('train/optimizer.ts');
  });

  it('lib/train imports nothing from lib/rlhf', () => {
    const offending = [...graph].flatMap(([f, deps]) => (f.startsWith('train/') ? deps.filter((d) => d.startsWith('rlhf/')).map((d) => `${f} -> ${d}`) : []));
    expect(offending).toEqual([]);
    // and lib/rlhf does build on the Trainer
    expect(graph.get('rlhf/ppo.ts')).toContain('train/trainer.ts');
  });

  it('no import cycle among their files', () => {
    const cycles: string[] = [];
    const state = new Map<string, 'open' | 'done'>();
    const stack: string[] = [];
    const visit = (f: string) => {
      state.set(f, 'open');
      stack.push(f);
      for (const d of graph.get(f) ?? []) {
        if (!graph.has(d)) continue;
        if (state.get(d) === 'open') cycles.push([...stack.slice(stack.indexOf(d)), d].join(' -> '));
        else if (!state.has(d)) visit(d);
      }
      stack.pop();
      state.set(f, 'done');
    };
    for (const f of graph.keys()) if (!state.has(f)) visit(f);
    expect(cycles).toEqual([]);
  });

  it('optimizer, schedules, metrics, checkpoints, progress and plotting sit below every objective', () => {
    const low = ['optimizer', 'lr_schedule', 'metrics_log', 'checkpoint', 'progress', 'plot'].map((n) => `train/${n}.ts`);
    for (const f of low) {
      const above = (graph.get(f) ?? []).filter((d) => d.startsWith('rlhf/') || (d.startsWith('train/') && !low.includes(d)));
      expect(above, f).toEqual([]);
    }
  });

  it('one plotter: only lib/train/plot.ts writes SVG', () => {
    const writers = files.filter((f) => /<svg\b/.test(fs.readFileSync(f, 'utf8'))).map((f) => path.relative(LIB, f).split(path.sep).join('/'));
    expect(writers).toEqual(['train/plot.ts']);
  });
});
