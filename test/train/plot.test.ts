import { describe, expect, test } from 'vitest';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { niceTicks, renderLossPlot, writeLossPlot } from '../../lib/train/plot.js';
import type { MetricsRecord } from '../../lib/train/metrics_log.js';

function run(nTrain: number): MetricsRecord[] {
  const recs: MetricsRecord[] = [];
  for (let s = 1; s <= nTrain; s++) recs.push({ step: s, epoch: 0, split: 'train', loss: 2 * Math.exp(-s / 50) + 0.1 * Math.sin(s), time: s });
  for (let s = 20; s <= nTrain; s += 20) recs.push({ step: s, epoch: 0, split: 'eval', loss: 2 * Math.exp(-s / 60), accuracy: 1 - 0.5 * Math.exp(-s / 40), time: s });
  return recs;
}

describe('SVG loss plot', () => {
  test('nice ticks', () => {
    expect(niceTicks(0.13, 2.9, 6)).toEqual({ lo: 0, hi: 3, step: 0.5, ticks: [0, 0.5, 1, 1.5, 2, 2.5, 3] });
    expect(niceTicks(1, 600, 8).ticks).toEqual([0, 100, 200, 300, 400, 500, 600]);
    expect(niceTicks(5, 5).ticks.length).toBeGreaterThan(1);
  });

  test('series, axes, legend and title', () => {
    const svg = renderLossPlot(run(200), { title: 'LoRA <r=8> & friends' });
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.trim().endsWith('</svg>')).toBe(true);
    expect(svg).toContain('LoRA &lt;r=8&gt; &amp; friends');
    for (const label of ['train loss', 'eval loss', 'eval accuracy', '>step<', '>loss<']) expect(svg).toContain(label);
    expect(svg.match(/<path /g)).toHaveLength(4); // raw train, smoothed train, eval loss, eval accuracy
    expect(svg).toContain('stroke-dasharray'); // accuracy on the dashed second axis
    expect(svg).not.toMatch(/NaN|Infinity|undefined/);
  });

  test('few points: markers, no smoothing; no eval: no right axis; empty: placeholder', () => {
    const small = renderLossPlot(run(10).filter((r) => r.split === 'train'));
    expect(small.match(/<path /g)).toHaveLength(1);
    expect(small.match(/<circle /g)!.length).toBeGreaterThanOrEqual(10);
    expect(small).not.toContain('eval accuracy');
    expect(renderLossPlot([])).toContain('no metrics recorded yet');
    const nan = renderLossPlot([{ step: 1, epoch: 0, split: 'train', loss: Number.NaN, time: 0 }, { step: 2, epoch: 0, split: 'train', loss: 1, time: 0 }]);
    expect(nan).not.toMatch(/NaN/);
  });

  test('writeLossPlot writes the file', async () => {
    const p = join(mkdtempSync(join(tmpdir(), 'tunekit-plot-')), 'sub', 'loss.svg');
    const svg = await writeLossPlot(run(50), p);
    expect(readFileSync(p, 'utf8')).toBe(svg);
  });
});
