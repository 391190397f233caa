/**
 * quantizeModel (the event loop runs between layers) and quantizeModelSync replace the same
 * layers with the same NF4 codes and report the same bytes.
 */
import { describe, it, expect } from 'vitest';
import '../../lib/index.js';
import { loadPretrainedSync } from '../../lib/models/index.js';
import { quantizeModel, quantizeModelSync } from '../../lib/quant/quantize.js';
import { NF4Linear } from '../../lib/quant/nf4_linear.js';
import { dir } from '../models/helpers.js';

/** Every NF4 layer's packed codes and absmax state, by path. */
function codes(model: ReturnType<typeof loadPretrainedSync>['model']): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (const [path, m] of model.namedModules()) if (m instanceof NF4Linear) out[path] = Array.from(m.qweight.packed.toTypedArray() as Uint8Array);
  return out;
}

describe('quantizeModel', () => {
  it('gives quantizeModelSync\'s layers, codes and report, and lets the event loop run between layers', async () => {
    const a = loadPretrainedSync(dir('gpt2_lm')).model, b = loadPretrainedSync(dir('gpt2_lm')).model;
    let ticks = 0;
    const probe = setInterval(() => { ticks++; }, 0);
    const pending = quantizeModel(a, { blocksize: 64 });
    const ticksBefore = ticks;
    const report = await pending;
    clearInterval(probe);
    const sync = quantizeModelSync(b, { blocksize: 64 });
    expect(report).toEqual(sync);
    expect(report.quantized.length).toBeGreaterThan(2);
    expect(codes(a)).toEqual(codes(b));
    // one setImmediate per layer: timers fire while the layers are quantized, not only after
    expect(ticksBefore).toBe(0);
    expect(ticks, 'interval callbacks run during quantizeModel').toBeGreaterThan(0);
  });

  it('refuses a model with nothing to quantize with the same error, as a rejection', async () => {
    const m = loadPretrainedSync(dir('gpt2_lm')).model;
    const skip = m.namedModules().map(([p]) => p).filter(Boolean);
    await expect(quantizeModel(m, { skip })).rejects.toThrow(/no linear layer to quantize/);
    expect(() => quantizeModelSync(m, { skip })).toThrow(/no linear layer to quantize/);
  });
});
