#!/usr/bin/env node
/**
 * Two runs' training-loss curves side by side (e.g. the main job before and after a change to
 * the kernels, same seed): reads each run folder's metrics.jsonl and writes an SVG with one panel
 * per run, the loss averaged over a window of steps (default 10), and prints the final eval of
 * each from results.json.
 *
 *   node scripts/compare-loss-curves.mjs <runA> <labelA> <runB> <labelB> <out.svg> [window]
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writePanelsPlot } from '../dist/train/plot.js';

const [runA, labelA, runB, labelB, out, win = '10'] = process.argv.slice(2);
if (!out) {
  console.error('usage: compare-loss-curves.mjs <runA> <labelA> <runB> <labelB> <out.svg> [window]');
  process.exit(2);
}
const w = Number(win);
function curve(run) {
  const train = readFileSync(join(run, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((r) => r.split === 'train');
  const pts = [];
  for (let i = 0; i < train.length; i++) {
    const from = Math.max(0, i - w + 1);
    const avg = train.slice(from, i + 1).reduce((a, r) => a + r.loss, 0) / (i + 1 - from);
    pts.push([train[i].step, avg]);
  }
  const res = JSON.parse(readFileSync(join(run, 'results.json'), 'utf8'));
  return { pts, res };
}
const a = curve(runA), b = curve(runB);
const desc = (r) => `accuracy ${(r.eval.accuracy * 100).toFixed(2)}%, eval loss ${r.eval.loss.toFixed(4)}`;
writePanelsPlot(`training loss (mean of ${w} steps), same seed`, [
  { title: `${labelA}: ${desc(a.res)}`, points: a.pts, color: '#7f7f7f' },
  { title: `${labelB}: ${desc(b.res)}`, points: b.pts, color: '#1f77b4' },
], out);
for (const [l, c] of [[labelA, a], [labelB, b]]) console.log(`${l}: ${desc(c.res)}, final mean loss ${c.pts.at(-1)[1].toFixed(4)}, train ${c.res.train_seconds.toFixed(1)} s`);
