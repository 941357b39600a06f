// Image preprocessing of the official RDT runner, on uint8 RGB (H, W, 3) images:
//   1. expand2square: a square of side max(H, W) filled with (127,127,127), the image pasted centred
//      (offset rounded down, so an odd extra row/column goes to the bottom/right);
//   2. SiglipImageProcessor: PIL Image.resize((S, S), BICUBIC) on the uint8 image, x * (1/255), then
//      (x - 0.5) / 0.5, CHW.
// Step 2's resize is PIL's separable resampling (src/util/pil_resize.ts). libtorch's bicubic differs from PIL
// near sharp edges (see docs/encoders.md), so it is not used.
import { resizePil } from '../util/pil_resize.js';

/** PIL `Image.resize((outW, outH), Image.BICUBIC)` of an interleaved uint8 image (h, w, channels). */
export function resizeBicubicPil(src: Uint8Array, h: number, w: number, outH: number, outW: number, channels = 3): Uint8Array {
  return resizePil(src, h, w, outH, outW, 'bicubic', channels);
}

/** RDT's expand2square: (side, side, 3) with the image pasted centred on (fill, fill, fill). */
export function expandToSquare(src: Uint8Array, h: number, w: number, fill = 127): { data: Uint8Array; side: number; x: number; y: number } {
  if (h === w) return { data: src, side: h, x: 0, y: 0 };
  const side = Math.max(h, w);
  const x = w < h ? Math.floor((h - w) / 2) : 0;
  const y = h < w ? Math.floor((w - h) / 2) : 0;
  const data = new Uint8Array(side * side * 3).fill(fill);
  for (let r = 0; r < h; r++) data.set(src.subarray(r * w * 3, (r + 1) * w * 3), ((r + y) * side + x) * 3);
  return { data, side, x, y };
}

/**
 * SiglipImageProcessor's value of each uint8 level: float32(v * (1/255)) (the product in float64, as
 * numpy rescales), then (x - 0.5) / 0.5 in float32.
 */
export const PIXEL_LUT: Float32Array = (() => {
  const lut = new Float32Array(256);
  for (let v = 0; v < 256; v++) lut[v] = Math.fround(Math.fround(Math.fround(v * (1 / 255)) - 0.5) / 0.5);
  return lut;
})();

/**
 * The whole pipeline for n images packed as (n, h, w, 3) uint8: pixel values (n, 3, size, size) float32.
 */
export function preprocessImages(images: Uint8Array, n: number, h: number, w: number, size: number): Float32Array {
  const out = new Float32Array(n * 3 * size * size);
  const plane = size * size;
  for (let i = 0; i < n; i++) {
    const img = images.subarray(i * h * w * 3, (i + 1) * h * w * 3);
    const sq = expandToSquare(img, h, w);
    const r = resizeBicubicPil(sq.data, sq.side, sq.side, size, size);
    const base = i * 3 * plane;
    for (let p = 0; p < plane; p++)
      for (let c = 0; c < 3; c++) out[base + c * plane + p] = PIXEL_LUT[r[p * 3 + c]];
  }
  return out;
}
