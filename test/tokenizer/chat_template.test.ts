import { describe, it, expect } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Template } from '@huggingface/jinja';
import { applyChatTemplate, MAX_TEMPLATE_CHARS } from '../../lib/tokenizer/index.js';
import { TunekitError } from '../../lib/errors.js';

describe('applyChatTemplate', () => {
  const tpl = '{% for m in messages %}{{ bos_token }}{{ m.role }}: {{ m.content }}\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}';

  it('renders messages, special tokens and the generation prompt', () => {
    const msgs = [{ role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Ahoy' }];
    expect(applyChatTemplate(tpl, msgs, { specialTokens: { bos_token: '<s>' } })).toBe('<s>user: Hi\n<s>assistant: Ahoy\n');
    expect(applyChatTemplate(tpl, msgs.slice(0, 1), { addGenerationPrompt: true, specialTokens: { bos_token: '' } })).toBe('user: Hi\nassistant:');
  });

  it('trims blocks like transformers (trim_blocks, lstrip_blocks)', () => {
    const t = '{% for m in messages %}\n  {% if m.role == "user" %}\n[{{ m.content }}]\n  {% endif %}\n{% endfor %}';
    expect(applyChatTemplate(t, [{ role: 'user', content: 'a' }, { role: 'user', content: 'b' }])).toBe('[a]\n[b]\n');
  });

  it('turns raise_exception and parse errors into TunekitError', () => {
    const t = "{% if messages[0]['role'] != 'user' %}{{ raise_exception('first message must be from the user') }}{% endif %}ok";
    expect(() => applyChatTemplate(t, [{ role: 'assistant', content: 'x' }])).toThrowError(/first message must be from the user/);
    expect(() => applyChatTemplate('{% for %}', [])).toThrowError(TunekitError);
    expect(() => applyChatTemplate(tpl, 'hi' as never)).toThrowError(/expected messages/);
  });
});

describe('applyChatTemplate renders as the package does, under a budget', () => {
  const FIX = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'tokenizers');
  const templates: Record<string, string> = {
    'gpt2-bpe (ChatML)': fs.readFileSync(path.join(FIX, 'gpt2-bpe', 'chat_template.jinja'), 'utf8'),
    'llama-bpe (Llama 2)': fs.readFileSync(path.join(FIX, 'llama-bpe', 'chat_template.jinja'), 'utf8'),
    'Qwen 2.5 with tools': fs.readFileSync(path.join(FIX, 'templates', 'qwen2.5-tools.jinja'), 'utf8'),
  };
  const tools = [{ type: 'function', function: { name: 'get_weather', description: 'Weather in a city', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } }];
  const conversation = (n: number) => Array.from({ length: n }, (_, i) => (i % 2 === 0
    ? { role: 'user', content: `question ${i}: what is  the weather?` }
    : { role: 'assistant', content: `answer ${i}`, ...(i % 4 === 1 ? { tool_calls: [{ type: 'function', function: { name: 'get_weather', arguments: { city: 'Paris' } } }] } : {}) }));
  const specials = { bos_token: '<s>', eos_token: '</s>' };

  for (const [name, tpl] of Object.entries(templates)) {
    it(`${name}: the same text as @huggingface/jinja's Template.render`, () => {
      for (const n of [1, 2, 5]) {
        for (const addGenerationPrompt of [false, true]) {
          const variables = name.includes('tools') ? { tools } : {};
          const ours = applyChatTemplate(tpl, conversation(n), { specialTokens: specials, variables, addGenerationPrompt });
          const theirs = new Template(tpl).render({ ...specials, ...variables, messages: conversation(n), add_generation_prompt: addGenerationPrompt });
          expect(ours).toBe(theirs);
        }
      }
    });
  }

  it('a real template on a 2,000-message conversation stays inside the default budget', () => {
    const t0 = performance.now();
    const out = applyChatTemplate(templates['Qwen 2.5 with tools']!, conversation(2000), { variables: { tools } });
    expect(out.length).toBeGreaterThan(50_000);
    expect(performance.now() - t0).toBeLessThan(5_000);
  });

  it('strftime_now and the other globals behave as the package defines them', () => {
    const t = "{{ strftime_now('%Y-%m-%d %%') }}|{{ true }}|{{ None is none }}|{{ range(2, 9, 3) | join(',') }}|{{ range(3) | length }}";
    expect(applyChatTemplate(t, [])).toBe(new Template(t).render({ messages: [] }));
  });

  // each hostile template: the error code, and a bound on the time it may take (generous: the machine is shared)
  const hostile: Array<[string, string, string, number]> = [
    ['range(200000000) (killed V8 before)', '{% for i in range(200000000) %}x{% endfor %}', 'ERR_LIMIT', 1_000],
    ['range(5000000) (under the argument limit, over the list limit)', '{% for i in range(5000000) %}x{% endfor %}', 'ERR_LIMIT', 1_000],
    ['two nested range(20000) loops (hung before)', '{% for i in range(20000) %}{% for j in range(20000) %}{% endfor %}{% endfor %}', 'ERR_LIMIT', 5_000],
    ['nested loops over one list made once', '{% set a = range(20000) %}{% for i in a %}{% for j in a %}{% endfor %}{% endfor %}', 'ERR_LIMIT', 5_000],
    ['a string doubled 40 times', "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}", 'ERR_LIMIT', 1_000],
    ['a list doubled 40 times', '{% set ns = namespace(a=[1]) %}{% for i in range(40) %}{% set ns.a = ns.a + ns.a %}{% endfor %}{{ ns.a | length }}', 'ERR_LIMIT', 2_000],
    ['a macro calling itself twice, 40 deep (2^40 calls)', '{% macro f(n) %}{% if n > 0 %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(40) }}', 'ERR_LIMIT', 5_000],
    ["indent(500000000) (' '.repeat before any check)", "{{ 'a\\nb' | indent(500000000) }}", 'ERR_LIMIT', 1_000],
    ['tojson(indent=400000000)', '{{ messages | tojson(indent=400000000) }}', 'ERR_LIMIT', 1_000],
    ['a template over MAX_TEMPLATE_CHARS', 'x'.repeat(MAX_TEMPLATE_CHARS + 1), 'ERR_LIMIT', 1_000],
    ['raise_exception', "{{ raise_exception('no system messages') }}", 'ERR_VALUE', 1_000],
    ['range() with a float', '{% for i in range(2.5) %}{% endfor %}', 'ERR_VALUE', 1_000],
    ['a template that does not parse', '{% for x in %}', 'ERR_FORMAT', 1_000],
  ];
  for (const [name, tpl, code, ms] of hostile) {
    it(`${name}: ${code} within ${ms} ms`, () => {
      const t0 = performance.now();
      let caught: unknown;
      try {
        applyChatTemplate(tpl, [{ role: 'user', content: 'Hi' }]);
      } catch (e) {
        caught = e;
      }
      expect(caught, name).toBeInstanceOf(TunekitError);
      expect((caught as TunekitError).code).toBe(code);
      expect(performance.now() - t0).toBeLessThan(ms);
    });
  }

  it('a budget override is honoured (and the steps a template takes are deterministic)', () => {
    const t = '{% for i in range(100) %}{{ i }}{% endfor %}';
    expect(() => applyChatTemplate(t, [], { budget: { maxSteps: 50 } })).toThrowError(/over its budget \(more than 50 steps\)/);
    expect(applyChatTemplate(t, [], { budget: { maxSteps: 1_000 } })).toHaveLength(190);
  });
});
