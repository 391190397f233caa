/**
 * Chat templates: renders a conversation with a model's Jinja `chat_template`, as
 * transformers' `apply_chat_template` does (trim_blocks and lstrip_blocks on, special tokens
 * as variables, `raise_exception`, `add_generation_prompt`). Rendering is @huggingface/jinja,
 * a sandboxed Jinja interpreter.
 *
 * A template comes with a model folder and is untrusted: `{% for i in range(200000000) %}`
 * allocated a 2e8-element list and killed V8, two nested `range(20000)` loops never returned.
 * The sandbox keeps templates away from the process but not from its CPU and memory, so
 * rendering runs under a budget (TemplateBudget): interpreter steps (each expression, statement
 * and block evaluated, plus one per item a range makes, per 4,096 characters of a string and per
 * 256 items of a list an expression produces), the size of every string and list any expression produces, integer
 * arguments to calls and filters, and wall-clock time. Going over is ERR_LIMIT. The budget
 * grows with the conversation, so a real template on a real conversation never meets it.
 *
 * The package's Template.render builds its own interpreter, so the rendering is done here with
 * its exported parts (tokenize, parse, Environment, Interpreter): the same steps, with an
 * interpreter that counts.
 */
import * as jinja from '@huggingface/jinja';
import { TunekitError, describe } from '../errors.js';

/** One message of a conversation. */
export interface ChatMessage {
  role: 'system' | 'user' | 'assistant' | 'tool' | string;
  content: string;
  [key: string]: unknown;
}

/** Limits one rendering runs under (see the file comment); defaults from {@link defaultTemplateBudget}. */
export interface TemplateBudget {
  /** Interpreter steps. */
  maxSteps: number;
  /** Longest string any expression (and the output) may be, in UTF-16 units; also the largest integer argument to a call or filter. */
  maxChars: number;
  /** Longest list (or most keys of a mapping) any expression may produce; also the longest range(). */
  maxItems: number;
  /** Wall-clock milliseconds. */
  maxMs: number;
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
  /** Overrides of the rendering budget's limits. */
  budget?: Partial<TemplateBudget>;
}

/** Longest template source parsed (real chat templates are a few KB; the longest known ~30 KB). */
export const MAX_TEMPLATE_CHARS = 1 << 20;
/** Templates kept parsed (most recently used). */
const MAX_COMPILED = 32;

// The package's .d.ts files import each other without extensions, which NodeNext resolution
// cannot follow: the few shapes used here are written out.
type Program = { type: 'Program' };
type Statement = { type: string } | undefined;
/** A runtime value: `value` is a string, number, list (RuntimeValue[]), Map, function, ... */
type RuntimeValue = { type: string; value: unknown };
interface Environment {
  set(name: string, value: unknown): RuntimeValue;
}
interface InterpreterShape {
  run(program: Program): RuntimeValue;
  evaluate(statement: Statement, environment: Environment): RuntimeValue;
}
const Environment = jinja.Environment as unknown as new () => Environment;
const Interpreter = jinja.Interpreter as unknown as new (env: Environment) => InterpreterShape;
const parseTemplate = (source: string): Program =>
  (jinja.parse as unknown as (tokens: unknown) => Program)((jinja.tokenize as unknown as (s: string, o: object) => unknown)(source, { lstrip_blocks: true, trim_blocks: true }));

/** Sizes of the conversation and variables: strings' total length and the number of items. */
function inputSize(value: unknown, size = { chars: 0, items: 0 }, depth = 0): { chars: number; items: number } {
  if (typeof value === 'string') size.chars += value.length;
  else if (Array.isArray(value)) {
    size.items += value.length;
    if (depth < 8) for (const v of value) inputSize(v, size, depth + 1);
  } else if (value && typeof value === 'object') {
    const entries = Object.entries(value);
    size.items += entries.length;
    if (depth < 8) for (const [k, v] of entries) { size.chars += k.length; inputSize(v, size, depth + 1); }
  }
  return size;
}

/**
 * The default budget for rendering a conversation: 200,000 steps, strings of 8 Mi units, lists
 * of a million items and 2 s, plus room in proportion to the conversation. Real templates take
 * about 50 steps per message (Llama 2's and Qwen 2.5's with tools, measured: 92K and 72K steps
 * for 2,000 messages), far inside the 500 steps per item allowed; a step costs 1-5 µs, so a
 * hostile template is stopped within about a second.
 *
 * @example
 * defaultTemplateBudget([{ role: 'user', content: 'Hi' }]); // { maxSteps: 201501, maxChars: 8388676, maxItems: 1000012, maxMs: 2003 }
 */
export function defaultTemplateBudget(messages: unknown, variables: unknown = {}): TemplateBudget {
  const size = inputSize(variables, inputSize(messages));
  return {
    maxSteps: 200_000 + 500 * size.items + Math.ceil(size.chars / 64),
    maxChars: (8 << 20) + 4 * size.chars,
    maxItems: 1_000_000 + 4 * size.items,
    maxMs: 2_000 + size.items,
  };
}

function overBudget(what: string): TunekitError {
  return new TunekitError('ERR_LIMIT', `applyChatTemplate: the chat template went over its budget (${what}); a chat template should render in well under a second`);
}

/** Interpreter that counts its work and stops the rendering when it goes over the budget. */
class BudgetedInterpreter extends Interpreter {
  steps = 0;
  private readonly deadline: number;

  constructor(env: Environment, private readonly budget: TemplateBudget) {
    super(env);
    this.deadline = performance.now() + budget.maxMs;
  }

  /** Counts `n` steps (a range's items, a long string's chunks) and checks the clock now and then. */
  charge(n: number): void {
    const before = this.steps;
    this.steps += n;
    if (this.steps > this.budget.maxSteps) throw overBudget(`more than ${this.budget.maxSteps} steps`);
    if (before >>> 10 !== this.steps >>> 10 && performance.now() > this.deadline) throw overBudget(`more than ${this.budget.maxMs} ms`);
  }

  override evaluate(statement: Statement, environment: Environment): RuntimeValue {
    this.charge(1);
    const value = super.evaluate(statement, environment);
    // a variable's value was measured when it was made: looking it up again is one step
    if (statement?.type !== 'Identifier') this.measure(value);
    return value;
  }

  /**
   * Refuses an over-long string or list, and charges for the work of producing it: a step per
   * 4,096 characters or 256 items, so that making big values over and over runs out of steps
   * while a real template that concatenates a long message a few times does not.
   */
  measure(value: RuntimeValue): void {
    const v = value.value;
    if (typeof v === 'string') {
      if (v.length > this.budget.maxChars) throw overBudget(`a string of ${v.length} characters, over ${this.budget.maxChars}`);
      if (v.length >= 4096) this.charge(v.length >>> 12);
    } else if (Array.isArray(v) || v instanceof Map) {
      const n = Array.isArray(v) ? v.length : v.size;
      if (n > this.budget.maxItems) throw overBudget(`a list of ${n} items, over ${this.budget.maxItems}`);
      if (n >= 256) this.charge(n >>> 8);
    }
  }
}

// Integer arguments (e.g. `indent(width)`, whose `' '.repeat(width)` would allocate before any
// result is measured) are checked where every call and filter evaluates its arguments.
// evaluateArguments is private in the package's typings, hence the cast.
const interpreterProto = Interpreter.prototype as unknown as { evaluateArguments(args: unknown, env: Environment): [RuntimeValue[], Map<string, RuntimeValue>] };
(BudgetedInterpreter.prototype as unknown as typeof interpreterProto).evaluateArguments = function (this: BudgetedInterpreter, args: unknown, env: Environment) {
  const result = interpreterProto.evaluateArguments.call(this, args, env);
  const budget = (this as unknown as { budget: TemplateBudget }).budget;
  for (const value of [...result[0], ...result[1].values()]) {
    const v = value.value;
    if (typeof v === 'number' && Math.abs(v) > budget.maxChars) throw overBudget(`an argument of ${v}, over ${budget.maxChars}`);
  }
  return result;
};

// Every block (a loop's body on each iteration, an if's branch) counts, so that loops with
// empty bodies over an already-made list are counted too: four steps, as a loop iteration's
// bookkeeping (a fresh `loop` object of nine values) costs about four expressions.
const blockProto = Interpreter.prototype as unknown as { evaluateBlock(statements: unknown, env: Environment): RuntimeValue };
(BudgetedInterpreter.prototype as unknown as typeof blockProto).evaluateBlock = function (this: BudgetedInterpreter, statements: unknown, env: Environment) {
  this.charge(4);
  return blockProto.evaluateBlock.call(this, statements, env);
};

/** Python's range(), refusing more than `maxItems` items before making the list. */
function boundedRange(interpreter: BudgetedInterpreter, budget: TemplateBudget) {
  return (start: number, stop?: number, step = 1): number[] => {
    if (stop === undefined) [start, stop] = [0, start];
    for (const [name, v] of [['start', start], ['stop', stop], ['step', step]] as const) {
      if (typeof v !== 'number' || !Number.isInteger(v)) throw new Error(`range() ${name} must be an integer, got ${describe(v)}`);
    }
    if (step === 0) throw new Error('range() step must not be zero');
    const count = Math.max(0, Math.ceil((stop - start) / step));
    if (count > budget.maxItems) throw overBudget(`range() of ${count} items, over ${budget.maxItems}`);
    interpreter.charge(count);
    const out = new Array<number>(count);
    for (let i = 0; i < count; i++) out[i] = start + i * step;
    return out;
  };
}

/** strftime_now(format), as the package defines it (its globals are not exported): %Y %m %d %b %B %H %M %%. */
function strftimeNow(format: string): string {
  const date = new Date();
  const pad2 = (n: number) => (n < 10 ? '0' + n : String(n));
  return String(format).replace(/%[YmdbBHM%]/g, (token) => {
    switch (token) {
      case '%Y': return String(date.getFullYear());
      case '%m': return pad2(date.getMonth() + 1);
      case '%d': return pad2(date.getDate());
      case '%b': return new Intl.DateTimeFormat(undefined, { month: 'short' }).format(date);
      case '%B': return new Intl.DateTimeFormat(undefined, { month: 'long' }).format(date);
      case '%H': return pad2(date.getHours());
      case '%M': return pad2(date.getMinutes());
      default: return '%';
    }
  });
}

const compiled = new Map<string, Program>();

function compile(template: string): Program {
  let program = compiled.get(template);
  if (program) {
    compiled.delete(template);
    compiled.set(template, program); // most recently used last
    return program;
  }
  if (template.length > MAX_TEMPLATE_CHARS) {
    throw new TunekitError('ERR_LIMIT', `applyChatTemplate: expected a chat template of at most ${MAX_TEMPLATE_CHARS} characters (MAX_TEMPLATE_CHARS) but received ${template.length}`);
  }
  try {
    // the options Template's constructor uses (transformers renders with trim_blocks and lstrip_blocks)
    program = parseTemplate(template);
  } catch (err) {
    throw new TunekitError('ERR_FORMAT', `applyChatTemplate: the chat template does not parse: ${(err as Error).message}`);
  }
  compiled.set(template, program);
  if (compiled.size > MAX_COMPILED) compiled.delete(compiled.keys().next().value!);
  return program;
}

/**
 * Renders `messages` with a Jinja chat template, under a budget (see the file comment):
 * a template that loops, allocates or recurses past it is ERR_LIMIT within a few seconds at most.
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
  const program = compile(template);
  const budget = { ...defaultTemplateBudget(messages, options.variables), ...(options.budget ?? {}) };
  const specials: Record<string, string> = {};
  for (const [k, v] of Object.entries(options.specialTokens ?? {})) if (typeof v === 'string') specials[k] = v;
  try {
    const env = new Environment();
    const interpreter = new BudgetedInterpreter(env, budget);
    // the package's globals (its setupGlobals is not exported), with range() bounded
    const globals: Record<string, unknown> = {
      false: false, true: true, none: null, False: false, True: true, None: null,
      raise_exception: (message: unknown) => { throw new Error(String(message)); },
      range: boundedRange(interpreter, budget),
      strftime_now: strftimeNow,
    };
    const items = { ...specials, ...(options.variables ?? {}), messages, add_generation_prompt: options.addGenerationPrompt ?? false };
    for (const [k, v] of Object.entries(globals)) env.set(k, v);
    for (const [k, v] of Object.entries(items)) env.set(k, v);
    const result = interpreter.run(program);
    interpreter.measure(result);
    return (result as { value: string }).value;
  } catch (err) {
    if (err instanceof TunekitError) throw err;
    // the interpreter recursing past the JS stack, or a string past V8's longest, is over budget too
    if (err instanceof RangeError) throw overBudget((err as Error).message);
    // raise_exception(...) in a template lands here: the template's own message is the useful part.
    throw new TunekitError('ERR_VALUE', `applyChatTemplate: ${(err as Error).message}`);
  }
}
