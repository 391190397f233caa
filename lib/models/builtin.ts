/**
 * Base models that ship inside the package (models/<name>/ at the package root), addressed as
 * "builtin:<name>" in configs.
 */
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TunekitError } from '../errors.js';

/** The package's models/ folder (works from lib/ in development and dist/ when installed). */
export function builtinModelsDir(): string {
  return join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'models');
}

export const DEFAULT_BASE_MODEL = 'tunekit-gpt2-small';

/** Resolves "builtin:<name>" to its folder; other paths are returned as they are. */
export function resolveModelPath(spec: string): string {
  if (!spec.startsWith('builtin:')) return spec;
  const name = spec.slice('builtin:'.length);
  const dir = join(builtinModelsDir(), name);
  if (!existsSync(join(dir, 'config.json'))) {
    const have = existsSync(builtinModelsDir()) ? readdirSync(builtinModelsDir()).filter((d) => existsSync(join(builtinModelsDir(), d, 'config.json'))) : [];
    throw new TunekitError('ERR_NOT_FOUND', `no built-in model '${name}' (have: ${have.join(', ') || 'none'}). Built-in models are made by scripts/pretrain-base.sh.`);
  }
  return dir;
}
