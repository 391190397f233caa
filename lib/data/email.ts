/**
 * Just enough of RFC 5322 / MIME to turn a raw e-mail into its body text: split off the
 * headers, walk multipart bodies, decode quoted-printable and base64 text parts, prefer
 * text/plain over text/html, and turn HTML into plain text. Attachments are dropped.
 * (Written here rather than pulling in a mail parser: the corpus is fixed and the needs small.)
 */

export interface ParsedHeaders {
  /** Lower-cased header name -> first value (continuation lines unfolded). */
  get(name: string): string | undefined;
  names: string[];
}

/**
 * Splits a message (or MIME part) at the first empty line.
 *
 * @example
 * splitHeaders('Subject: hi\n\nbody'); // { head: 'Subject: hi', body: 'body' }
 */
export function splitHeaders(raw: string): { head: string; body: string } {
  const m = /\r?\n\r?\n/.exec(raw);
  if (!m) {
    // No empty line: a header-only message when it starts with a header, else all body.
    return /^[\w-]+:/.test(raw) ? { head: raw, body: '' } : { head: '', body: raw };
  }
  return { head: raw.slice(0, m.index), body: raw.slice(m.index + m[0].length) };
}

/**
 * Parses a header block (folded lines are joined).
 *
 * @example
 * parseHeaders('Content-Type: text/plain;\n charset=utf-8').get('content-type'); // 'text/plain; charset=utf-8'
 */
export function parseHeaders(head: string): ParsedHeaders {
  const map = new Map<string, string>();
  const names: string[] = [];
  let cur: string | null = null;
  let val = '';
  const flush = (): void => {
    if (cur !== null && !map.has(cur)) map.set(cur, val.trim());
  };
  for (const line of head.split(/\r?\n/)) {
    if (/^[ \t]/.test(line) && cur !== null) {
      val += ' ' + line.trim();
      continue;
    }
    flush();
    const m = /^([^\s:]+):\s?(.*)$/.exec(line);
    if (m) {
      cur = m[1]!.toLowerCase();
      val = m[2]!;
      names.push(cur);
    } else {
      cur = null; // mbox "From " line or junk
    }
  }
  flush();
  return { get: (name) => map.get(name.toLowerCase()), names };
}

function param(headerValue: string, name: string): string | undefined {
  const re = new RegExp(`;\\s*${name}\\s*=\\s*(?:"([^"]*)"|([^;\\s]+))`, 'i');
  const m = re.exec(headerValue);
  return m ? (m[1] ?? m[2]) : undefined;
}

function bytesToText(bytes: Uint8Array, charset: string | undefined): string {
  const cs = (charset ?? 'us-ascii').toLowerCase();
  try {
    return new TextDecoder(cs === 'us-ascii' || cs === 'ascii' ? 'windows-1252' : cs).decode(bytes);
  } catch {
    return new TextDecoder('windows-1252').decode(bytes);
  }
}

/**
 * Decodes quoted-printable text to bytes.
 *
 * @example
 * new TextDecoder().decode(decodeQuotedPrintable('caf=C3=A9 =\nau lait')); // 'café au lait'
 */
export function decodeQuotedPrintable(s: string): Uint8Array {
  const noSoftBreaks = s.replace(/=\r?\n/g, '');
  const out: number[] = [];
  for (let i = 0; i < noSoftBreaks.length; i++) {
    const c = noSoftBreaks.charCodeAt(i);
    if (c === 0x3d && /^[0-9A-Fa-f]{2}$/.test(noSoftBreaks.slice(i + 1, i + 3))) {
      out.push(parseInt(noSoftBreaks.slice(i + 1, i + 3), 16));
      i += 2;
    } else if (c < 0x80) {
      out.push(c);
    } else {
      for (const b of Buffer.from(noSoftBreaks[i]!, 'utf8')) out.push(b);
    }
  }
  return Uint8Array.from(out);
}

const ENTITIES: Record<string, string> = { nbsp: ' ', amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", copy: '©', reg: '®' };

/**
 * Turns HTML into readable text: drops scripts, styles and comments, makes block elements
 * line breaks, removes tags, decodes common entities, collapses blank runs.
 *
 * @example
 * htmlToText('<p>Hello&nbsp;<b>world</b></p>'); // 'Hello world'
 */
export function htmlToText(html: string): string {
  return html
    .replace(/<!--[\s\S]*?-->/g, ' ')
    .replace(/<(script|style|head|title)\b[\s\S]*?<\/\1\s*>/gi, ' ')
    .replace(/<(br|\/p|\/div|\/tr|\/li|\/h\d|p|div|tr|li|table|\/table)\b[^>]*>/gi, '\n')
    .replace(/<[^>]*>/g, ' ')
    .replace(/&(#x[0-9a-f]+|#\d+|[a-z]+);/gi, (m, e: string) => {
      if (e[0] === '#') {
        const code = e[1] === 'x' || e[1] === 'X' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10);
        return Number.isFinite(code) && code > 0 && code < 0x110000 ? String.fromCodePoint(code) : ' ';
      }
      return ENTITIES[e.toLowerCase()] ?? m;
    })
    .replace(/[ \t\u00a0]+/g, ' ')
    .replace(/ *\n */g, '\n')
    .replace(/\n{3,}/g, '\n\n')
    .trim();
}

interface TextPart {
  type: string;
  text: string;
}

function collectParts(head: string, body: string, out: TextPart[], depth: number): void {
  const h = parseHeaders(head);
  const ctype = h.get('content-type') ?? 'text/plain';
  const mime = (ctype.split(';')[0] ?? '').trim().toLowerCase() || 'text/plain';
  const disposition = (h.get('content-disposition') ?? '').toLowerCase();
  if (mime.startsWith('multipart/') && depth < 10) {
    const boundary = param(ctype, 'boundary');
    if (!boundary) {
      out.push({ type: 'text/plain', text: body });
      return;
    }
    const lines = body.split(/\r?\n/);
    const parts: string[][] = [];
    let cur: string[] | null = null;
    for (const line of lines) {
      const t = line.trimEnd();
      if (t === `--${boundary}--`) {
        if (cur) parts.push(cur);
        cur = null;
        break;
      }
      if (t === `--${boundary}`) {
        if (cur) parts.push(cur);
        cur = [];
        continue;
      }
      if (cur) cur.push(line);
    }
    if (cur) parts.push(cur);
    for (const p of parts) {
      const { head: ph, body: pb } = splitHeaders(p.join('\n'));
      collectParts(ph, pb, out, depth + 1);
    }
    return;
  }
  if (mime === 'message/rfc822' && depth < 10) {
    const inner = splitHeaders(body);
    collectParts(inner.head, inner.body, out, depth + 1);
    return;
  }
  if (!mime.startsWith('text/') || disposition.startsWith('attachment')) return;
  const enc = (h.get('content-transfer-encoding') ?? '').trim().toLowerCase();
  const charset = param(ctype, 'charset');
  let text: string;
  if (enc === 'quoted-printable') text = bytesToText(decodeQuotedPrintable(body), charset);
  else if (enc === 'base64') text = bytesToText(Buffer.from(body.replace(/[^A-Za-z0-9+/=]/g, ''), 'base64'), charset);
  else text = body;
  out.push({ type: mime, text });
}

export interface EmailBodyOptions {
  /**
   * 'text' (default): decoded text parts, text/plain preferred, HTML turned into text (the
   *   decoded HTML source is kept when it has no text at all, e.g. image-only spam).
   * 'raw': everything after the message headers, unchanged.
   */
  mode?: 'text' | 'raw';
}

/**
 * The body of an e-mail without its headers.
 *
 * @example
 * emailBody('From: a@b\nSubject: hi\n\nHello there'); // 'Hello there'
 */
export function emailBody(raw: string, opts: EmailBodyOptions = {}): string {
  const { head, body } = splitHeaders(raw);
  if (opts.mode === 'raw') return body;
  return bodyText(head, body, 0);
}

const HEADER_LINE = /^(?:From \S+ |[\w-]+:[ \t]|[\w-]+:$|[ \t]+\S)/;
const MAIL_START = /^(?:Return-Path|Received|Delivered-To|Delivery-Date|Message-I[Dd]|From \S+ )/;

/** True when `text` opens with a whole header block (a bounced or forwarded message pasted as the body). */
function startsWithEmbeddedMessage(text: string): boolean {
  if (!MAIL_START.test(text)) return false;
  const m = /\r?\n\r?\n/.exec(text);
  if (!m) return false;
  return text
    .slice(0, m.index)
    .split(/\r?\n/)
    .every((l) => HEADER_LINE.test(l));
}

function bodyText(head: string, body: string, depth: number): string {
  const parts: TextPart[] = [];
  collectParts(head, body, parts, 0);
  const plain = parts.filter((p) => p.type === 'text/plain' && p.text.trim().length > 0);
  const chosen = plain.length > 0 ? plain : parts.filter((p) => p.type === 'text/html');
  const texts = chosen.map((p) => (p.type === 'text/html' ? htmlToText(p.text) : p.text));
  if (texts.length === 0 && parts.length > 0) texts.push(...parts.map((p) => p.text));
  let joined = texts.join('\n\n');
  // Image-only HTML mail has no text once tags are removed: keep the decoded HTML source
  // (its links and image names are the only content), else the undecoded body.
  if (joined.trim() === '') joined = parts.map((p) => p.text).join('\n\n');
  if (joined.trim() === '') joined = body;
  joined = joined.replace(/^\s+/, '');
  if (depth < 3 && startsWithEmbeddedMessage(joined)) {
    const inner = splitHeaders(joined);
    const innerText = bodyText(inner.head, inner.body, depth + 1);
    if (innerText.trim() !== '') return innerText;
  }
  return joined
    .replace(/\r\n/g, '\n')
    .replace(/[ \t]+\n/g, '\n')
    .replace(/\n{3,}/g, '\n\n')
    .trim();
}
