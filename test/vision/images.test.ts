/**
 * Image data: decoding against PIL, preprocessor_config.json against transformers' PIL image
 * processors (ViT: exact resize to 20x16 bilinear; ConvNext: short side / crop_pct bicubic then
 * center crop), the built-in digits, ImageFolder and JSONL/CSV lists, seeded augmentation, and
 * every bad input of the issue: not an image, a truncated JPEG, grayscale for an RGB model
 * (converted and counted), an image smaller than the crop, a class folder with no images.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, copyFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TunekitError } from '../../lib/index.js';
import { readImage, toChannels, loadImageFolder, loadImageList, loadBuiltinDigits, collateImages, blackPixel, MAX_IMAGE_PIXELS } from '../../lib/data/images.js';
import { parseImageProcessorConfig, preprocessImage, type ImageProcessorConfig } from '../../lib/data/image_processor.js';
import { fixturePath, readJson } from './helpers.js';

const pre = readJson('images', 'preprocess.json');
const FILES = ['rgb.png', 'gray.png', 'rgba.png', 'photo.jpg'];
const img = (f: string) => fixturePath('images', f);

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    return e instanceof TunekitError ? `${e.code}: ${e.message}` : `not a TunekitError: ${String(e)}`;
  }
  return 'no error';
}

describe('decoding and preprocessing match PIL and transformers', () => {
  it('PNG (RGB, gray, RGBA) and JPEG decode to the bytes PIL gives (convert("RGB"))', async () => {
    for (const f of FILES) {
      const { image } = toChannels(await readImage(img(f)), 3);
      const want: number[] = pre.decoded[f];
      let worst = 0;
      for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(image.data[i]! - want[i]!));
      expect(image.data.length, f).toBe(want.length);
      // PNG is lossless; libvips and PIL both decode JPEG with libjpeg(-turbo)'s default IDCT
      expect(worst, f).toBeLessThanOrEqual(f.endsWith('.jpg') ? 2 : 0);
    }
  });

  for (const proc of ['vit_preprocessor.json', 'convnext_preprocessor.json']) {
    it(`${proc}: pixel values equal transformers' PIL image processor`, async () => {
      const cfg = parseImageProcessorConfig(JSON.parse(readFileSync(img(proc), 'utf8')));
      for (const f of FILES) {
        const { image } = toChannels(await readImage(img(f)), 3);
        // the decoded bytes are PIL's (checked above) so that only preprocessing is compared here
        const src = f.endsWith('.jpg') ? { ...image, data: Uint8Array.from(pre.decoded[f] as number[]) } : image;
        const { pixels, shape } = preprocessImage(src, cfg, f);
        const want = pre[proc][f];
        expect(shape, f).toEqual(want.shape);
        let worst = 0;
        for (let i = 0; i < want.values.length; i++) worst = Math.max(worst, Math.abs(pixels[i]! - want.values[i]!));
        // the same uint8 resize as PIL (integer arithmetic), then f32 rescale/normalize
        expect(worst, `${f}: max |ours - transformers|`).toBeLessThan(1e-5);
      }
    });
  }
});

describe('datasets and bad input', () => {
  let root: string;
  const proc: ImageProcessorConfig = parseImageProcessorConfig({ image_processor_type: 'ViTImageProcessor', size: { height: 20, width: 16 } });
  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'tk-images-'));
    for (const c of ['cat', 'dog']) mkdirSync(join(root, 'folder', c), { recursive: true });
    copyFileSync(img('rgb.png'), join(root, 'folder', 'cat', 'a.png'));
    copyFileSync(img('photo.jpg'), join(root, 'folder', 'cat', 'b.jpg'));
    copyFileSync(img('gray.png'), join(root, 'folder', 'dog', 'c.png'));
    writeFileSync(join(root, 'folder', 'dog', 'notes.txt'), 'not an image, and not an image extension: ignored');
    mkdirSync(join(root, 'empty_class', 'a'), { recursive: true });
    mkdirSync(join(root, 'empty_class', 'b'), { recursive: true });
    copyFileSync(img('rgb.png'), join(root, 'empty_class', 'a', 'x.png'));
    writeFileSync(join(root, 'fake.png'), 'this is text, not a PNG');
    const jpg = readFileSync(img('photo.jpg'));
    writeFileSync(join(root, 'truncated.jpg'), jpg.subarray(0, Math.floor(jpg.length / 2)));
    writeFileSync(join(root, 'list.jsonl'), [`{"image": "${img('rgb.png')}", "label": "cat"}`, '{"image": "fake.png", "label": "dog"}', `{"image": "${img('gray.png')}", "label": "dog"}`].join('\n'));
    writeFileSync(join(root, 'list.csv'), `image,label\n${img('rgba.png')},1\n${img('photo.jpg')},0\n`);
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('ImageFolder: sorted classes, non-image extensions ignored, grayscale converted to RGB and counted', async () => {
    const { examples, labelMap, report } = await loadImageFolder(join(root, 'folder'), { processor: proc, channels: 3 });
    expect(labelMap.names).toEqual(['cat', 'dog']);
    expect(examples.map((e) => e.label)).toEqual([0, 0, 1]);
    expect(examples[0]!.shape).toEqual([3, 20, 16]);
    expect(report.converted).toBe(1);
  });

  it('a class folder with no images: ERR_FORMAT, or left out with a warning under skip', async () => {
    expect(await codeOf(loadImageFolder(join(root, 'empty_class'), { processor: proc, channels: 3 }))).toMatch(/^ERR_FORMAT: .*class folder 'b' has no images/);
    const r = await loadImageFolder(join(root, 'empty_class'), { processor: proc, channels: 3, onError: 'skip' });
    expect(r.labelMap.names).toEqual(['a']);
    expect(r.report.warnings[0]).toMatch(/class folder 'b' has no images .*: class left out/);
  });

  it('a file that is not an image and a truncated JPEG: ERR_FORMAT naming the file, or counted skips', async () => {
    expect(await codeOf(readImage(join(root, 'fake.png')))).toMatch(/^ERR_FORMAT: .*fake\.png: not a readable image/);
    expect(await codeOf(readImage(join(root, 'truncated.jpg')))).toMatch(/^ERR_FORMAT: .*truncated\.jpg: not a readable image/);
    expect(await codeOf(loadImageList(join(root, 'list.jsonl'), { processor: proc, channels: 3 }))).toMatch(/^ERR_FORMAT: .*fake\.png/);
    const r = await loadImageList(join(root, 'list.jsonl'), { processor: proc, channels: 3, onError: 'skip' });
    expect(r.examples.length).toBe(2);
    expect(r.report.skipped).toBe(1);
    expect(r.report.skipReasons[0]).toMatch(/fake\.png/);
    expect(r.report.converted).toBe(1);
  });

  it('CSV of image paths with integer labels', async () => {
    const r = await loadImageList(join(root, 'list.csv'), { processor: proc, channels: 3 });
    expect(r.examples.map((e) => e.label)).toEqual([1, 0]);
  });

  it('an image smaller than the crop: ERR_VALUE naming it, or a counted skip', async () => {
    const crop = parseImageProcessorConfig({ do_resize: false, do_center_crop: true, crop_size: { height: 32, width: 32 } });
    expect(await codeOf(loadImageList(join(root, 'list.csv'), { processor: crop, channels: 3 }))).toMatch(/^ERR_VALUE: .*rgba\.png: the image is 33x26 after resizing, smaller than the 32x32 crop/);
    const r = await loadImageList(join(root, 'list.csv'), { processor: crop, channels: 3, onError: 'skip' });
    expect(r.report.skipped).toBe(1);
    expect(r.examples.length).toBe(1);
  });

  it('limits: pixel bound is large but finite', () => {
    expect(MAX_IMAGE_PIXELS).toBe(2 ** 26);
  });
});

describe('built-in digits and augmentation', () => {
  const proc = parseImageProcessorConfig({ image_processor_type: 'ViTImageProcessor', do_resize: false, image_mean: [0.1307], image_std: [0.3081] });
  it('mnist-5-9: real digits, fixed 80/20 split, names 5..9', () => {
    const d = loadBuiltinDigits('builtin:mnist-5-9', { processor: proc, channels: 1 });
    expect(d.labelMap.names).toEqual(['5', '6', '7', '8', '9']);
    expect(d.train.length).toBeGreaterThan(3500);
    expect(d.eval.length).toBeGreaterThan(900);
    expect(d.train[0]!.shape).toEqual([1, 28, 28]);
    // a digit has ink: some pixels well above the mean
    expect(Math.max(...d.train[0]!.pixels)).toBeGreaterThan(2);
  });
  it('seeded augmentation: same seed and stream, same batch; another stream, another batch; no augmentation is identity', () => {
    const d = loadBuiltinDigits('builtin:mnist-0-4', { processor: proc, channels: 1 });
    const ex = d.train.slice(0, 8);
    const fill = blackPixel(proc, 1);
    const a = collateImages(ex, { augment: { randomCrop: 2 }, fill, seed: 1, stream: 3 });
    const b = collateImages(ex, { augment: { randomCrop: 2 }, fill, seed: 1, stream: 3 });
    const c = collateImages(ex, { augment: { randomCrop: 2 }, fill, seed: 1, stream: 4 });
    expect(Array.from(a.pixels)).toEqual(Array.from(b.pixels));
    expect(Array.from(a.pixels)).not.toEqual(Array.from(c.pixels));
    const plain = collateImages(ex);
    expect(Array.from(plain.pixels.subarray(0, 784))).toEqual(Array.from(ex[0]!.pixels));
    expect(a.shape).toEqual([8, 1, 28, 28]);
  });
});
