/**
 * tunekit serve over HTTP, driven by the official `openai` client on 127.0.0.1: greedy outputs of
 * mixed-adapter batches equal generate() alone with each adapter (completions, chat, streaming),
 * stop strings, bad requests in OpenAI's error shape with their HTTP codes (the server keeps
 * serving), API keys, limits (429, 504, 413), client disconnect, runtime adapter loading and a
 * graceful shutdown that drains.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import OpenAI from 'openai';
import { makeServeWorld, type ServeWorld } from './helpers.js';
import { loadPretrainedSync, type PretrainedModel } from '../../lib/models/index.js';
import { Tokenizer } from '../../lib/tokenizer/index.js';
import { loadPeftFolderSync } from '../../lib/peft/index.js';
import { generate } from '../../lib/models/generate.js';
import { TunekitServer } from '../../lib/serve/server.js';

let w: ServeWorld;
let tok: Tokenizer;
let server: TunekitServer;
let client: OpenAI;

function adaptersOf(names: string[]): Record<string, string> {
  return Object.fromEntries(names.map((n) => [n, w.adapterDirs[n]!]));
}

/** generate() alone, greedy, with one adapter (or none): the text the server must return. */
async function alone(adapter: string | null, promptIds: number[], maxNewTokens: number): Promise<{ text: string; tokens: number[] }> {
  let { model } = loadPretrainedSync(w.modelDir, { task: 'causal_lm' });
  if (adapter) model = loadPeftFolderSync(model, w.adapterDirs[adapter]!) as unknown as PretrainedModel;
  const r = await generate(model, [promptIds], { tokenizer: tok, maxNewTokens, temperature: 0, eosTokenId: tok.eosTokenId ?? null });
  model.dispose();
  let tokens = r.sequences[0]!;
  const eos = tokens.indexOf(tok.eosTokenId!);
  if (eos >= 0) tokens = tokens.slice(0, eos + 1);
  return { text: tok.decode(tokens, { skipSpecialTokens: true }), tokens };
}

const ids = (text: string) => tok.encode(text, { addSpecialTokens: false }).ids;

async function rawPost(base: string, path: string, body: string | Buffer, headers: Record<string, string> = {}): Promise<{ status: number; json: { error: { message: string; type: string; code: string | null; param: string | null } } }> {
  const res = await fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
  return { status: res.status, json: await res.json() as never };
}

async function metric(base: string, line: RegExp, headers: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(`${base}/metrics`, { headers })).text();
  const m = text.split('\n').find((l) => line.test(l));
  return m ? Number(m.split(' ').pop()) : NaN;
}

beforeAll(async () => {
  w = makeServeWorld();
  tok = Tokenizer.fromFolderSync(w.modelDir);
  server = await TunekitServer.start({
    model: w.modelDir, served_model_name: 'tiny', adapters: adaptersOf(['alpha', 'beta', 'gamma']), port: 0,
    limits: { max_batch: 8, max_tokens: 400, max_body_bytes: 16 * 1024 },
  });
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
});

afterAll(async () => {
  await server?.close();
  w?.cleanup();
});

describe('tunekit serve with the openai client', () => {
  it('lists the base and each adapter', async () => {
    const models = [];
    for await (const m of client.models.list()) models.push(m.id);
    expect(models).toEqual(['tiny', 'alpha', 'beta', 'gamma']);
  });

  it('mixed-adapter batches give each request the greedy text of generate() alone with its adapter', async () => {
    const cases: { model: string; prompt: string; max: number; kind: 'completion' | 'stream' | 'chat' }[] = [
      { model: 'alpha', prompt: 'Hello there', max: 12, kind: 'completion' },
      { model: 'beta', prompt: 'The spam filter', max: 9, kind: 'completion' },
      { model: 'gamma', prompt: 'free money now', max: 14, kind: 'stream' },
      { model: 'tiny', prompt: 'a', max: 10, kind: 'completion' },
      { model: 'beta', prompt: 'Meeting at noon tomorrow please', max: 8, kind: 'chat' },
      { model: 'alpha', prompt: 'win a prize', max: 11, kind: 'stream' },
      { model: 'gamma', prompt: 'See you', max: 6, kind: 'chat' },
    ];
    const chatIds = (p: string) => tok.applyChatTemplate([{ role: 'user', content: p }], { addGenerationPrompt: true, tokenize: true });
    const expected = await Promise.all(cases.map((c) => alone(c.model === 'tiny' ? null : c.model, c.kind === 'chat' ? chatIds(c.prompt) : ids(c.prompt), c.max)));
    // the adapters change the text, or this test could not tell them apart
    expect(new Set(expected.map((e) => e.text)).size).toBe(cases.length);
    const before = await metric(server.url, /^tunekit_mixed_adapter_steps_total/);
    const got = await Promise.all(cases.map(async (c) => {
      if (c.kind === 'chat') {
        const r = await client.chat.completions.create({ model: c.model, messages: [{ role: 'user', content: c.prompt }], max_tokens: c.max, temperature: 0 });
        return { text: r.choices[0]!.message.content, finish: r.choices[0]!.finish_reason, usage: r.usage };
      }
      if (c.kind === 'stream') {
        const s = await client.completions.create({ model: c.model, prompt: c.prompt, max_tokens: c.max, temperature: 0, stream: true, stream_options: { include_usage: true } });
        let text = '';
        let finish: string | null = null;
        let usage = null;
        for await (const ch of s) {
          if (ch.choices[0]) {
            text += ch.choices[0].text;
            finish = ch.choices[0].finish_reason ?? finish;
          }
          if (ch.usage) usage = ch.usage;
        }
        return { text, finish, usage };
      }
      const r = await client.completions.create({ model: c.model, prompt: c.prompt, max_tokens: c.max, temperature: 0 });
      return { text: r.choices[0]!.text, finish: r.choices[0]!.finish_reason, usage: r.usage };
    }));
    got.forEach((g, i) => {
      const e = expected[i]!;
      const hitEos = e.tokens.at(-1) === tok.eosTokenId;
      expect(g.text, `${cases[i]!.model} ${cases[i]!.kind}`).toBe(e.text);
      expect(g.finish).toBe(hitEos ? 'stop' : 'length');
      expect(g.usage?.completion_tokens).toBe(e.tokens.length);
    });
    expect(await metric(server.url, /^tunekit_mixed_adapter_steps_total/)).toBeGreaterThan(before);
    expect(await metric(server.url, /^tunekit_max_adapters_in_step/)).toBeGreaterThanOrEqual(3);
  });

  it('streams chat deltas that add up to the text, and cuts at a stop string', async () => {
    const full = await client.completions.create({ model: 'beta', prompt: 'The spam filter', max_tokens: 12, temperature: 0 });
    const text = full.choices[0]!.text;
    const stop = text.slice(4, 7);
    expect(stop.length).toBe(3);
    const cut = await client.completions.create({ model: 'beta', prompt: 'The spam filter', max_tokens: 12, temperature: 0, stop: [stop] });
    expect(cut.choices[0]!.text).toBe(text.slice(0, text.indexOf(stop)));
    expect(cut.choices[0]!.finish_reason).toBe('stop');
    const counted = /^tunekit_requests_total\{endpoint="\/v1\/chat\/completions",status="200"\}/;
    const before = (await metric(server.url, counted)) || 0;
    const s = await client.chat.completions.create({ model: 'alpha', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 7, temperature: 0, stream: true });
    let deltas = '';
    let role: string | undefined;
    for await (const ch of s) {
      role ??= ch.choices[0]?.delta.role;
      deltas += ch.choices[0]?.delta.content ?? '';
    }
    const whole = await client.chat.completions.create({ model: 'alpha', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 7, temperature: 0 });
    expect(role).toBe('assistant');
    expect(deltas).toBe(whole.choices[0]!.message.content);
    expect(await metric(server.url, counted)).toBe(before + 2); // a streamed request is counted once
  });

  it('answers bad requests in OpenAI\'s error shape with their HTTP codes, and keeps serving', async () => {
    const expectApiError = async (p: Promise<unknown>, status: number, code: string) => {
      const e = await p.then(() => null, (err: unknown) => err) as InstanceType<typeof OpenAI.APIError> | null;
      expect(e, `expected HTTP ${status}`).toBeInstanceOf(OpenAI.APIError);
      expect(e!.status).toBe(status);
      expect((e!.error as { code?: string }).code).toBe(code);
      return e!;
    };
    const unknown = await expectApiError(client.completions.create({ model: 'nope', prompt: 'x', max_tokens: 2 }), 404, 'model_not_found');
    expect(unknown).toBeInstanceOf(OpenAI.NotFoundError);
    expect(unknown.message).toMatch(/nope/);
    await expectApiError(client.completions.create({ model: 'alpha', prompt: 'x', max_tokens: 401 }), 400, 'limit_exceeded');
    await expectApiError(client.completions.create({ model: 'alpha', prompt: 'x', max_tokens: 2, n: 2 }), 400, 'invalid_value');
    await expectApiError(client.completions.create({ model: 'alpha', prompt: 'x', max_tokens: 2, temperature: 3 }), 400, 'invalid_value');
    await expectApiError(client.completions.create({ model: 'alpha', prompt: 'word '.repeat(600), max_tokens: 2 }), 400, 'context_length_exceeded');
    await expectApiError(client.chat.completions.create({ model: 'alpha', messages: [], max_tokens: 2 }), 400, 'invalid_value');
    await expectApiError(client.completions.create({ model: 'alpha', prompt: [999_999], max_tokens: 2 }), 400, 'invalid_value');

    const malformed = await rawPost(server.url, '/v1/completions', '{"model": "alpha", "prompt": ');
    expect(malformed.status).toBe(400);
    expect(malformed.json.error).toMatchObject({ type: 'invalid_request_error', code: 'invalid_json' });
    const big = await rawPost(server.url, '/v1/completions', JSON.stringify({ model: 'alpha', prompt: 'x'.repeat(20_000) }));
    expect(big.status).toBe(413);
    expect(big.json.error.code).toBe('request_too_large');
    const extra = await rawPost(server.url, '/v1/completions', JSON.stringify({ model: 'alpha', prompt: 'x', bogus: 1 }));
    expect(extra.status).toBe(400);
    expect(extra.json.error).toMatchObject({ code: 'unknown_parameter', param: 'bogus' });
    const notJson = await rawPost(server.url, '/v1/completions', 'hello', { 'content-type': 'text/plain' });
    expect(notJson.status).toBe(415);
    const array = await rawPost(server.url, '/v1/completions', '[1, 2]');
    expect(array.status).toBe(400);
    const route = await fetch(`${server.url}/v1/engines`);
    expect(route.status).toBe(404);
    expect(((await route.json()) as { error: { code: string } }).error.code).toBe('not_found');
    // ... and the next good request is served
    const ok = await client.completions.create({ model: 'alpha', prompt: 'Hello there', max_tokens: 3, temperature: 0 });
    expect(ok.choices[0]!.text.length).toBeGreaterThan(0);
    expect((await fetch(`${server.url}/health`)).status).toBe(200);
  });

  it('a client that disconnects cancels its sequence', async () => {
    const cancelledBefore = await metric(server.url, /^tunekit_sequences_total\{outcome="cancelled"\}/);
    const ac = new AbortController();
    const res = await fetch(`${server.url}/v1/completions`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, signal: ac.signal,
      body: JSON.stringify({ model: 'alpha', prompt: 'Hello', max_tokens: 400 - 1, temperature: 0, stream: true }),
    });
    const reader = res.body!.getReader();
    await reader.read(); // the first event has arrived: the sequence is running
    ac.abort();
    let cancelled = cancelledBefore;
    for (let i = 0; i < 200 && cancelled === cancelledBefore; i++) {
      await new Promise((r) => setTimeout(r, 10));
      cancelled = await metric(server.url, /^tunekit_sequences_total\{outcome="cancelled"\}/);
    }
    expect(cancelled).toBe(cancelledBefore + 1);
    expect(server.engine.load).toEqual({ running: 0, waiting: 0 });
  });
});

describe('tunekit serve: keys, limits, adapters at run time, shutdown', () => {
  it('refuses a non-loopback bind without an API key; with one, requests need it', async () => {
    await expect(TunekitServer.start({ model: w.modelDir, host: '0.0.0.0', port: 0 })).rejects.toMatchObject({ code: 'ERR_CONFIG', message: expect.stringMatching(/API key/) });
    const key = 'sk-test-0123456789';
    const s = await TunekitServer.start({ model: w.modelDir, served_model_name: 'tiny', host: '0.0.0.0', port: 0, api_key: key, adapters: adaptersOf(['alpha']) });
    try {
      const base = s.url.replace('0.0.0.0', '127.0.0.1');
      const none = new OpenAI({ baseURL: `${base}/v1`, apiKey: '', maxRetries: 0 });
      const missing = await rawPost(base, '/v1/completions', JSON.stringify({ model: 'alpha', prompt: 'x', max_tokens: 2 }));
      expect(missing.status).toBe(401);
      expect(missing.json.error.code).toBe('invalid_api_key');
      await expect(none.completions.create({ model: 'alpha', prompt: 'x', max_tokens: 2 })).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
      const wrong = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'sk-wrong-0123456789', maxRetries: 0 });
      await expect(wrong.models.list()).rejects.toMatchObject({ status: 401 });
      expect((await fetch(`${base}/metrics`)).status).toBe(401);
      expect((await fetch(`${base}/health`)).status).toBe(200);
      const right = new OpenAI({ baseURL: `${base}/v1`, apiKey: key, maxRetries: 0 });
      const r = await right.completions.create({ model: 'alpha', prompt: 'Hello there', max_tokens: 3, temperature: 0 });
      expect(r.choices[0]!.text.length).toBeGreaterThan(0);
    } finally {
      await s.close();
    }
  });

  it('429 past the concurrent limit, 504 past the time limit, adapters loaded and unloaded while serving', async () => {
    const s = await TunekitServer.start({
      model: w.modelDir, served_model_name: 'tiny', port: 0, allow_adapter_loading: true, adapters: adaptersOf(['alpha']),
      limits: { max_concurrent_requests: 1, max_tokens: 400 },
    });
    const quick = await TunekitServer.start({ model: w.modelDir, served_model_name: 'tiny', port: 0, limits: { max_tokens: 400, request_timeout_ms: 1 } });
    const c = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'x', maxRetries: 0 });
    try {
      // two prompts in one request are two sequences: over a limit of one in flight
      await expect(c.completions.create({ model: 'alpha', prompt: ['Hello', 'Hi'], max_tokens: 2 })).rejects.toMatchObject({ status: 429, error: { code: 'too_many_requests' } });
      // 399 tokens cannot be made in 1 ms
      const late = await rawPost(quick.url, '/v1/completions', JSON.stringify({ model: 'tiny', prompt: 'Hello', max_tokens: 399 }));
      expect(late.status).toBe(504);
      expect(late.json.error).toMatchObject({ type: 'timeout_error', code: 'timeout' });

      await expect(c.completions.create({ model: 'beta', prompt: 'x', max_tokens: 2 })).rejects.toMatchObject({ status: 404 });
      const load = await rawPost(s.url, '/v1/load_lora_adapter', JSON.stringify({ lora_name: 'beta', lora_path: w.adapterDirs.beta }));
      expect(load.status).toBe(200);
      const viaServer = await c.completions.create({ model: 'beta', prompt: 'The spam filter', max_tokens: 9, temperature: 0 });
      expect(viaServer.choices[0]!.text).toBe((await alone('beta', ids('The spam filter'), 9)).text);
      const bad = await rawPost(s.url, '/v1/load_lora_adapter', JSON.stringify({ lora_name: 'gone', lora_path: '/nonexistent/folder' }));
      expect(bad.status).toBe(404);
      expect(bad.json.error.type).toBe('invalid_request_error');
      const unload = await rawPost(s.url, '/v1/unload_lora_adapter', JSON.stringify({ lora_name: 'beta' }));
      expect(unload.status).toBe(200);
      await expect(c.completions.create({ model: 'beta', prompt: 'x', max_tokens: 2 })).rejects.toMatchObject({ status: 404 });
      // alpha is untouched by loading and unloading beta beside it
      const a = await c.completions.create({ model: 'alpha', prompt: 'Hello there', max_tokens: 12, temperature: 0 });
      expect(a.choices[0]!.text).toBe((await alone('alpha', ids('Hello there'), 12)).text);
    } finally {
      await s.close();
      await quick.close();
    }
  });

  it('refuses runtime adapter loading unless enabled', async () => {
    const res = await rawPost(server.url, '/v1/load_lora_adapter', JSON.stringify({ lora_name: 'x', lora_path: w.adapterDirs.beta }));
    expect(res.status).toBe(403);
    expect(res.json.error.code).toBe('adapter_loading_disabled');
  });

  it('close() drains: the request in flight completes, new ones are refused', async () => {
    const s = await TunekitServer.start({ model: w.modelDir, served_model_name: 'tiny', port: 0, adapters: adaptersOf(['alpha']), limits: { max_tokens: 400 } });
    const c = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'x', maxRetries: 0 });
    const stream = await c.completions.create({ model: 'alpha', prompt: 'Hello', max_tokens: 60, temperature: 0, stream: true });
    const it = stream[Symbol.asyncIterator]();
    const first = await it.next(); // running now
    const closing = s.close();
    let text = first.value?.choices[0]?.text ?? '';
    let finish: string | null = null;
    for (let n = await it.next(); !n.done; n = await it.next()) {
      text += n.value.choices[0]?.text ?? '';
      finish = n.value.choices[0]?.finish_reason ?? finish;
    }
    await closing;
    const expected = await alone('alpha', ids('Hello'), 60);
    expect(text).toBe(expected.text);
    expect(finish).toBe(expected.tokens.at(-1) === tok.eosTokenId ? 'stop' : 'length');
    await expect(fetch(`${s.url}/health`)).rejects.toThrow();
  });
});
