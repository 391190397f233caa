import { describe, it, expect } from 'vitest';
import { applyChatTemplate } from '../../lib/tokenizer/index.js';
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
