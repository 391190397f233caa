/**
 * Base models that ship inside the package (models/<name>/ at the package root), addressed as
 * "builtin:<name>" in configs. Only the names of the folders in models/ that hold a config.json
 * are accepted: a name is looked up in that list, never joined into a path, so
 * "builtin:../../.." cannot reach a folder outside models/.
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

/**
 * The built-in model names: folders of models/ holding a config.json (sorted).
 * @example builtinModelNames() // ['tunekit-gpt2-small']
 */
export function builtinModelNames(): string[] {
  const root = builtinModelsDir();
  if (!existsSync(root)) return [];
  return readdirSync(root, { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(join(root, d.name, 'config.json')))
    .map((d) => d.name)
    .sort();
}

/**
 * Resolves "builtin:<name>" to its folder; other paths are returned as they are. A name that is
 * not one of builtinModelNames() is an ERR_CONFIG listing them.
 * @example resolveModelPath('builtin:tunekit-gpt2-small') // '<package>/models/tunekit-gpt2-small'
 */
export function resolveModelPath(spec: string): string {
  if (!spec.startsWith('builtin:')) return spec;
  const name = spec.slice('builtin:'.length);
  const have = builtinModelNames();
  if (!have.includes(name)) {
    throw new TunekitError('ERR_CONFIG', `model: no built-in model ${JSON.stringify(name)} (built-in models: ${have.join(', ') || 'none'}; they are made by scripts/pretrain-base.sh). Give a folder path for any other model.`);
  }
  return join(builtinModelsDir(), name);
}
