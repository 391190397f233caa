import { describe, it, expect } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { trainByteLevelBpe, saveTrainedBpe, Tokenizer } from '../../lib/tokenizer/index.js';

// Our trainer's output checked by Python: scripts/fixtures/make_tokenizer_fixtures.py runs this
// file with TUNEKIT_TOKENIZER_EXPORT set, loads what it writes with Python `tokenizers` and
// transformers, and records the outcome in python_on_ours.json.
const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'tokenizers');
const expected = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'expected.json'), 'utf8'));
const SAMPLES: string[] = expected.tokenizers['gpt2-bpe'].samples.map((s: { text: string }) => s.text);

function trainOurs() {
  const corpus = fs.readFileSync(path.join(FIXTURES, 'corpus.txt'), 'utf8');
  const bpe = trainByteLevelBpe(corpus.split('\n'), { vocabSize: 600, minFrequency: 2, specialTokens: ['<|endoftext|>'] });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tunekit-bpe-'));
  saveTrainedBpe(dir, bpe, { eosToken: '<|endoftext|>', bosToken: '<|endoftext|>' });
  const tok = Tokenizer.fromFolderSync(dir);
  const json = fs.readFileSync(path.join(dir, 'tokenizer.json'));
  const samples = SAMPLES.map((text) => {
    const ids = tok.encode(text).ids;
    return { text, ids, decode: tok.decode(ids) };
  });
  return { dir, json, sha: createHash('sha256').update(json).digest('hex'), samples };
}

describe('our BPE trainer, checked by Python', () => {
  const exportDir = process.env.TUNEKIT_TOKENIZER_EXPORT;

  it.runIf(exportDir)('exports our trained tokenizer for the fixture script', () => {
    const ours = trainOurs();
    fs.writeFileSync(path.join(exportDir!, 'tokenizer.json'), ours.json);
    fs.writeFileSync(path.join(exportDir!, 'ours.json'), JSON.stringify({ tokenizer_json_sha256: ours.sha, samples: ours.samples }));
    fs.rmSync(ours.dir, { recursive: true });
  });

  it.skipIf(exportDir)('Python tokenizers and transformers load our tokenizer.json and give our ids', () => {
    const py = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'python_on_ours.json'), 'utf8'));
    expect(py.problems).toEqual([]);
    expect(py.ok).toBe(true);
    const ours = trainOurs();
    fs.rmSync(ours.dir, { recursive: true });
    // Training is deterministic: today's output is the file Python checked, byte for byte.
    expect(ours.sha).toBe(py.tokenizer_json_sha256);
    expect(py.vocab_size).toBe(600);
    expect(ours.samples.map((s) => s.ids)).toEqual(py.samples.map((s: { ids: number[] }) => s.ids));
    expect(ours.samples.map((s) => s.decode)).toEqual(py.samples.map((s: { decode: string }) => s.decode));
    expect(ours.samples.map((s) => s.decode)).toEqual(SAMPLES);
  });
});
