/**
 * The PPO chart (a panel chart of lib/train/plot.ts, the one plotter): score and KL panels, the
 * KL target as a dashed line, a kl_coef panel only when the coefficient changed, extra panels,
 * and the grid layout past three panels.
 */
import { describe, it, expect } from 'vitest';
import { mkdtempSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { writePpoPlot } from '../../lib/rlhf/ppo.js';
import { renderPanels } from '../../lib/train/plot.js';

const stats = (coefs: number[]) => coefs.map((c, i) => ({ step: i + 1, score: 0.1 * i, kl: 2 + i, kl_coef: c }));

describe('writePpoPlot', () => {
  it('draws the KL target and the changing kl_coef, plus extra panels', () => {
    const path = join(mkdtempSync(join(tmpdir(), 'tunekit-ppo-plot-')), 'ppo.svg');
    writePpoPlot(stats([0.05, 0.049, 0.0495]), path, 'PPO & <test>', { klTarget: 4, extra: [{ title: 'AFINN of the rollouts', points: [[1, 0.2], [2, 0.4], [3, 0.9]], color: '#2ca02c' }] });
    const svg = readFileSync(path, 'utf8');
    expect(svg).toContain('PPO &amp; &lt;test&gt;');
    expect(svg).toContain('stroke-dasharray');
    expect(svg).toContain('target 4');
    expect(svg).toContain('kl_coef (adaptive)');
    expect(svg).toContain('AFINN of the rollouts');
    expect(svg.match(/<polyline/g)).toHaveLength(4);
    expect(svg).toMatch(/width="990" height="740"/); // 2 x 2 grid
  });
  it('leaves out the target and the kl_coef panel for a fixed coefficient', () => {
    const path = join(mkdtempSync(join(tmpdir(), 'tunekit-ppo-plot-')), 'ppo.svg');
    writePpoPlot(stats([0.05, 0.05, 0.05]), path);
    const svg = readFileSync(path, 'utf8');
    expect(svg).not.toContain('stroke-dasharray');
    expect(svg).not.toContain('kl_coef');
    expect(svg.match(/<polyline/g)).toHaveLength(2);
  });
  it('keeps the reference line inside the y range even when every point is below it', () => {
    const svg = renderPanels('t', [{ title: 'kl', points: [[1, 0.1], [2, 0.2]], color: '#000', reference: { y: 10, label: 'target 10' } }]);
    const y = Number(/<line x1="70" x2="450" y1="([\d.]+)"[^>]*stroke-dasharray/.exec(svg)![1]);
    expect(y).toBeGreaterThanOrEqual(60);
    expect(y).toBeLessThanOrEqual(320);
  });
});
