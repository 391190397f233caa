import { describe, it, expect, beforeAll } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Tokenizer } from '../../lib/tokenizer/index.js';
import { TunekitError } from '../../lib/errors.js';

// Expectations written by transformers / Python tokenizers: scripts/fixtures/make_tokenizer_fixtures.py
const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'tokenizers');
const expected = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'expected.json'), 'utf8'));

interface Sample {
  text: string; ids: number[]; ids_no_special: number[]; tokens: string[];
  offsets: Array<[number, number]>; decode: string; decode_skip_special: string;
}
interface Batch { settings: { padding: 'longest' | 'max_length'; max_length?: number; truncation?: boolean; padding_side?: 'left' | 'right' }; ids: number[][]; attention_mask: number[][] }
const BATCH = ['Hello world', 'Call me Ishmael.', 'a'];

for (const name of ['gpt2-bpe', 'bert-wordpiece', 'llama-bpe']) {
  const want = expected.tokenizers[name];
  describe(`${name} (written by Python tokenizers, saved by transformers)`, () => {
    let tok: Tokenizer;
    beforeAll(async () => { tok = await Tokenizer.fromFolder(path.join(FIXTURES, name)); });

    it('vocabulary size and special tokens', () => {
      expect(tok.vocabSize).toBe(want.vocab_size);
      expect(tok.bosToken).toBe(want.special.bos_token);
      expect(tok.eosToken).toBe(want.special.eos_token);
      expect(tok.padToken).toBe(want.special.pad_token);
      expect(tok.unkToken).toBe(want.special.unk_token);
      expect(tok.bosTokenId).toBe(want.special_ids.bos_token);
      expect(tok.eosTokenId).toBe(want.special_ids.eos_token);
      expect(tok.padTokenId).toBe(want.special_ids.pad_token);
      expect(tok.unkTokenId).toBe(want.special_ids.unk_token);
    });

    for (const s of want.samples as Sample[]) {
      it(`encodes and decodes ${JSON.stringify(s.text.slice(0, 40))}`, () => {
        const enc = tok.encode(s.text);
        expect(enc.ids).toEqual(s.ids);
        expect(enc.tokens).toEqual(s.tokens);
        expect(enc.attentionMask).toEqual(s.ids.map(() => 1));
        expect(tok.encode(s.text, { addSpecialTokens: false }).ids).toEqual(s.ids_no_special);
        if (enc.offsets) expect(enc.offsets).toEqual(s.offsets);
        expect(tok.decode(s.ids)).toBe(s.decode);
        expect(tok.decode(s.ids, { skipSpecialTokens: true })).toBe(s.decode_skip_special);
      });
    }

    for (const b of want.batches as Batch[]) {
      it(`pads and truncates a batch like transformers: ${JSON.stringify(b.settings)}`, () => {
        const out = tok.encodeBatch(BATCH, {
          padding: b.settings.padding, maxLength: b.settings.max_length, truncation: b.settings.truncation ?? false,
          paddingSide: b.settings.padding_side ?? 'right',
        });
        expect(out.ids.map((r) => [...r])).toEqual(b.ids);
        expect(out.attentionMask.map((r) => [...r])).toEqual(b.attention_mask);
        expect(out.shape).toEqual([b.ids.length, b.ids[0].length]);
        expect(out.inputIds).toBeInstanceOf(Int32Array);
        expect([...out.inputIds!]).toEqual(b.ids.flat());
      });
    }

    if (want.chat) {
      it('renders the chat template like apply_chat_template', () => {
        expect(tok.applyChatTemplate(want.chat.messages, { addGenerationPrompt: true })).toBe(want.chat.with_prompt);
        expect(tok.applyChatTemplate(want.chat.messages.slice(0, 3), { addGenerationPrompt: false })).toBe(want.chat.without_prompt);
        expect(tok.applyChatTemplate(want.chat.messages, { addGenerationPrompt: true, tokenize: true })).toEqual(want.chat.ids);
      });
    }
  });
}

describe('offsets', () => {
  it('are reported for byte-level and Llama-style BPE and slice the text', () => {
    for (const name of ['gpt2-bpe', 'llama-bpe']) {
      const tok = Tokenizer.fromFolderSync(path.join(FIXTURES, name));
      for (const s of expected.tokenizers[name].samples as Sample[]) {
        const enc = tok.encode(s.text);
        expect(enc.offsets, `${name} ${s.text}`).toEqual(s.offsets);
      }
    }
  });

  it('are left out where the normalizer cannot be aligned (BERT lowercasing/accents)', () => {
    const tok = Tokenizer.fromFolderSync(path.join(FIXTURES, 'bert-wordpiece'));
    expect(tok.encode('Hello').offsets).toBeUndefined();
  });
});

describe('truncation, padding and errors', () => {
  const bert = Tokenizer.fromFolderSync(path.join(FIXTURES, 'bert-wordpiece'));
  const gpt2 = Tokenizer.fromFolderSync(path.join(FIXTURES, 'gpt2-bpe'));

  it('keeps special tokens when truncating', () => {
    const enc = bert.encode('Call me Ishmael. Some years ago', { maxLength: 5 });
    expect(enc.ids.length).toBe(5);
    expect(enc.tokens[0]).toBe('[CLS]');
    expect(enc.tokens[4]).toBe('[SEP]');
    expect(bert.numSpecialTokensToAdd).toBe(2);
  });

  it('pads left, to max_length, and leaves ragged rows when asked', () => {
    const left = bert.encodeBatch(['a', 'hello world'], { padding: 'longest', paddingSide: 'left' });
    expect([...left.attentionMask[0]].slice(0, 2)).toEqual([0, 0]);
    expect(left.ids[0][0]).toBe(bert.padTokenId);
    const fixed = bert.encodeBatch(['a'], { padding: 'max_length', maxLength: 8 });
    expect(fixed.shape).toEqual([1, 8]);
    const ragged = bert.encodeBatch(['a', 'hello world'], { padding: false });
    expect(ragged.ids.map((r) => r.length)).toEqual([3, 7]);
    expect(ragged.inputIds).toBeUndefined();
  });

  it('refuses to pad without a pad token, saying what to do', () => {
    expect(() => gpt2.encodeBatch(['a', 'hello world'])).toThrowError(/pad token/);
    // Equal lengths need no pad token.
    expect(gpt2.encodeBatch(['a', 'b']).shape).toEqual([2, 1]);
  });

  it('validates arguments with TunekitError', () => {
    expect(() => gpt2.decode([1e9])).toThrowError(TunekitError);
    expect(() => gpt2.encode(3 as unknown as string)).toThrowError(/expected a string/);
    expect(gpt2.decode([])).toBe('');
    expect(() => Tokenizer.fromFolderSync(path.join(FIXTURES, 'nope'))).toThrowError(/tokenizer\.json/);
    expect(() => bert.applyChatTemplate([{ role: 'user', content: 'x' }])).toThrowError(/chat_template/);
  });
});

describe('fromFolder (fs/promises) and fromFolderSync', () => {
  it('load the same tokenizer from every fixture folder, chat_template.jinja included', async () => {
    for (const name of ['gpt2-bpe', 'bert-wordpiece', 'llama-bpe']) {
      const dir = path.join(FIXTURES, name);
      const a = await Tokenizer.fromFolder(dir), b = Tokenizer.fromFolderSync(dir);
      expect([a.vocabSize, a.bosTokenId, a.eosTokenId, a.padTokenId, a.unkTokenId, a.chatTemplate, a.paddingSide, a.source]).toEqual([b.vocabSize, b.bosTokenId, b.eosTokenId, b.padTokenId, b.unkTokenId, b.chatTemplate, b.paddingSide, b.source]);
      for (const s of expected.tokenizers[name].samples as Sample[]) expect(a.encode(s.text).ids).toEqual(s.ids);
    }
    // llama-bpe keeps its template in chat_template.jinja (transformers 5), read by both forms
    expect((await Tokenizer.fromFolder(path.join(FIXTURES, 'llama-bpe'))).chatTemplate).toBe(fs.readFileSync(path.join(FIXTURES, 'llama-bpe', 'chat_template.jinja'), 'utf8'));
  });

  it('reject as the blocking form throws: a missing folder, a directory as tokenizer.json, broken JSON', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tunekit-tok-async-'));
    try {
      const cases: [string, string, RegExp][] = [[path.join(FIXTURES, 'nope'), 'ERR_NOT_FOUND', /tokenizer\.json/]];
      const asDir = path.join(dir, 'asdir');
      fs.mkdirSync(path.join(asDir, 'tokenizer.json'), { recursive: true });
      cases.push([asDir, 'ERR_IO', /a directory/]);
      const broken = path.join(dir, 'broken');
      fs.mkdirSync(broken);
      fs.copyFileSync(path.join(FIXTURES, 'gpt2-bpe', 'tokenizer.json'), path.join(broken, 'tokenizer.json'));
      fs.writeFileSync(path.join(broken, 'tokenizer_config.json'), '{"eos_token": ');
      cases.push([broken, 'ERR_FORMAT', /tokenizer_config\.json/]);
      for (const [where, code, message] of cases) {
        const e = await Tokenizer.fromFolder(where).then(() => null, (err: TunekitError) => err);
        let s: TunekitError | null = null;
        try { Tokenizer.fromFolderSync(where); } catch (err) { s = err as TunekitError; }
        expect(e, where).toBeInstanceOf(TunekitError);
        expect([e!.code, e!.message]).toEqual([code, s!.message]);
        expect(e!.message).toMatch(message);
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('older folder layouts', () => {
  it('reads special_tokens_map.json (AddedToken dicts) and chat_template inside tokenizer_config.json', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tunekit-tok-'));
    fs.copyFileSync(path.join(FIXTURES, 'gpt2-bpe', 'tokenizer.json'), path.join(dir, 'tokenizer.json'));
    fs.writeFileSync(path.join(dir, 'special_tokens_map.json'), JSON.stringify({
      eos_token: { content: '<|endoftext|>', lstrip: false, normalized: false, rstrip: false, single_word: false },
      pad_token: '<|endoftext|>',
    }));
    fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify({
      chat_template: [{ name: 'default', template: '{{ messages[0].content }}{{ eos_token }}' }], padding_side: 'left',
    }));
    const tok = Tokenizer.fromFolderSync(dir);
    expect(tok.eosTokenId).toBe(0);
    expect(tok.padTokenId).toBe(0);
    expect(tok.paddingSide).toBe('left');
    expect(tok.applyChatTemplate([{ role: 'user', content: 'hi' }])).toBe('hi<|endoftext|>');
    expect([...tok.encodeBatch(['a', 'Hello world']).attentionMask[0]].slice(0, 5)).toEqual([0, 0, 0, 0, 0]);
    fs.rmSync(dir, { recursive: true });
  });
});
