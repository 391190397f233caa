/**
 * preprocessor_config.json applied as transformers' image processors apply it (the PIL ones,
 * image_processing_pil_vit.py / image_processing_pil_convnext.py / BaseImageProcessor): resize
 * (PIL's resampling, reproduced in integer arithmetic so that the uint8 result is PIL's), center
 * crop, rescale (x * rescale_factor), normalize ((x - mean) / std), channels first.
 *
 * Resize rules by processor type:
 *   ViTImageProcessor (and any `size: {height, width}`): to exactly height x width.
 *   ConvNextImageProcessor (`size: {shortest_edge}`, crop_pct): below 384, the short side to
 *     int(shortest_edge / crop_pct) keeping the aspect, then a center crop of shortest_edge
 *     squared; from 384 on, straight to shortest_edge squared.
 *   other `size: {shortest_edge}`: the short side to shortest_edge keeping the aspect (then
 *     do_center_crop with crop_size, as CLIP's and the older ResNet processors).
 * An image smaller than the crop is refused (transformers would pad it with zeros).
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { TunekitError, describe } from '../errors.js';

/** A decoded image: 8-bit samples, rows top to bottom, channels interleaved (HWC). */
export interface RawImage {
  width: number;
  height: number;
  /** 1 (grayscale) or 3 (RGB) */
  channels: 1 | 3;
  data: Uint8Array;
}

export type Resample = 'nearest' | 'bilinear' | 'bicubic' | 'lanczos' | 'box' | 'hamming';
/** PIL's Resampling codes as preprocessor_config.json stores them. */
const PIL_RESAMPLE: Record<number, Resample> = { 0: 'nearest', 1: 'lanczos', 2: 'bilinear', 3: 'bicubic', 4: 'box', 5: 'hamming' };

export interface ImageProcessorConfig {
  type: string;
  doResize: boolean;
  /** exact output size, or the short side (with crop_pct for ConvNext) */
  size: { height: number; width: number } | { shortestEdge: number };
  resample: Resample;
  cropPct: number | null;
  doCenterCrop: boolean;
  cropSize: { height: number; width: number } | null;
  doRescale: boolean;
  rescaleFactor: number;
  doNormalize: boolean;
  imageMean: number[];
  imageStd: number[];
}

const MAX_SIDE = 1 << 15;

function sideOf(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > MAX_SIDE) throw new TunekitError('ERR_CONFIG', `preprocessor_config.json: expected ${what} to be an integer in [1, ${MAX_SIDE}] but received ${describe(v)}`);
  return v;
}

function sizeOf(v: unknown, what: string): ImageProcessorConfig['size'] {
  if (typeof v === 'number') return { height: sideOf(v, what), width: sideOf(v, what) };
  if (v && typeof v === 'object' && !Array.isArray(v)) {
    const o = v as Record<string, unknown>;
    if (o.height !== undefined || o.width !== undefined) return { height: sideOf(o.height, `${what}.height`), width: sideOf(o.width, `${what}.width`) };
    if (o.shortest_edge !== undefined) {
      if (o.longest_edge !== undefined && o.longest_edge !== null) throw new TunekitError('ERR_CONFIG', `preprocessor_config.json: ${what}.longest_edge is not supported (only shortest_edge, or height and width)`);
      return { shortestEdge: sideOf(o.shortest_edge, `${what}.shortest_edge`) };
    }
  }
  throw new TunekitError('ERR_CONFIG', `preprocessor_config.json: expected ${what} to be {"height", "width"} or {"shortest_edge"} but received ${describe(v)}`);
}

function boolOf(raw: Record<string, unknown>, name: string, fallback: boolean): boolean {
  const v = raw[name];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'boolean') throw new TunekitError('ERR_CONFIG', `preprocessor_config.json: expected ${name} to be true or false but received ${describe(v)}`);
  return v;
}

function vecOf(raw: Record<string, unknown>, name: string, fallback: number[], positive: boolean): number[] {
  const v = raw[name] ?? fallback;
  const list = typeof v === 'number' ? [v, v, v] : v;
  if (!Array.isArray(list) || list.length < 1 || !list.every((x) => typeof x === 'number' && Number.isFinite(x) && (!positive || x > 0))) {
    throw new TunekitError('ERR_CONFIG', `preprocessor_config.json: expected ${name} to be a list of ${positive ? 'positive ' : ''}numbers (one per channel) but received ${describe(v)}`);
  }
  return list as number[];
}

/**
 * Parses a preprocessor_config.json object (transformers' defaults for the fields it omits:
 * ViT's when the type is ViTImageProcessor or unknown).
 * @example parseImageProcessorConfig({ image_processor_type: 'ViTImageProcessor', size: { height: 28, width: 28 } })
 */
export function parseImageProcessorConfig(raw: Record<string, unknown>): ImageProcessorConfig {
  const type = typeof raw.image_processor_type === 'string' ? raw.image_processor_type.replace(/Fast$|Pil$/, '') : 'ViTImageProcessor';
  const convnext = type === 'ConvNextImageProcessor';
  const size = sizeOf(raw.size ?? (convnext ? { shortest_edge: 384 } : { height: 224, width: 224 }), 'size');
  const resampleCode = raw.resample ?? (convnext ? 3 : 2);
  const resample = PIL_RESAMPLE[resampleCode as number];
  if (!resample) throw new TunekitError('ERR_CONFIG', `preprocessor_config.json: expected resample to be a PIL resampling code 0-5 but received ${describe(resampleCode)}`);
  const cropPct = raw.crop_pct === undefined || raw.crop_pct === null ? (convnext ? 224 / 256 : null) : raw.crop_pct;
  if (cropPct !== null && (typeof cropPct !== 'number' || !(cropPct > 0 && cropPct <= 1))) throw new TunekitError('ERR_CONFIG', `preprocessor_config.json: expected crop_pct in (0, 1] but received ${describe(cropPct)}`);
  const doCenterCrop = boolOf(raw, 'do_center_crop', false);
  const rescaleFactor = raw.rescale_factor ?? 1 / 255;
  if (typeof rescaleFactor !== 'number' || !Number.isFinite(rescaleFactor)) throw new TunekitError('ERR_CONFIG', `preprocessor_config.json: expected rescale_factor to be a number but received ${describe(rescaleFactor)}`);
  const mean = vecOf(raw, 'image_mean', convnext ? [0.485, 0.456, 0.406] : [0.5, 0.5, 0.5], false);
  const std = vecOf(raw, 'image_std', convnext ? [0.229, 0.224, 0.225] : [0.5, 0.5, 0.5], true);
  if (mean.length !== std.length) throw new TunekitError('ERR_CONFIG', `preprocessor_config.json: image_mean has ${mean.length} values but image_std ${std.length}`);
  for (const f of ['do_pad', 'do_reduce_labels', 'do_flip_channel_order']) {
    if (raw[f] === true) throw new TunekitError('ERR_CONFIG', `preprocessor_config.json: ${f} true is not supported by tunekit's image preprocessing`);
  }
  return {
    type,
    doResize: boolOf(raw, 'do_resize', true),
    size,
    resample,
    cropPct: cropPct as number | null,
    doCenterCrop,
    cropSize: doCenterCrop ? (sizeOf(raw.crop_size ?? { height: 224, width: 224 }, 'crop_size') as { height: number; width: number }) : null,
    doRescale: boolOf(raw, 'do_rescale', true),
    rescaleFactor,
    doNormalize: boolOf(raw, 'do_normalize', true),
    imageMean: mean,
    imageStd: std,
  };
}

/**
 * The preprocessor of a model folder: its preprocessor_config.json, or null when it has none.
 * @example const proc = readImageProcessor('models/tunekit-resnet-digits');
 */
export function readImageProcessor(dir: string): ImageProcessorConfig | null {
  const path = join(dir, 'preprocessor_config.json');
  if (!existsSync(path)) return null;
  const st = statSync(path);
  if (!st.isFile() || st.size > 1 << 20) throw new TunekitError('ERR_CONFIG', `${path}: expected a regular file of at most 1 MiB`);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new TunekitError('ERR_FORMAT', `${path} is not valid JSON: ${(e as Error).message}`);
  }
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new TunekitError('ERR_CONFIG', `${path}: expected a JSON object`);
  return parseImageProcessorConfig(raw as Record<string, unknown>);
}

// ---------------------------------------------------------------- PIL's resampling

type Filter = { support: number; f: (x: number) => number };
const FILTERS: Record<Exclude<Resample, 'nearest'>, Filter> = {
  box: { support: 0.5, f: (x) => (x > -0.5 && x <= 0.5 ? 1 : 0) },
  bilinear: { support: 1, f: (x) => { x = Math.abs(x); return x < 1 ? 1 - x : 0; } },
  hamming: { support: 1, f: (x) => { x = Math.abs(x); if (x === 0) return 1; if (x >= 1) return 0; x *= Math.PI; return (Math.sin(x) / x) * (0.54 + 0.46 * Math.cos(x)); } },
  bicubic: { support: 2, f: (x) => {
    const a = -0.5;
    x = Math.abs(x);
    if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
    if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
    return 0;
  } },
  lanczos: { support: 3, f: (x) => {
    const sinc = (v: number) => (v === 0 ? 1 : Math.sin(Math.PI * v) / (Math.PI * v));
    return x > -3 && x < 3 ? sinc(x) * sinc(x / 3) : 0;
  } },
};

/** PIL's 8-bit fixed point: coefficients carry 22 fraction bits (Resample.c PRECISION_BITS). */
const PRECISION = 1 << 22;

/** Per output index: first input index and integer coefficients (PIL's precompute_coeffs + normalize_coeffs_8bpc). */
function coefficients(inSize: number, outSize: number, filter: Filter): { start: Int32Array; weights: Int32Array[] } {
  const scale = inSize / outSize;
  const filterscale = Math.max(scale, 1);
  const support = filter.support * filterscale;
  const start = new Int32Array(outSize);
  const weights: Int32Array[] = [];
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const ss = 1 / filterscale;
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xmax = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    const k = new Float64Array(Math.max(0, xmax));
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      const w = filter.f((x + xmin - center + 0.5) * ss);
      k[x] = w;
      ww += w;
    }
    const ik = new Int32Array(k.length);
    for (let x = 0; x < k.length; x++) {
      const v = ww !== 0 ? k[x]! / ww : k[x]!;
      ik[x] = Math.trunc(v < 0 ? -0.5 + v * PRECISION : 0.5 + v * PRECISION);
    }
    start[xx] = xmin;
    weights.push(ik);
  }
  return { start, weights };
}

const clip8 = (ss: number) => {
  const v = Math.floor(ss / PRECISION);
  return v < 0 ? 0 : v > 255 ? 255 : v;
};

/**
 * Resizes an 8-bit image as PIL's Image.resize does (horizontal pass, then vertical, each
 * rounded to 8 bits; 'nearest' picks floor((i + 0.5) * in / out)).
 * @example resizeImage(img, 16, 20, 'bilinear') // width 16, height 20
 */
export function resizeImage(img: RawImage, width: number, height: number, resample: Resample): RawImage {
  if (width === img.width && height === img.height) return img;
  const C = img.channels;
  if (resample === 'nearest') {
    const out = new Uint8Array(width * height * C);
    for (let y = 0; y < height; y++) {
      const sy = Math.min(img.height - 1, Math.floor(((y + 0.5) * img.height) / height));
      for (let x = 0; x < width; x++) {
        const sx = Math.min(img.width - 1, Math.floor(((x + 0.5) * img.width) / width));
        for (let c = 0; c < C; c++) out[(y * width + x) * C + c] = img.data[(sy * img.width + sx) * C + c]!;
      }
    }
    return { width, height, channels: C, data: out };
  }
  const filter = FILTERS[resample];
  let cur = img;
  if (width !== img.width) {
    const { start, weights } = coefficients(img.width, width, filter);
    const out = new Uint8Array(width * img.height * C);
    for (let y = 0; y < img.height; y++) {
      for (let x = 0; x < width; x++) {
        const k = weights[x]!, x0 = start[x]!;
        for (let c = 0; c < C; c++) {
          let ss = PRECISION / 2;
          for (let i = 0; i < k.length; i++) ss += cur.data[(y * img.width + x0 + i) * C + c]! * k[i]!;
          out[(y * width + x) * C + c] = clip8(ss);
        }
      }
    }
    cur = { width, height: img.height, channels: C, data: out };
  }
  if (height !== img.height) {
    const { start, weights } = coefficients(img.height, height, filter);
    const out = new Uint8Array(width * height * C);
    for (let y = 0; y < height; y++) {
      const k = weights[y]!, y0 = start[y]!;
      for (let x = 0; x < width; x++) {
        for (let c = 0; c < C; c++) {
          let ss = PRECISION / 2;
          for (let i = 0; i < k.length; i++) ss += cur.data[((y0 + i) * width + x) * C + c]! * k[i]!;
          out[(y * width + x) * C + c] = clip8(ss);
        }
      }
    }
    cur = { width, height, channels: C, data: out };
  }
  return cur;
}

/** transformers' get_resize_output_image_size(default_to_square=False): the short side to `size`, keeping the aspect. */
function shortSideSize(h: number, w: number, size: number): [number, number] {
  const [short, long] = w <= h ? [w, h] : [h, w];
  const newLong = Math.trunc((size * long) / short);
  return w <= h ? [newLong, size] : [size, newLong];
}

/** transformers' center_crop: top = (H - h) // 2, left = (W - w) // 2. */
function centerCrop(img: RawImage, height: number, width: number, where: string): RawImage {
  if (height > img.height || width > img.width) {
    throw new TunekitError('ERR_VALUE', `${where}: the image is ${img.width}x${img.height} after resizing, smaller than the ${width}x${height} crop (preprocessor_config.json crop_size)`);
  }
  if (height === img.height && width === img.width) return img;
  const top = Math.floor((img.height - height) / 2), left = Math.floor((img.width - width) / 2);
  const C = img.channels;
  const out = new Uint8Array(width * height * C);
  for (let y = 0; y < height; y++) out.set(img.data.subarray(((top + y) * img.width + left) * C, ((top + y) * img.width + left + width) * C), y * width * C);
  return { width, height, channels: C, data: out };
}

/**
 * Resize and crop as the processor says (8-bit), before rescale and normalize.
 * @example const small = resizeAndCrop(img, proc, 'a.png');
 */
export function resizeAndCrop(img: RawImage, p: ImageProcessorConfig, where: string): RawImage {
  let out = img;
  if (p.doResize) {
    if ('height' in p.size) {
      out = resizeImage(out, p.size.width, p.size.height, p.resample);
    } else if (p.type === 'ConvNextImageProcessor') {
      const se = p.size.shortestEdge;
      if (se < 384) {
        const [h, w] = shortSideSize(out.height, out.width, Math.trunc(se / (p.cropPct ?? 224 / 256)));
        out = centerCrop(resizeImage(out, w, h, p.resample), se, se, where);
      } else {
        out = resizeImage(out, se, se, p.resample);
      }
    } else {
      const [h, w] = shortSideSize(out.height, out.width, p.size.shortestEdge);
      out = resizeImage(out, w, h, p.resample);
    }
  }
  if (p.doCenterCrop && p.cropSize) out = centerCrop(out, p.cropSize.height, p.cropSize.width, where);
  return out;
}

/**
 * Pixel values [C, H, W] (f32) of an image: resize and crop, then x * rescale_factor and
 * (x - mean) / std in f32 as transformers computes them (rescale in float64 then cast; normalize in f32).
 * @example const pixels = preprocessImage(img, proc, 'a.png'); // Float32Array of C * H * W
 */
export function preprocessImage(img: RawImage, p: ImageProcessorConfig, where: string): { pixels: Float32Array; shape: [number, number, number] } {
  const r = resizeAndCrop(img, p, where);
  const C = r.channels, H = r.height, W = r.width;
  if (p.doNormalize && p.imageMean.length !== C && p.imageMean.length !== 1) {
    throw new TunekitError('ERR_CONFIG', `preprocessor_config.json: image_mean has ${p.imageMean.length} values for ${C}-channel images`);
  }
  const out = new Float32Array(C * H * W);
  const f = Math.fround;
  for (let c = 0; c < C; c++) {
    const mean = f(p.imageMean[p.imageMean.length === 1 ? 0 : c]!), std = f(p.imageStd[p.imageStd.length === 1 ? 0 : c]!);
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        let v = r.data[(y * W + x) * C + c]!;
        if (p.doRescale) v = f(v * p.rescaleFactor);
        if (p.doNormalize) v = f(f(v - mean) / std);
        out[(c * H + y) * W + x] = v;
      }
    }
  }
  return { pixels: out, shape: [C, H, W] };
}
