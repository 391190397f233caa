/**
 * Incremental text of one generated sequence, as the OpenAI API hands it out: pieces of text as
 * tokens arrive (streaming), cut at the first stop string (the stop string itself is not
 * returned), special tokens left out.
 *
 * Two kinds of text are held back until later tokens settle them: a trailing U+FFFD (a token that
 * ends inside a multi-byte character decodes to it until the rest arrives) and a tail that could
 * be the start of a stop string. Everything handed out is a prefix of the final text.
 */
import type { TokenizerLike } from '../data/types.js';

export class TextStream {
  private readonly ids: number[] = [];
  private full = '';
  /** characters of `full` already handed out */
  private sent = 0;
  private stoppedAt = -1;
  private readonly longestStop: number;

  constructor(private readonly tokenizer: TokenizerLike, private readonly stops: readonly string[] = []) {
    this.longestStop = Math.max(0, ...stops.map((s) => s.length));
  }

  /** Whether a stop string has appeared (no more text will be handed out). */
  get stopped(): boolean {
    return this.stoppedAt >= 0;
  }

  /**
   * Adds a token; returns the text that can be handed out now ('' if none).
   * @example const piece = stream.push(token); if (piece) send(piece); if (stream.stopped) finish('stop');
   */
  push(token: number): string {
    if (this.stopped) return '';
    this.ids.push(token);
    const before = this.full.length;
    this.full = this.tokenizer.decode(this.ids, { skipSpecialTokens: true });
    if (this.stops.length) {
      // a stop string can only end in the new text: search from where it could begin
      const from = Math.max(0, Math.min(before, this.sent) - this.longestStop);
      let cut = -1;
      for (const s of this.stops) {
        const at = this.full.indexOf(s, from);
        if (at >= 0 && (cut < 0 || at < cut)) cut = at;
      }
      if (cut >= 0) {
        this.stoppedAt = cut;
        return this.take(Math.max(cut, this.sent));
      }
    }
    return this.take(this.safeEnd());
  }

  /** The rest of the text, once the sequence has ended. */
  finish(): string {
    return this.take(this.stopped ? Math.max(this.stoppedAt, this.sent) : this.full.length);
  }

  /** The final text (up to the stop string, if one appeared). */
  get text(): string {
    return this.stopped ? this.full.slice(0, this.stoppedAt) : this.full;
  }

  private take(end: number): string {
    if (end <= this.sent) return '';
    const piece = this.full.slice(this.sent, end);
    this.sent = end;
    return piece;
  }

  /** How far the text is settled: before a trailing U+FFFD run and any tail that begins a stop string. */
  private safeEnd(): number {
    let end = this.full.length;
    while (end > this.sent && this.full.charCodeAt(end - 1) === 0xfffd) end--;
    for (let k = Math.min(this.longestStop - 1, end - this.sent); k > 0; k--) {
      const tail = this.full.slice(end - k, end);
      if (this.stops.some((s) => s.startsWith(tail))) return end - k;
    }
    return end;
  }
}
