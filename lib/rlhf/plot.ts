/**
 * A PPO chart as a self-contained SVG: mean reward-model score (left panel) and KL to the
 * reference (right panel) per PPO step, with axis ticks. Written directly, no plotting library.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { niceTicks } from '../train/plot.js';

export interface SeriesPanel {
  title: string;
  points: [number, number][];
  color: string;
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function panel(p: SeriesPanel, x0: number, y0: number, w: number, h: number): string {
  const xs = p.points.map((q) => q[0]), ys = p.points.map((q) => q[1]);
  const tx = niceTicks(Math.min(...xs, 0), Math.max(...xs, 1), 5), ty = niceTicks(Math.min(...ys), Math.max(...ys), 5);
  const X = (x: number) => x0 + ((x - tx.lo) / (tx.hi - tx.lo || 1)) * w;
  const Y = (y: number) => y0 + h - ((y - ty.lo) / (ty.hi - ty.lo || 1)) * h;
  const out: string[] = [`<text x="${x0 + w / 2}" y="${y0 - 10}" text-anchor="middle" font-size="14">${esc(p.title)}</text>`];
  for (const t of ty.ticks) out.push(`<line x1="${x0}" x2="${x0 + w}" y1="${Y(t)}" y2="${Y(t)}" stroke="#e6e6e6"/><text x="${x0 - 6}" y="${Y(t) + 4}" text-anchor="end" font-size="11">${+t.toPrecision(4)}</text>`);
  for (const t of tx.ticks) out.push(`<text x="${X(t)}" y="${y0 + h + 16}" text-anchor="middle" font-size="11">${+t.toPrecision(4)}</text>`);
  out.push(`<rect x="${x0}" y="${y0}" width="${w}" height="${h}" fill="none" stroke="#444"/>`);
  out.push(`<text x="${x0 + w / 2}" y="${y0 + h + 34}" text-anchor="middle" font-size="12">PPO step</text>`);
  if (p.points.length) {
    out.push(`<polyline fill="none" stroke="${p.color}" stroke-width="2" points="${p.points.map(([x, y]) => `${X(x).toFixed(1)},${Y(y).toFixed(1)}`).join(' ')}"/>`);
    for (const [x, y] of p.points) out.push(`<circle cx="${X(x).toFixed(1)}" cy="${Y(y).toFixed(1)}" r="2.5" fill="${p.color}"/>`);
  }
  return out.join('\n');
}

/**
 * Renders side-by-side panels (e.g. score and KL per step) to an SVG string.
 * @example renderPanels('PPO', [{ title: 'mean score', points: [[1, 0.2], [2, 0.5]], color: '#1f77b4' }])
 */
export function renderPanels(title: string, panels: SeriesPanel[]): string {
  const pw = 380, ph = 260, W = 70 + panels.length * (pw + 80), H = ph + 120;
  const parts = panels.map((p, i) => panel(p, 70 + i * (pw + 80), 60, pw, ph));
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="'DejaVu Sans', Helvetica, Arial, sans-serif">
<rect width="100%" height="100%" fill="white"/>
<text x="${W / 2}" y="24" text-anchor="middle" font-size="16" font-weight="bold">${esc(title)}</text>
${parts.join('\n')}
</svg>
`;
}

/** Writes the PPO chart (score and KL per step). @example writePpoPlot(stats, 'runs/ppo/ppo.svg') */
export function writePpoPlot(stats: readonly { step: number; score: number; kl: number }[], path: string, title = 'tunekit PPO'): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, renderPanels(title, [
    { title: 'mean reward-model score', points: stats.map((s) => [s.step, s.score]), color: '#1f77b4' },
    { title: 'KL(policy || reference), summed over tokens', points: stats.map((s) => [s.step, s.kl]), color: '#d62728' },
  ]));
}
