/** Bad folders and configs fail with errors that say what is wrong. */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadPretrainedSync, supportedModelTypes } from '../../lib/models/index.js';
import { openCheckpointSync, writeSafetensorsSync } from '../../lib/io/safetensors.js';
import { TunekitError } from '../../lib/errors.js';
import { dir, readJson } from './helpers.js';

let tmp: string;
beforeAll(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tunekit-models-err-')); });
afterAll(() => { fs.rmSync(tmp, { recursive: true, force: true }); });

/** A copy of a fixture folder with its config edited and/or tensors dropped. */
function variant(name: string, opts: { config?: (c: Record<string, unknown>) => void; drop?: (key: string) => boolean; noConfig?: boolean }): string {
  const out = fs.mkdtempSync(path.join(tmp, `${name}-`));
  const cfg = readJson<Record<string, unknown>>(path.join(dir(name), 'config.json'));
  opts.config?.(cfg);
  if (!opts.noConfig) fs.writeFileSync(path.join(out, 'config.json'), JSON.stringify(cfg));
  const ck = openCheckpointSync(dir(name));
  try {
    const tensors = [...ck.names].filter((k) => !opts.drop?.(k)).map((k) => ck.readTensor(k));
    writeSafetensorsSync(path.join(out, 'model.safetensors'), tensors, { format: 'pt' });
  } finally {
    ck.close();
  }
  return out;
}

function errorOf(fn: () => unknown): TunekitError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(TunekitError);
    return e as TunekitError;
  }
  throw new Error('expected an error');
}

describe('loading errors', () => {
  it('registers gpt2, bert, llama, qwen2 and mistral', () => {
    expect(supportedModelTypes()).toEqual(expect.arrayContaining(['gpt2', 'bert', 'llama', 'qwen2', 'mistral']));
  });

  it('a folder without config.json', () => {
    const e = errorOf(() => loadPretrainedSync(variant('llama_lm', { noConfig: true })));
    expect(e.code).toBe('ERR_NOT_FOUND');
    expect(e.message).toMatch(/no config\.json/);
  });

  it('an unknown model_type lists the supported ones', () => {
    const e = errorOf(() => loadPretrainedSync(variant('llama_lm', { config: (c) => { c.model_type = 'falcon'; } })));
    expect(e.code).toBe('ERR_CONFIG');
    expect(e.message).toMatch(/Unknown model_type "falcon"/);
    for (const t of ['gpt2', 'bert', 'llama']) expect(e.message).toContain(`'${t}'`);
  });

  it('a tensor whose shape disagrees with config.json is named', () => {
    const e = errorOf(() => loadPretrainedSync(variant('llama_lm', { config: (c) => { c.intermediate_size = 96; } })));
    expect(e.code).toBe('ERR_SHAPE');
    expect(e.message).toMatch(/'model\.layers\.0\.mlp\.(gate|up|down)_proj\.weight' has shape \[(80,48|48,80)\]/);
    const b = errorOf(() => loadPretrainedSync(variant('bert_tokcls', { config: (c) => { c.max_position_embeddings = 32; } }), { task: 'token_cls' }));
    expect(b.message).toMatch(/'bert\.embeddings\.position_embeddings\.weight' has shape \[64,48\].*\[32,48\]/);
  });

  it('missing trunk weights are listed', () => {
    const e = errorOf(() => loadPretrainedSync(variant('bert_seqcls', { drop: (k) => k.includes('layer.1.attention.self.query') }), { task: 'seq_cls' }));
    expect(e.code).toBe('ERR_FORMAT');
    expect(e.message).toMatch(/lacks 2 weight\(s\).*bert\.encoder\.layer\.1\.attention\.self\.query\.weight/);
    const l = errorOf(() => loadPretrainedSync(variant('llama_lm', { drop: (k) => k === 'model.norm.weight' })));
    expect(l.message).toMatch(/model\.norm\.weight/);
  });

  it('no weights at all', () => {
    const out = fs.mkdtempSync(path.join(tmp, 'empty-'));
    fs.copyFileSync(path.join(dir('gpt2_lm'), 'config.json'), path.join(out, 'config.json'));
    expect(() => loadPretrainedSync(out)).toThrow(TunekitError);
  });

  it('BERT has no causal LM head', () => {
    const e = errorOf(() => loadPretrainedSync(dir('bert_seqcls')));
    expect(e.message).toMatch(/BERT has no causal LM head/);
  });

  it('config values tunekit cannot honour are refused', () => {
    expect(() => loadPretrainedSync(variant('llama_lm', { config: (c) => { c.hidden_act = 'mish'; } }))).toThrow(/hidden_act 'mish'/);
    expect(() => loadPretrainedSync(variant('bert_tokcls', { config: (c) => { c.position_embedding_type = 'relative_key'; } }), { task: 'token_cls' })).toThrow(/relative_key/);
    expect(() => loadPretrainedSync(variant('qwen2_lm', { config: (c) => { c.use_sliding_window = true; } }))).toThrow(/sliding_window/);
  });
});
