/**
 * The safetensors header parser: accepts exactly the headers the reference implementation
 * (huggingface/safetensors, Rust, behind the Python library) accepts, and no others.
 *
 * The reference parses the header with serde_json into a struct, so its verdicts follow
 * serde_json and serde's derive rules rather than JavaScript's `JSON.parse`:
 * - strict JSON (RFC 8259): only space, tab, LF and CR as whitespace (a BOM, NUL padding, a
 *   vertical tab are errors), no comments, no trailing commas, no NaN, no leading zeros;
 * - a `\u` escape of a lone surrogate is an error (JSON.parse would accept it);
 * - nesting deeper than 127 arrays/objects is an error (serde_json's recursion limit, 128);
 * - a number that overflows f64 (1e400, a 400-digit integer) is an error, even where ignored;
 * - sizes are u64: an integer token with a fraction or exponent (`8.0`, `8e0`, `-0`), a negative
 *   integer, or one above 2^64 - 1 is refused where a size is expected;
 * - `__metadata__` may be null; given twice it is an error ("duplicate field"); its values are strings;
 * - a tensor entry is `{"dtype", "shape", "data_offsets"}` in any order with unknown fields
 *   ignored and no field twice, or the array `[dtype, shape, data_offsets]`;
 * - a dtype is its name, or `{"NAME": null}` (serde's map form of an enum variant);
 * - validation (Metadata::validate): tensors sorted by (begin, end) tile the data from 0 with no
 *   gap or overlap; element count and bit count are computed with overflow checks in u64; the bit
 *   count is a multiple of 8 (sub-byte dtypes); its bytes equal end - begin.
 *
 * Where the reference silently keeps the last of two equal keys (a tensor name, a metadata key)
 * or accepts a dimension that a JavaScript number cannot hold (above 2^53 - 1, possible in a
 * zero-element tensor), this parser refuses: see docs/reliability.md ("## safetensors").
 * The fuzz corpus in test/fixtures/safetensors/fuzz.json holds the reference's verdicts.
 */

/** Bits per element of every dtype the reference knows (safetensors 0.8). */
export const DTYPE_BITS = Object.freeze({
  BOOL: 8, F4: 4, F6_E2M3: 6, F6_E3M2: 6, U8: 8, I8: 8, F8_E5M2: 8, F8_E4M3: 8, F8_E8M0: 8,
  F8_E4M3FNUZ: 8, F8_E5M2FNUZ: 8, I16: 16, U16: 16, F16: 16, BF16: 16, I32: 32, U32: 32, F32: 32,
  C64: 64, F64: 64, I64: 64, U64: 64,
} as const);

/** The dtypes of the safetensors format. */
export type SafetensorsDtype = keyof typeof DTYPE_BITS;

/** One validated header entry, sizes as the reference holds them (u64, here bigint). */
export interface ParsedTensorEntry {
  name: string;
  dtype: SafetensorsDtype;
  shape: bigint[];
  begin: bigint;
  end: bigint;
}

/** A header the reference would refuse, or one of the documented exceptions. `message` has no file name. */
export class HeaderError extends Error {}

export function isSafetensorsDtype(value: unknown): value is SafetensorsDtype {
  return typeof value === 'string' && Object.prototype.hasOwnProperty.call(DTYPE_BITS, value);
}

// ------------------------------------------------------------------ strict JSON (serde_json's rules)

type JsonValue =
  | { kind: 'object'; entries: Array<[string, JsonValue]>; at: number }
  | { kind: 'array'; items: JsonValue[]; at: number }
  | { kind: 'string'; value: string; at: number }
  /** A non-negative integer token that fits u64. */
  | { kind: 'uint'; value: bigint; at: number }
  /** A negative integer token that fits i64. */
  | { kind: 'int'; value: bigint; at: number }
  /** Any other number (fraction, exponent, -0, or an integer out of the 64-bit ranges). */
  | { kind: 'float'; value: number; text: string; at: number }
  | { kind: 'bool'; value: boolean; at: number }
  | { kind: 'null'; at: number };

/** serde_json's default recursion limit: the 128th nested array/object is an error. */
const MAX_NESTING = 127;
/**
 * Containers nested deeper than this are checked (syntax, nesting, numbers, escapes) but not
 * kept: the schema never looks below top object > tensor entry > shape/data_offsets/dtype map,
 * and not building trees for ignored fields keeps a large hostile header cheap.
 */
const KEEP_DEPTH = 3;
const U64_MAX = (1n << 64n) - 1n;
const I64_MIN = -(1n << 63n);
const SIMPLE_ESCAPES = new Map([['"', '"'], ['\\', '\\'], ['/', '/'], ['b', '\b'], ['f', '\f'], ['n', '\n'], ['r', '\r'], ['t', '\t']]);

class StrictJsonParser {
  private pos = 0;
  private depth = 0;

  constructor(private readonly text: string) {}

  parseDocument(): JsonValue {
    this.skipWhitespace();
    const value = this.parseValue();
    this.skipWhitespace();
    if (this.pos < this.text.length) {
      this.fail(`unexpected ${this.describeChar()} after the JSON value (only spaces, tabs, CR and LF may follow)`);
    }
    return value;
  }

  private fail(message: string, at = this.pos): never {
    throw new HeaderError(`header is not valid JSON: ${message} at character ${at}`);
  }

  private describeChar(at = this.pos): string {
    if (at >= this.text.length) return 'end of header';
    const code = this.text.codePointAt(at)!;
    return code === 0xfeff ? 'a byte order mark (U+FEFF)' : `character ${JSON.stringify(String.fromCodePoint(code))} (U+${code.toString(16).toUpperCase().padStart(4, '0')})`;
  }

  private skipWhitespace(): void {
    const t = this.text;
    while (this.pos < t.length) {
      const c = t.charCodeAt(this.pos);
      if (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) break;
      this.pos++;
    }
  }

  private parseValue(): JsonValue {
    const c = this.text.charCodeAt(this.pos);
    const at = this.pos;
    if (c === 0x7b) return this.parseObject(); // {
    if (c === 0x5b) return this.parseArray(); // [
    if (c === 0x22) return { kind: 'string', at, value: this.parseString() }; // "
    if (c === 0x2d || (c >= 0x30 && c <= 0x39)) return this.parseNumber(); // - 0-9
    if (this.text.startsWith('true', at)) {
      this.pos += 4;
      return { kind: 'bool', value: true, at };
    }
    if (this.text.startsWith('false', at)) {
      this.pos += 5;
      return { kind: 'bool', value: false, at };
    }
    if (this.text.startsWith('null', at)) {
      this.pos += 4;
      return { kind: 'null', at };
    }
    return this.fail(`expected a value but found ${this.describeChar()}`);
  }

  private enter(): void {
    if (++this.depth > MAX_NESTING) this.fail(`arrays/objects nested deeper than ${MAX_NESTING} levels`);
  }

  private parseObject(): JsonValue {
    const at = this.pos;
    this.enter();
    this.pos++; // {
    const keep = this.depth <= KEEP_DEPTH;
    const entries: Array<[string, JsonValue]> = [];
    this.skipWhitespace();
    if (this.text[this.pos] === '}') {
      this.pos++;
      this.depth--;
      return { kind: 'object', entries, at };
    }
    for (;;) {
      this.skipWhitespace();
      if (this.text[this.pos] !== '"') this.fail(`expected a string key but found ${this.describeChar()}${this.text[this.pos] === '}' ? ' (trailing comma?)' : ''}`);
      const key = this.parseString();
      this.skipWhitespace();
      if (this.text[this.pos] !== ':') this.fail(`expected ":" after key ${JSON.stringify(key)} but found ${this.describeChar()}`);
      this.pos++;
      this.skipWhitespace();
      const value = this.parseValue();
      if (keep) entries.push([key, value]);
      this.skipWhitespace();
      const next = this.text[this.pos];
      this.pos++;
      if (next === ',') continue;
      if (next === '}') break;
      this.fail(`expected "," or "}" in an object but found ${this.describeChar(this.pos - 1)}`, this.pos - 1);
    }
    this.depth--;
    return { kind: 'object', entries, at };
  }

  private parseArray(): JsonValue {
    const at = this.pos;
    this.enter();
    this.pos++; // [
    const keep = this.depth <= KEEP_DEPTH;
    const items: JsonValue[] = [];
    this.skipWhitespace();
    if (this.text[this.pos] === ']') {
      this.pos++;
      this.depth--;
      return { kind: 'array', items, at };
    }
    for (;;) {
      this.skipWhitespace();
      if (this.text[this.pos] === ']') this.fail('trailing comma in an array');
      const value = this.parseValue();
      if (keep) items.push(value);
      this.skipWhitespace();
      const next = this.text[this.pos];
      this.pos++;
      if (next === ',') continue;
      if (next === ']') break;
      this.fail(`expected "," or "]" in an array but found ${this.describeChar(this.pos - 1)}`, this.pos - 1);
    }
    this.depth--;
    return { kind: 'array', items, at };
  }

  private hex4(at: number): number {
    const h = this.text.slice(at, at + 4);
    if (!/^[0-9a-fA-F]{4}$/.test(h)) this.fail('invalid \\u escape (four hex digits expected)', at);
    return parseInt(h, 16);
  }

  /** A string token (cursor on its opening quote); leaves the cursor after the closing quote. */
  private parseString(): string {
    const t = this.text;
    const start = this.pos;
    this.pos++;
    let out = '';
    let run = this.pos; // start of the current run of plain characters
    for (;;) {
      if (this.pos >= t.length) this.fail('unterminated string', start);
      const c = t.charCodeAt(this.pos);
      if (c === 0x22) { // "
        out += t.slice(run, this.pos);
        this.pos++;
        return out;
      }
      if (c < 0x20) this.fail(`control character U+${c.toString(16).padStart(4, '0')} inside a string (must be escaped)`);
      if (c !== 0x5c) { // not a backslash
        this.pos++;
        continue;
      }
      out += t.slice(run, this.pos);
      const e = t[this.pos + 1];
      const simple = e === undefined ? undefined : SIMPLE_ESCAPES.get(e);
      if (simple !== undefined) {
        out += simple;
        this.pos += 2;
      } else if (e === 'u') {
        const unit = this.hex4(this.pos + 2);
        this.pos += 6;
        if (unit >= 0xdc00 && unit <= 0xdfff) this.fail(`lone low surrogate \\u${unit.toString(16)} (not valid Unicode)`, this.pos - 6);
        if (unit >= 0xd800 && unit <= 0xdbff) {
          if (t[this.pos] !== '\\' || t[this.pos + 1] !== 'u') this.fail(`lone high surrogate \\u${unit.toString(16)} (not valid Unicode)`, this.pos - 6);
          const low = this.hex4(this.pos + 2);
          if (low < 0xdc00 || low > 0xdfff) this.fail(`high surrogate \\u${unit.toString(16)} not followed by a low surrogate (not valid Unicode)`, this.pos - 6);
          this.pos += 6;
          out += String.fromCharCode(unit, low);
        } else {
          out += String.fromCharCode(unit);
        }
      } else {
        this.fail(`invalid escape "\\${e ?? ''}"`);
      }
      run = this.pos;
    }
  }

  private parseNumber(): JsonValue {
    const t = this.text;
    const at = this.pos;
    const isDigit = (i: number) => i < t.length && t.charCodeAt(i) >= 0x30 && t.charCodeAt(i) <= 0x39;
    let p = at;
    if (t[p] === '-') p++;
    if (t[p] === '0') {
      p++;
      if (isDigit(p)) this.fail('invalid number (leading zero)', at);
    } else if (isDigit(p)) {
      while (isDigit(p)) p++;
    } else {
      this.fail('invalid number', at);
    }
    let integer = true;
    if (t[p] === '.') {
      p++;
      if (!isDigit(p)) this.fail('invalid number (digits expected after ".")', at);
      while (isDigit(p)) p++;
      integer = false;
    }
    if (t[p] === 'e' || t[p] === 'E') {
      p++;
      if (t[p] === '+' || t[p] === '-') p++;
      if (!isDigit(p)) this.fail('invalid number (digits expected in the exponent)', at);
      while (isDigit(p)) p++;
      integer = false;
    }
    this.pos = p;
    const text = t.slice(at, p);
    // serde_json reads "-0" as the float -0.0; other integer tokens as u64 or i64 when they fit.
    if (integer && text !== '-0') {
      const value = BigInt(text);
      if (value >= 0n && value <= U64_MAX) return { kind: 'uint', value, at };
      if (value < 0n && value >= I64_MIN) return { kind: 'int', value, at };
    }
    const value = Number(text);
    if (!Number.isFinite(value)) this.fail(`number ${text.length > 24 ? text.slice(0, 21) + '...' : text} out of range`, at);
    return { kind: 'float', value, text, at };
  }
}

// ------------------------------------------------------------------ the header schema

function describeValue(v: JsonValue): string {
  switch (v.kind) {
    case 'object': return 'an object';
    case 'array': return 'an array';
    case 'string': return `the string ${JSON.stringify(v.value.length > 40 ? v.value.slice(0, 37) + '...' : v.value)}`;
    case 'uint': case 'int': return `the integer ${v.value}`;
    case 'float': return `the number ${v.text.length > 24 ? v.text.slice(0, 21) + '...' : v.text} (not an integer token)`;
    case 'bool': return String(v.value);
    case 'null': return 'null';
  }
}

/** A u64 size (serde's usize): only a non-negative integer token is one. */
function size(v: JsonValue, what: string): bigint {
  if (v.kind !== 'uint') throw new HeaderError(`${what} must be a non-negative integer below 2^64 but is ${describeValue(v)}`);
  return v.value;
}

function dtypeOf(v: JsonValue, where: string): SafetensorsDtype {
  let name: string;
  if (v.kind === 'string') {
    name = v.value;
  } else if (v.kind === 'object' && v.entries.length === 1 && v.entries[0][1].kind === 'null') {
    name = v.entries[0][0]; // serde's map form of a unit variant: {"F32": null}
  } else {
    throw new HeaderError(`${where}: dtype must be a dtype name but is ${describeValue(v)}${v.kind === 'object' ? ' (only {"NAME": null} is accepted as an object)' : ''}`);
  }
  if (!isSafetensorsDtype(name)) {
    throw new HeaderError(`${where}: unknown dtype ${JSON.stringify(name)} (expected one of ${Object.keys(DTYPE_BITS).join(', ')})`);
  }
  return name;
}

function tensorEntry(name: string, v: JsonValue): ParsedTensorEntry {
  const where = `tensor ${JSON.stringify(name)}`;
  let dtype: JsonValue | undefined;
  let shape: JsonValue | undefined;
  let offsets: JsonValue | undefined;
  if (v.kind === 'object') {
    for (const [k, field] of v.entries) {
      if (k !== 'dtype' && k !== 'shape' && k !== 'data_offsets') continue; // unknown fields are ignored
      const seen = k === 'dtype' ? dtype : k === 'shape' ? shape : offsets;
      if (seen) throw new HeaderError(`${where}: field "${k}" appears twice`);
      if (k === 'dtype') dtype = field;
      else if (k === 'shape') shape = field;
      else offsets = field;
    }
    if (!dtype || !shape || !offsets) {
      const missing = [['dtype', dtype], ['shape', shape], ['data_offsets', offsets]].filter(([, f]) => !f).map(([k]) => k);
      throw new HeaderError(`${where}: missing field ${missing.join(', ')}`);
    }
  } else if (v.kind === 'array') {
    if (v.items.length !== 3) throw new HeaderError(`${where}: an entry given as an array must be [dtype, shape, data_offsets] but has ${v.items.length} elements`);
    [dtype, shape, offsets] = v.items;
  } else {
    throw new HeaderError(`${where}: entry must be an object {"dtype", "shape", "data_offsets"} but is ${describeValue(v)}`);
  }
  const dt = dtypeOf(dtype!, where);
  if (shape!.kind !== 'array') throw new HeaderError(`${where}: shape must be an array of sizes but is ${describeValue(shape!)}`);
  const dims = shape!.items.map((d, i) => size(d, `${where}: shape[${i}]`));
  if (offsets!.kind !== 'array' || offsets!.items.length !== 2) {
    throw new HeaderError(`${where}: data_offsets must be [begin, end] but is ${offsets!.kind === 'array' ? `an array of ${offsets!.items.length}` : describeValue(offsets!)}`);
  }
  const begin = size(offsets!.items[0], `${where}: data_offsets[0]`);
  const end = size(offsets!.items[1], `${where}: data_offsets[1]`);
  return { name, dtype: dt, shape: dims, begin, end };
}

/**
 * Parses a header (already decoded from UTF-8, BOM kept) and validates it as the reference
 * does, given the byte length of the data section that follows it.
 *
 * @returns the tensors in data order (by begin, then end; header order among equals) and the
 *   metadata (null when absent or `null`).
 * @throws HeaderError with a message that says what was expected and what was found.
 */
export function parseSafetensorsHeader(text: string, dataLength: number): {
  tensors: ParsedTensorEntry[]; metadata: Array<[string, string]> | null;
} {
  const doc = new StrictJsonParser(text).parseDocument();
  if (doc.kind !== 'object') throw new HeaderError(`header must be a JSON object but is ${describeValue(doc)}`);
  let metadata: Array<[string, string]> | null = null;
  let metadataSeen = false;
  const tensors: ParsedTensorEntry[] = [];
  const names = new Set<string>();
  for (const [key, value] of doc.entries) {
    if (key === '__metadata__') {
      if (metadataSeen) throw new HeaderError('"__metadata__" appears twice');
      metadataSeen = true;
      if (value.kind === 'null') continue;
      if (value.kind !== 'object') throw new HeaderError(`__metadata__ must be an object of strings or null but is ${describeValue(value)}`);
      const keys = new Set<string>();
      metadata = [];
      for (const [k, v] of value.entries) {
        if (v.kind !== 'string') throw new HeaderError(`__metadata__[${JSON.stringify(k)}] must be a string but is ${describeValue(v)}`);
        // Documented exception: the reference keeps the last value silently.
        if (keys.has(k)) throw new HeaderError(`__metadata__ key ${JSON.stringify(k)} appears twice (ambiguous; tunekit refuses duplicate keys)`);
        keys.add(k);
        metadata.push([k, v.value]);
      }
      continue;
    }
    const entry = tensorEntry(key, value);
    // Documented exception: the reference keeps the last entry silently.
    if (names.has(key)) throw new HeaderError(`tensor name ${JSON.stringify(key)} appears twice (ambiguous; tunekit refuses duplicate keys)`);
    names.add(key);
    tensors.push(entry);
  }
  // Metadata::validate, in u64 with overflow checks. An offset past the data fails it whatever
  // the order (the tensors tile [0, end of data]); refusing those first lets the sort use numbers.
  const limit = BigInt(dataLength);
  for (const t of tensors) {
    if (t.begin > limit || t.end > limit) {
      throw new HeaderError(`tensor ${JSON.stringify(t.name)}: data_offsets [${t.begin}, ${t.end}] run past the end of the data (${dataLength} bytes after the header); the file is truncated or the header is wrong`);
    }
  }
  // Stable sort (Array.prototype.sort is): header order among equal offsets.
  const ordered = [...tensors].sort((a, b) => Number(a.begin) - Number(b.begin) || Number(a.end) - Number(b.end));
  let cursor = 0n;
  for (const t of ordered) {
    const where = `tensor ${JSON.stringify(t.name)}`;
    if (t.begin !== cursor || t.end < t.begin) {
      const why = t.end < t.begin ? 'end before begin'
        : t.begin > cursor ? `a gap: the tensors before it (in offset order) end at ${cursor}`
          : `an overlap: the tensors before it (in offset order) end at ${cursor}`;
      throw new HeaderError(`${where}: data_offsets [${t.begin}, ${t.end}] are invalid (${why}); tensors must cover the data contiguously from 0`);
    }
    cursor = t.end;
    let elements = 1n;
    for (const d of t.shape) {
      elements *= d;
      if (elements > U64_MAX) throw new HeaderError(`${where}: shape [${t.shape.join(', ')}] overflows 64 bits`);
    }
    const bits = elements * BigInt(DTYPE_BITS[t.dtype]);
    if (bits > U64_MAX) throw new HeaderError(`${where}: shape [${t.shape.join(', ')}] of ${t.dtype} overflows 64 bits`);
    if (bits % 8n !== 0n) throw new HeaderError(`${where}: ${elements} elements of ${t.dtype} (${DTYPE_BITS[t.dtype]} bits each) do not end on a byte boundary`);
    if (t.end - t.begin !== bits / 8n) {
      throw new HeaderError(`${where}: shape [${t.shape.join(', ')}] of ${t.dtype} needs ${bits / 8n} bytes but data_offsets [${t.begin}, ${t.end}] hold ${t.end - t.begin}`);
    }
  }
  if (cursor !== limit) {
    throw new HeaderError(`tensors cover ${cursor} bytes of data but the file holds ${dataLength} after the header (trailing bytes)`);
  }
  // Documented exception: exact in the reference, not representable in a JavaScript number.
  for (const t of ordered) {
    const big = t.shape.find((d) => d > BigInt(Number.MAX_SAFE_INTEGER));
    if (big !== undefined) {
      throw new HeaderError(`tensor ${JSON.stringify(t.name)}: dimension ${big} of shape [${t.shape.join(', ')}] is above 2^53 - 1, which tunekit cannot represent exactly`);
    }
  }
  return { tensors: ordered, metadata };
}
