/**
 * "builtin:<name>" resolves only the names of the folders in models/ (once "builtin:../../.."
 * loaded a folder outside the built-in models).
 */
import { describe, it, expect } from 'vitest';
import * as path from 'node:path';
import { resolveModelPath, builtinModelNames, builtinModelsDir } from '../../lib/models/builtin.js';
import { TunekitError } from '../../lib/errors.js';

describe('builtin: model names', () => {
  it('resolves a built-in name to its folder in models/', () => {
    expect(builtinModelNames()).toContain('tunekit-gpt2-small');
    expect(resolveModelPath('builtin:tunekit-gpt2-small')).toBe(path.join(builtinModelsDir(), 'tunekit-gpt2-small'));
    expect(resolveModelPath('some/folder')).toBe('some/folder');
  });

  it('refuses paths and unknown names with ERR_CONFIG listing the built-in models', () => {
    for (const spec of ['builtin:../../..', 'builtin:..', 'builtin:.', 'builtin:', 'builtin:/etc', 'builtin:tunekit-gpt2-small/../tunekit-gpt2-small',
      'builtin:../models/tunekit-gpt2-small', 'builtin:tunekit-gpt2-small/', 'builtin:nope']) {
      let err: unknown;
      try { resolveModelPath(spec); } catch (e) { err = e; }
      expect(err, spec).toBeInstanceOf(TunekitError);
      expect((err as TunekitError).code).toBe('ERR_CONFIG');
      expect((err as TunekitError).message).toContain('tunekit-gpt2-small');
      expect((err as TunekitError).message).toContain(JSON.stringify(spec.slice('builtin:'.length)));
    }
  });
});
