/**
 * A PPO chart as a self-contained SVG: mean reward-model score and KL to the reference per PPO
 * step (the KL target drawn as a dashed line when the KL controller is adaptive), the KL
 * coefficient when it changed, and any extra series (for example an independent score of the
 * rollouts), with axis ticks. Written directly, no plotting library.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { niceTicks } from '../train/plot.js';

export interface SeriesPanel {
  title: string;
  points: [number, number][];
  color: string;
  /** a dashed horizontal line (e.g. the KL target), kept inside the y range */
  reference?: { y: number; label: string };
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function panel(p: SeriesPanel, x0: number, y0: number, w: number, h: number): string {
  const xs = p.points.map((q) => q[0]), ys = p.points.map((q) => q[1]);
  const ref = p.reference ? [p.reference.y] : [];
  const tx = niceTicks(Math.min(...xs, 0), Math.max(...xs, 1), 5), ty = niceTicks(Math.min(...ys, ...ref), Math.max(...ys, ...ref), 5);
  const X = (x: number) => x0 + ((x - tx.lo) / (tx.hi - tx.lo || 1)) * w;
  const Y = (y: number) => y0 + h - ((y - ty.lo) / (ty.hi - ty.lo || 1)) * h;
  const out: string[] = [`<text x="${x0 + w / 2}" y="${y0 - 10}" text-anchor="middle" font-size="14">${esc(p.title)}</text>`];
  for (const t of ty.ticks) out.push(`<line x1="${x0}" x2="${x0 + w}" y1="${Y(t)}" y2="${Y(t)}" stroke="#e6e6e6"/><text x="${x0 - 6}" y="${Y(t) + 4}" text-anchor="end" font-size="11">${+t.toPrecision(4)}</text>`);
  for (const t of tx.ticks) out.push(`<text x="${X(t)}" y="${y0 + h + 16}" text-anchor="middle" font-size="11">${+t.toPrecision(4)}</text>`);
  out.push(`<rect x="${x0}" y="${y0}" width="${w}" height="${h}" fill="none" stroke="#444"/>`);
  out.push(`<text x="${x0 + w / 2}" y="${y0 + h + 34}" text-anchor="middle" font-size="12">PPO step</text>`);
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
export function renderPanels(title: string, panels: SeriesPanel[]): string {
  const cols = panels.length <= 3 ? Math.max(1, panels.length) : 2, rows = Math.ceil(panels.length / cols);
  const pw = 380, ph = 260, rowH = ph + 100, W = 70 + cols * (pw + 80), H = 20 + rows * rowH;
  const parts = panels.map((p, i) => panel(p, 70 + (i % cols) * (pw + 80), 60 + Math.floor(i / cols) * rowH, pw, ph));
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="'DejaVu Sans', Helvetica, Arial, sans-serif">
<rect width="100%" height="100%" fill="white"/>
<text x="${W / 2}" y="24" text-anchor="middle" font-size="16" font-weight="bold">${esc(title)}</text>
${parts.join('\n')}
</svg>
`;
}

export interface PpoPlotOptions {
  /** the adaptive controller's KL target, drawn on the KL panel */
  klTarget?: number | null;
  /** more panels after score, KL and kl_coef */
  extra?: SeriesPanel[];
}

/**
 * Writes the PPO chart: score and KL per step, plus kl_coef when it changed during the run.
 * @example writePpoPlot(stats, 'runs/ppo/ppo.svg', 'PPO', { klTarget: 6 })
 */
export function writePpoPlot(stats: readonly { step: number; score: number; kl: number; kl_coef?: number }[], path: string, title = 'tunekit PPO', opts: PpoPlotOptions = {}): void {
  mkdirSync(dirname(path), { recursive: true });
  const panels: SeriesPanel[] = [
    { title: 'mean reward-model score', points: stats.map((s) => [s.step, s.score]), color: '#1f77b4' },
    {
      title: 'KL(policy || reference), summed over tokens', points: stats.map((s) => [s.step, s.kl]), color: '#d62728',
      ...(opts.klTarget != null ? { reference: { y: opts.klTarget, label: `target ${opts.klTarget}` } } : {}),
    },
  ];
  const coefs = stats.map((s) => s.kl_coef).filter((c): c is number => c !== undefined);
  if (coefs.length && Math.max(...coefs) > Math.min(...coefs)) panels.push({ title: 'kl_coef (adaptive)', points: stats.map((s) => [s.step, s.kl_coef!]), color: '#9467bd' });
  panels.push(...(opts.extra ?? []));
  writeFileSync(path, renderPanels(title, panels));
}
