/**
 * One place where ops meet the binding: the kernel table (lib/tensor). Every file above lib/tensor
 * (autograd, optimizers, allocators, layers, models, peft, train, serve, CLI) reaches native code
 * through `run(op, ...)` / the typed wrappers of lib/tensor/kernels.ts, or, for process-level
 * calls (threads, memory statistics, backend info, collectives), through lib/backend.ts. Read from
 * the source: a value import of lib/native.ts (type imports are fine: the op argument types live
 * there) or a `native.<fn>` reference outside those files fails.
 */
import { describe, it, expect } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const LIB = path.join(ROOT, 'lib');

/** The files allowed to hold the binding: itself, the table's folder, and the process-level module. */
const ALLOWED = (rel: string) => rel === 'native.ts' || rel === 'backend.ts' || rel.startsWith('tensor/');

function tsFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? tsFiles(p) : e.name.endsWith('.ts') ? [p] : [];
  });
}

function stripComments(source: string): string {
  return source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1');
}

/**
 * Where a file reaches the binding: value imports of native.js (static, re-export or dynamic)
 * and references to a `native` identifier's members.
 */
export function bindingUses(source: string): string[] {
  const code = stripComments(source);
  const uses: string[] = [];
  const importRe = /\b(import|export)\s+(type\s+)?([^'";]*?)\s*from\s*['"]([^'"]*\/native\.js)['"]/g;
  for (const m of code.matchAll(importRe)) {
    if (m[2]) continue; // `import type { ... }`
    const names = m[3]!.replace(/^\{|\}$/g, '').split(',').map((s) => s.trim()).filter(Boolean);
    // `import { type A, type B }` imports types only
    if (names.length > 0 && names.every((n) => n.startsWith('type ')) && m[3]!.trim().startsWith('{')) continue;
    uses.push(m[0].replace(/\s+/g, ' '));
  }
  for (const m of code.matchAll(/\bimport\s*\(\s*['"]([^'"]*\/native\.js)['"]\s*\)/g)) uses.push(m[0]);
  for (const m of code.matchAll(/(?<![\w.$'"`/])native(?:\?)?\.(\w+)/g)) uses.push(m[0]);
  return uses;
}

describe('layering: nothing above lib/tensor calls the binding', () => {
  it('the scanner sees value imports and member calls, and passes type imports', () => {
    expect(bindingUses(`import { native } from '../native.js';\nnative.conv2dForward(a, 0);`)).toEqual([`import { native } from '../native.js'`, 'native.conv2dForward']);
    expect(bindingUses(`import type { Conv2dDims } from '../native.js';\nimport { type OpName } from '../native.js';`)).toEqual([]);
    expect(bindingUses(`export { native } from './native.js';`)).toHaveLength(1);
    expect(bindingUses(`const m = await import('../native.js');`)).toHaveLength(1);
    // comments, strings and other objects' `native` members are not calls
    expect(bindingUses(`// native.setNumThreads(4)\n/* native.svd */ const s = 'see native/cpu/svd.h'; x.native.y;`)).toEqual([]);
  });

  it('only lib/native.ts, lib/tensor and lib/backend.ts reach the binding', () => {
    const offending = tsFiles(LIB).flatMap((f) => {
      const rel = path.relative(LIB, f).split(path.sep).join('/');
      return ALLOWED(rel) ? [] : bindingUses(fs.readFileSync(f, 'utf8')).map((u) => `${rel}: ${u}`);
    });
    expect(offending).toEqual([]);
  });

  it('the files that did call it now use the table', () => {
    // the ops once called positionally from these files are kernels of native.cpu, run by name
    const expectRun: Record<string, string[]> = {
      'autograd/vision_ops.ts': ['conv2dForward', 'conv2dBackward', 'batchNormTrain', 'batchNormBackward', 'maxPool2d', 'avgPool2d', 'adaptiveAvgPool2d', 'loraConv2dForward'],
      'autograd/rules.ts': ['lstmBackward'],
      'peft/p_tuning/lstm.ts': ['lstmForward'],
      'peft/adalora/allocator.ts': ['adaloraUpdateScores', 'adaloraKthSmallest', 'adaloraCostThreshold', 'adaloraMask', 'adaloraApplyPattern'],
      'tensor/linalg.ts': ['svd'],
    };
    for (const [file, ops] of Object.entries(expectRun)) {
      const src = fs.readFileSync(path.join(LIB, file), 'utf8');
      for (const op of ops) expect(src, `${file} runs ${op}`).toMatch(new RegExp(`run\\('${op}'`));
    }
  });
});
