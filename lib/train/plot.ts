/**
 * The run charts, as self-contained SVG written directly (no plotting dependency), for every
 * objective:
 *  - the loss chart (loss.svg): train loss (raw, faint, plus an exponential moving average when
 *    there are many points), eval loss, and an eval metric on a second axis; ticks, grid, axis
 *    labels, title, legend;
 *  - panel charts (PPO's ppo.svg: score, KL with its target, kl_coef): one series per panel,
 *    side by side up to three, in rows of two beyond that, with an optional dashed reference line.
 */

import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { writeFileAtomic, writeFileAtomicSync } from '../io/atomic.js';
import type { MetricsRecord } from './metrics_log.js';

export interface PlotOptions {
  title?: string;
  width?: number;
  height?: number;
  /** Field plotted on the right axis from eval records (default: 'accuracy', else 'acc'). */
  metricKey?: string;
  /** EMA weight for the smoothed train loss (default 0.9, as TensorBoard's 0.6-0.9); 0 disables. */
  smoothing?: number;
}

interface Series {
  label: string;
  color: string;
  points: Array<[number, number]>;
  axis: 'left' | 'right';
  width: number;
  opacity?: number;
  dash?: string;
  markers?: boolean;
  legend?: boolean;
}

const FONT = "font-family=\"'DejaVu Sans', 'Helvetica Neue', Helvetica, Arial, sans-serif\"";
const COLORS = { train: '#1f77b4', trainRaw: '#9ecae1', eval: '#ff7f0e', metric: '#2ca02c', grid: '#e6e6e6', axis: '#444444', text: '#222222' };

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/**
 * "Nice" axis ticks (steps of 1, 2 or 5 x 10^k) covering [lo, hi].
 *
 * @example
 * niceTicks(0.13, 2.9, 6); // { lo: 0, hi: 3, step: 0.5, ticks: [0, 0.5, 1, 1.5, 2, 2.5, 3] }
 */
export function niceTicks(lo: number, hi: number, target = 6): { lo: number; hi: number; step: number; ticks: number[] } {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return { lo: 0, hi: 1, step: 0.2, ticks: [0, 0.2, 0.4, 0.6, 0.8, 1] };
  if (hi < lo) [lo, hi] = [hi, lo];
  if (hi === lo) {
    const pad = lo === 0 ? 1 : Math.abs(lo) * 0.1;
    lo -= pad;
    hi += pad;
  }
  const raw = (hi - lo) / Math.max(1, target);
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const norm = raw / mag;
  const step = (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 5 ? 5 : 10) * mag;
  const nlo = Math.floor(lo / step + 1e-9) * step;
  const nhi = Math.ceil(hi / step - 1e-9) * step;
  const ticks: number[] = [];
  for (let v = nlo; v <= nhi + step * 1e-6; v += step) ticks.push(Number((Math.round(v / step) * step).toPrecision(12)));
  return { lo: nlo, hi: nhi, step, ticks };
}

function fmtTick(v: number, step: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e5 || a < 1e-3) return v.toExponential(1).replace('e+', 'e');
  const decimals = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
  if (a >= 1000 && decimals === 0) return v.toLocaleString('en-US');
  return v.toFixed(Math.min(decimals, 6));
}

function ema(points: Array<[number, number]>, w: number): Array<[number, number]> {
  // Debiased EMA (as TensorBoard), so the start is not pulled towards 0.
  let acc = 0;
  let norm = 0;
  return points.map(([x, y]) => {
    acc = w * acc + (1 - w) * y;
    norm = w * norm + (1 - w);
    return [x, acc / norm] as [number, number];
  });
}

function num(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

/**
 * Renders the chart to an SVG string.
 *
 * @example
 * const svg = renderLossPlot(readMetrics('runs/x/metrics.jsonl'), { title: 'GPT-2 + LoRA on SpamAssassin' });
 */
export function renderLossPlot(records: readonly MetricsRecord[], opts: PlotOptions = {}): string {
  const W = opts.width ?? 860;
  const H = opts.height ?? 500;
  const title = opts.title ?? 'Training metrics';
  const smoothing = opts.smoothing ?? 0.9;
  const evalRecs = records.filter((r) => r.split === 'eval');
  const metricKey = opts.metricKey ?? (evalRecs.some((r) => num(r['accuracy']) !== undefined) ? 'accuracy' : 'acc');

  const trainPts = records.filter((r) => r.split === 'train' && num(r.loss) !== undefined && num(r.step) !== undefined).map((r) => [r.step, r.loss!] as [number, number]);
  const evalPts = evalRecs.filter((r) => num(r.loss) !== undefined).map((r) => [r.step, r.loss!] as [number, number]);
  const metricPts = evalRecs.filter((r) => num(r[metricKey]) !== undefined).map((r) => [r.step, r[metricKey] as number] as [number, number]);
  const byStep = (a: [number, number], b: [number, number]): number => a[0] - b[0];
  trainPts.sort(byStep);
  evalPts.sort(byStep);
  metricPts.sort(byStep);

  const series: Series[] = [];
  const smooth = smoothing > 0 && trainPts.length >= 30;
  if (smooth) {
    series.push({ label: 'train loss (raw)', color: COLORS.trainRaw, points: trainPts, axis: 'left', width: 1, opacity: 0.8, legend: false });
    series.push({ label: 'train loss', color: COLORS.train, points: ema(trainPts, smoothing), axis: 'left', width: 2.2 });
  } else if (trainPts.length > 0) {
    series.push({ label: 'train loss', color: COLORS.train, points: trainPts, axis: 'left', width: 2.2, markers: trainPts.length <= 30 });
  }
  if (evalPts.length > 0) series.push({ label: 'eval loss', color: COLORS.eval, points: evalPts, axis: 'left', width: 2.2, markers: true });
  const hasRight = metricPts.length > 0;
  if (hasRight) series.push({ label: `eval ${metricKey}`, color: COLORS.metric, points: metricPts, axis: 'right', width: 2, dash: '6 4', markers: true });

  const m = { left: 76, right: hasRight ? 76 : 32, top: 78, bottom: 62 };
  const pw = W - m.left - m.right;
  const ph = H - m.top - m.bottom;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" ${FONT}>`);
  out.push(`<rect x="0" y="0" width="${W}" height="${H}" fill="#ffffff"/>`);
  out.push(`<text x="${W / 2}" y="30" text-anchor="middle" font-size="19" font-weight="600" fill="${COLORS.text}">${esc(title)}</text>`);

  const all = series.flatMap((s) => s.points);
  if (all.length === 0) {
    out.push(`<rect x="${m.left}" y="${m.top}" width="${pw}" height="${ph}" fill="none" stroke="${COLORS.grid}"/>`);
    out.push(`<text x="${W / 2}" y="${m.top + ph / 2}" text-anchor="middle" font-size="15" fill="#888888">no metrics recorded yet</text>`);
    out.push('</svg>');
    return out.join('\n');
  }

  const xs = all.map((p) => p[0]);
  const xt = niceTicks(Math.min(...xs), Math.max(...xs), 8);
  const leftVals = series.filter((s) => s.axis === 'left').flatMap((s) => s.points.map((p) => p[1]));
  const lt = niceTicks(leftVals.length ? Math.min(...leftVals) : 0, leftVals.length ? Math.max(...leftVals) : 1, 6);
  const rightVals = metricPts.map((p) => p[1]);
  let rt = hasRight ? niceTicks(Math.min(...rightVals), Math.max(...rightVals), 5) : null;
  if (rt && rightVals.every((v) => v >= 0 && v <= 1)) rt = niceTicks(Math.max(0, rt.lo), Math.min(1, rt.hi), 5);

  const sx = (x: number): number => m.left + ((x - xt.lo) / (xt.hi - xt.lo || 1)) * pw;
  const sy = (y: number, t: { lo: number; hi: number }): number => m.top + ph - ((y - t.lo) / (t.hi - t.lo || 1)) * ph;
  const f = (v: number): string => v.toFixed(2);

  // grid + ticks
  out.push(`<g stroke="${COLORS.grid}" stroke-width="1">`);
  for (const t of lt.ticks) out.push(`<line x1="${m.left}" x2="${m.left + pw}" y1="${f(sy(t, lt))}" y2="${f(sy(t, lt))}"/>`);
  for (const t of xt.ticks) out.push(`<line x1="${f(sx(t))}" x2="${f(sx(t))}" y1="${m.top}" y2="${m.top + ph}"/>`);
  out.push('</g>');
  out.push(`<g font-size="12" fill="${COLORS.text}">`);
  for (const t of lt.ticks) out.push(`<text x="${m.left - 8}" y="${f(sy(t, lt) + 4)}" text-anchor="end">${fmtTick(t, lt.step)}</text>`);
  for (const t of xt.ticks) out.push(`<text x="${f(sx(t))}" y="${m.top + ph + 18}" text-anchor="middle">${fmtTick(t, xt.step)}</text>`);
  if (rt) for (const t of rt.ticks) out.push(`<text x="${m.left + pw + 8}" y="${f(sy(t, rt) + 4)}" text-anchor="start">${fmtTick(t, rt.step)}</text>`);
  out.push('</g>');
  // axes
  out.push(`<g stroke="${COLORS.axis}" stroke-width="1.2" fill="none">`);
  out.push(`<line x1="${m.left}" x2="${m.left}" y1="${m.top}" y2="${m.top + ph}"/>`);
  out.push(`<line x1="${m.left}" x2="${m.left + pw}" y1="${m.top + ph}" y2="${m.top + ph}"/>`);
  if (rt) out.push(`<line x1="${m.left + pw}" x2="${m.left + pw}" y1="${m.top}" y2="${m.top + ph}"/>`);
  out.push('</g>');
  // axis labels
  out.push(`<text x="${m.left + pw / 2}" y="${H - 18}" text-anchor="middle" font-size="14" fill="${COLORS.text}">step</text>`);
  out.push(`<text transform="translate(20 ${m.top + ph / 2}) rotate(-90)" text-anchor="middle" font-size="14" fill="${COLORS.text}">loss</text>`);
  if (rt) out.push(`<text transform="translate(${W - 18} ${m.top + ph / 2}) rotate(90)" text-anchor="middle" font-size="14" fill="${COLORS.metric}">eval ${esc(metricKey)}</text>`);

  // series
  out.push(`<defs><clipPath id="plot-area"><rect x="${m.left - 4}" y="${m.top - 4}" width="${pw + 8}" height="${ph + 8}"/></clipPath></defs>`);
  out.push('<g clip-path="url(#plot-area)">');
  for (const s of series) {
    const t = s.axis === 'left' ? lt : rt!;
    const d = s.points.map((p, i) => `${i === 0 ? 'M' : 'L'}${f(sx(p[0]))},${f(sy(p[1], t))}`).join(' ');
    if (s.points.length > 1) {
      out.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="${s.width}" stroke-linejoin="round" stroke-linecap="round"${s.opacity !== undefined ? ` stroke-opacity="${s.opacity}"` : ''}${s.dash ? ` stroke-dasharray="${s.dash}"` : ''}/>`);
    }
    if (s.markers || s.points.length === 1) {
      for (const p of s.points) out.push(`<circle cx="${f(sx(p[0]))}" cy="${f(sy(p[1], t))}" r="3.5" fill="#ffffff" stroke="${s.color}" stroke-width="2"/>`);
    }
  }
  out.push('</g>');

  // legend (centered row under the title)
  const items = series.filter((s) => s.legend !== false);
  const itemW = items.map((s) => 34 + s.label.length * 7.2 + 18);
  let lx = W / 2 - itemW.reduce((a, b) => a + b, 0) / 2;
  const ly = 56;
  out.push(`<g font-size="13" fill="${COLORS.text}">`);
  items.forEach((s, i) => {
    out.push(`<line x1="${f(lx)}" x2="${f(lx + 26)}" y1="${ly}" y2="${ly}" stroke="${s.color}" stroke-width="${Math.max(2, s.width)}"${s.dash ? ` stroke-dasharray="${s.dash}"` : ''}/>`);
    if (s.markers) out.push(`<circle cx="${f(lx + 13)}" cy="${ly}" r="3.5" fill="#ffffff" stroke="${s.color}" stroke-width="2"/>`);
    out.push(`<text x="${f(lx + 32)}" y="${ly + 4.5}">${esc(s.label)}</text>`);
    lx += itemW[i]!;
  });
  out.push('</g>');
  out.push('</svg>');
  return out.join('\n');
}

/**
 * Writes the chart for a run's metrics to an .svg file (atomically).
 *
 * @example
 * await writeLossPlot(readMetrics('runs/x/metrics.jsonl'), 'runs/x/loss.svg', { title: 'LoRA r=8' });
 */
export async function writeLossPlot(records: readonly MetricsRecord[], path: string, opts: PlotOptions = {}): Promise<string> {
  const svg = renderLossPlot(records, opts);
  mkdirSync(dirname(path), { recursive: true });
  await writeFileAtomic(path, svg);
  return svg;
}

// ------------------------------------------------------------------ panel charts

/** One panel of a panel chart: a series over steps. */
export interface SeriesPanel {
  title: string;
  points: [number, number][];
  color: string;
  /** a dashed horizontal line (e.g. the KL target), kept inside the y range */
  reference?: { y: number; label: string };
  /** x axis label (default 'step') */
  xLabel?: string;
}

function panel(p: SeriesPanel, x0: number, y0: number, w: number, h: number): string {
  const xs = p.points.map((q) => q[0]), ys = p.points.map((q) => q[1]);
  const ref = p.reference ? [p.reference.y] : [];
  const tx = niceTicks(Math.min(...xs, 0), Math.max(...xs, 1), 5), ty = niceTicks(Math.min(...ys, ...ref), Math.max(...ys, ...ref), 5);
  const X = (x: number) => x0 + ((x - tx.lo) / (tx.hi - tx.lo || 1)) * w;
  const Y = (y: number) => y0 + h - ((y - ty.lo) / (ty.hi - ty.lo || 1)) * h;
  const out: string[] = [`<text x="${x0 + w / 2}" y="${y0 - 10}" text-anchor="middle" font-size="14">${esc(p.title)}</text>`];
  for (const t of ty.ticks) out.push(`<line x1="${x0}" x2="${x0 + w}" y1="${Y(t)}" y2="${Y(t)}" stroke="${COLORS.grid}"/><text x="${x0 - 6}" y="${Y(t) + 4}" text-anchor="end" font-size="11">${+t.toPrecision(4)}</text>`);
  for (const t of tx.ticks) out.push(`<text x="${X(t)}" y="${y0 + h + 16}" text-anchor="middle" font-size="11">${+t.toPrecision(4)}</text>`);
  out.push(`<rect x="${x0}" y="${y0}" width="${w}" height="${h}" fill="none" stroke="${COLORS.axis}"/>`);
  out.push(`<text x="${x0 + w / 2}" y="${y0 + h + 34}" text-anchor="middle" font-size="12">${esc(p.xLabel ?? 'step')}</text>`);
  if (p.reference) {
    const y = Y(p.reference.y).toFixed(1);
    out.push(`<line x1="${x0}" x2="${x0 + w}" y1="${y}" y2="${y}" stroke="#555" stroke-dasharray="6 4"/><text x="${x0 + 6}" y="${+y - 5}" font-size="11" fill="#555">${esc(p.reference.label)}</text>`);
  }
  if (p.points.length) {
    out.push(`<polyline fill="none" stroke="${p.color}" stroke-width="2" points="${p.points.map(([x, y]) => `${X(x).toFixed(1)},${Y(y).toFixed(1)}`).join(' ')}"/>`);
    for (const [x, y] of p.points) out.push(`<circle cx="${X(x).toFixed(1)}" cy="${Y(y).toFixed(1)}" r="2.5" fill="${p.color}"/>`);
  }
  return out.join('\n');
}

/**
 * Renders panels (e.g. score and KL per step) to an SVG string: side by side up to three, in
 * rows of two beyond that.
 * @example renderPanels('PPO', [{ title: 'mean score', points: [[1, 0.2], [2, 0.5]], color: '#1f77b4' }])
 */
export function renderPanels(title: string, panels: readonly SeriesPanel[]): string {
  const cols = panels.length <= 3 ? Math.max(1, panels.length) : 2, rows = Math.ceil(panels.length / cols);
  const pw = 380, ph = 260, rowH = ph + 100, W = 70 + cols * (pw + 80), H = 20 + rows * rowH;
  const parts = panels.map((p, i) => panel(p, 70 + (i % cols) * (pw + 80), 60 + Math.floor(i / cols) * rowH, pw, ph));
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" ${FONT}>
<rect width="100%" height="100%" fill="white"/>
<text x="${W / 2}" y="24" text-anchor="middle" font-size="16" font-weight="bold">${esc(title)}</text>
${parts.join('\n')}
</svg>
`;
}

/**
 * Writes a panel chart to an .svg file (atomically); returns the SVG.
 * @example writePanelsPlot('PPO', panels, 'runs/ppo/ppo.svg');
 */
export function writePanelsPlot(title: string, panels: readonly SeriesPanel[], path: string): string {
  const svg = renderPanels(title, panels);
  mkdirSync(dirname(path), { recursive: true });
  writeFileAtomicSync(path, svg);
  return svg;
}
