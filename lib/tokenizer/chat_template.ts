/**
 * Chat templates: renders a conversation with a model's Jinja `chat_template`, as
 * transformers' `apply_chat_template` does (trim_blocks and lstrip_blocks on, special tokens
 * as variables, `raise_exception`, `add_generation_prompt`). Rendering is @huggingface/jinja,
 * a sandboxed Jinja interpreter.
 */
import { Template } from '@huggingface/jinja';
import { TunekitError, describe } from '../errors.js';

/** One message of a conversation. */
export interface ChatMessage {
  role: 'system' | 'user' | 'assistant' | 'tool' | string;
  content: string;
  [key: string]: unknown;
}

/** Options of {@link applyChatTemplate}. */
export interface ChatTemplateOptions {
  /** Append the opening of an assistant turn (for generation). Default false. */
  addGenerationPrompt?: boolean;
  /** A template to use instead of the tokenizer's. */
  chatTemplate?: string;
  /** Special tokens exposed to the template (bos_token, eos_token, ...). */
  specialTokens?: Record<string, string | null>;
  /** Extra variables for the template (tools, documents, date strings, ...). */
  variables?: Record<string, unknown>;
}

const compiled = new Map<string, Template>();

/**
 * Renders `messages` with a Jinja chat template.
 *
 * @example
 * applyChatTemplate("{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}",
 *   [{ role: 'user', content: 'Hi' }]); // 'user: Hi\n'
 */
export function applyChatTemplate(template: string, messages: ChatMessage[], options: ChatTemplateOptions = {}): string {
  if (typeof template !== 'string' || template.length === 0) {
    throw new TunekitError('ERR_VALUE', `applyChatTemplate: expected a template string but received ${describe(template)}`);
  }
  if (!Array.isArray(messages) || !messages.every((m) => m && typeof m.role === 'string')) {
    throw new TunekitError('ERR_VALUE', `applyChatTemplate: expected messages as [{role, content}, ...] but received ${describe(messages)}`);
  }
  let t = compiled.get(template);
  if (!t) {
    try {
      t = new Template(template);
    } catch (err) {
      throw new TunekitError('ERR_FORMAT', `applyChatTemplate: the chat template does not parse: ${(err as Error).message}`);
    }
    compiled.set(template, t);
  }
  const specials: Record<string, string> = {};
  for (const [k, v] of Object.entries(options.specialTokens ?? {})) if (typeof v === 'string') specials[k] = v;
  try {
    return t.render({
      ...specials,
      ...(options.variables ?? {}),
      messages,
      add_generation_prompt: options.addGenerationPrompt ?? false,
    });
  } catch (err) {
    // raise_exception(...) in a template lands here: the template's own message is the useful part.
    throw new TunekitError('ERR_VALUE', `applyChatTemplate: ${(err as Error).message}`);
  }
}
