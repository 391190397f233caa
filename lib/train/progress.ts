/**
 * Training progress on the terminal: a cli-progress bar (step/total, loss, tokens/s, ETA) when
 * the output is a TTY, plain log lines every N steps otherwise (CI logs, files, pipes).
 */

import cliProgress from 'cli-progress';
import pc from 'picocolors';
import { TunekitError, describe } from '../errors.js';

export interface ProgressOptions {
  /** Total optimizer steps. */
  total: number;
  /** 'auto' (default): bar on a TTY, plain lines otherwise. */
  mode?: 'auto' | 'bar' | 'plain' | 'none';
  /** Plain mode: print every N steps (default 10; the last step is always printed). */
  every?: number;
  /** Output stream (default process.stderr, so stdout stays clean for results). */
  stream?: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  /** Step to start from (when resuming). */
  startStep?: number;
  /** Clock in ms (for tests). */
  now?: () => number;
}

export interface StepInfo {
  loss?: number;
  lr?: number;
  /** Tokens processed since the previous update (the reporter computes tokens/s). */
  tokens?: number;
  /** Or a throughput measured by the caller. */
  tokensPerSec?: number;
  epoch?: number;
  /** The objective's figures of the step (reward: accuracy, margin; PPO: score, kl ...), printed after the loss in plain lines. */
  figures?: Record<string, number>;
}

/**
 * Formats seconds as h:mm:ss or m:ss.
 *
 * @example
 * formatDuration(3725); // '1:02:05'
 */
export function formatDuration(sec: number): string {
  if (!Number.isFinite(sec) || sec < 0) return '--:--';
  const s = Math.round(sec);
  const h = Math.floor(s / 3600);
  const mm = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(mm).padStart(2, '0')}:${ss}` : `${mm}:${ss}`;
}

function fmtNum(v: number | undefined, digits = 4): string {
  if (v === undefined || Number.isNaN(v)) return '-';
  if (!Number.isFinite(v)) return String(v);
  return Math.abs(v) >= 1e4 || (Math.abs(v) < 1e-3 && v !== 0) ? v.toExponential(2) : v.toFixed(digits);
}

function fmtLr(v: number | undefined): string {
  return v === undefined || !Number.isFinite(v) ? '-' : v === 0 ? '0' : v.toExponential(2);
}

/**
 * Reports training progress.
 *
 * @example
 * const progress = new ProgressReporter({ total: 1000 });
 * for (let step = 1; step <= 1000; step++) progress.update(step, { loss, lr, tokens: batchTokens });
 * progress.log('eval loss 0.123');   // printed above the bar
 * progress.stop();
 */
export class ProgressReporter {
  readonly total: number;
  readonly mode: 'bar' | 'plain' | 'none';
  private readonly every: number;
  private readonly stream: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  private readonly now: () => number;
  private readonly t0: number;
  private readonly startStep: number;
  private lastT: number;
  private tps: number | undefined;
  private step: number;
  private bar: cliProgress.SingleBar | null = null;
  private lastPrinted = -1;

  constructor(opts: ProgressOptions) {
    if (!Number.isInteger(opts.total) || opts.total < 1) {
      throw new TunekitError('ERR_VALUE', `Expected a positive integer for total but received ${describe(opts.total)}`);
    }
    this.total = opts.total;
    this.stream = opts.stream ?? process.stderr;
    const mode = opts.mode ?? 'auto';
    this.mode = mode === 'auto' ? (this.stream.isTTY ? 'bar' : 'plain') : mode;
    this.every = Math.max(1, opts.every ?? 10);
    this.now = opts.now ?? (() => performance.now());
    this.t0 = this.now();
    this.lastT = this.t0;
    this.startStep = opts.startStep ?? 0;
    this.step = this.startStep;
    if (this.mode === 'bar') {
      this.bar = new cliProgress.SingleBar(
        {
          stream: this.stream as NodeJS.WritableStream,
          format: `${pc.cyan('{bar}')} {value}/{total} | loss {loss} | lr {lr} | {tps} tok/s | {elapsed} < ETA {eta_text}`,
          barCompleteChar: '\u2588',
          barIncompleteChar: '\u2591',
          hideCursor: true,
          clearOnComplete: false,
          etaBuffer: 50,
          fps: 10,
          noTTYOutput: true,
        },
        cliProgress.Presets.shades_classic,
      );
      this.bar.start(this.total, this.startStep, { loss: '-', lr: '-', tps: '-', elapsed: '0:00', eta_text: '--:--' });
    }
  }

  private eta(): number {
    const done = this.step - this.startStep;
    if (done <= 0) return NaN;
    const elapsed = (this.now() - this.t0) / 1000;
    return (elapsed / done) * (this.total - this.step);
  }

  /**
   * Records that `step` optimizer steps are done.
   *
   * @example
   * progress.update(42, { loss: 1.234, lr: 1.9e-4, tokens: 4096 });
   */
  update(step: number, info: StepInfo = {}): void {
    const t = this.now();
    const dt = (t - this.lastT) / 1000;
    this.lastT = t;
    if (info.tokensPerSec !== undefined) this.tps = info.tokensPerSec;
    else if (info.tokens !== undefined && dt > 0) {
      const inst = info.tokens / dt;
      this.tps = this.tps === undefined ? inst : 0.8 * this.tps + 0.2 * inst;
    }
    this.step = step;
    const elapsed = formatDuration((t - this.t0) / 1000);
    const tps = this.tps === undefined ? '-' : Math.round(this.tps).toLocaleString('en-US');
    if (this.bar) {
      this.bar.update(step, { loss: fmtNum(info.loss), lr: fmtLr(info.lr), tps, elapsed, eta_text: formatDuration(this.eta()) });
    } else if (this.mode === 'plain' && (step % this.every === 0 || step === this.total) && step !== this.lastPrinted) {
      this.lastPrinted = step;
      const pct = ((100 * step) / this.total).toFixed(1);
      const parts = [`step ${step}/${this.total} (${pct}%)`];
      if (info.epoch !== undefined) parts.push(`epoch ${fmtNum(info.epoch, 2)}`);
      if (info.loss !== undefined) parts.push(`loss ${fmtNum(info.loss)}`);
      for (const [k, v] of Object.entries(info.figures ?? {})) parts.push(`${k} ${fmtNum(v)}`);
      if (info.lr !== undefined) parts.push(`lr ${fmtLr(info.lr)}`);
      if (this.tps !== undefined) parts.push(`${tps} tok/s`);
      parts.push(`elapsed ${elapsed}`, `eta ${formatDuration(this.eta())}`);
      this.stream.write(parts.join(' | ') + '\n');
    }
  }

  /**
   * Prints a message (e.g. eval results) without breaking the bar.
   *
   * @example
   * progress.log(`eval loss ${loss.toFixed(4)} accuracy ${(acc * 100).toFixed(2)}%`);
   */
  log(message: string): void {
    if (this.mode === 'none') return;
    if (this.bar) {
      // Clear the bar line, print, and let the bar redraw below.
      this.stream.write('\r\x1b[2K' + message + '\n');
      this.bar.render();
    } else {
      this.stream.write(message + '\n');
    }
  }

  /** Stops the bar (leaves it on screen). */
  stop(): void {
    if (this.bar) {
      this.bar.stop();
      this.bar = null;
    }
  }
}
