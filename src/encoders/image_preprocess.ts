// Image preprocessing of the official RDT runner, on uint8 RGB (H, W, 3) images:
//   1. expand2square: a square of side max(H, W) filled with (127,127,127), the image pasted centred
//      (offset rounded down, so an odd extra row/column goes to the bottom/right);
//   2. SiglipImageProcessor: PIL Image.resize((S, S), BICUBIC) on the uint8 image, x * (1/255), then
//      (x - 0.5) / 0.5, CHW.
// Step 2's resize is PIL's separable resampling, written here from its documented algorithm (Pillow's
// Resample.c): for each output pixel a cubic kernel (a = -0.5) stretched by the downscale factor
// (antialias), its weights normalised to sum 1 and turned into 22-bit fixed point; horizontal pass
// first, rounded and clamped to uint8, then the vertical pass likewise. libtorch's bicubic differs from
// PIL near sharp edges (see docs/encoders.md), so it is not used.

const PRECISION_BITS = 22;

/** Pillow's bicubic kernel, a = -0.5. */
function bicubic(x: number): number {
  const a = -0.5;
  if (x < 0) x = -x;
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
}

interface Coeffs {
  ksize: number;
  /** Per output pixel: first input index and number of taps. */
  bounds: Int32Array;
  /** outSize * ksize fixed-point weights. */
  kk: Int32Array;
}

/** Pillow's precompute_coeffs + normalize_coeffs_8bpc for a full-image box. */
function coefficients(inSize: number, outSize: number): Coeffs {
  const support0 = 2; // bicubic
  const scale = inSize / outSize;
  const filterscale = Math.max(scale, 1);
  const support = support0 * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const kk = new Int32Array(outSize * ksize);
  const w = new Float64Array(ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const ss = 1 / filterscale;
    const xmin = Math.max(0, Math.trunc(center - support + 0.5));
    const xmax = Math.min(inSize, Math.trunc(center + support + 0.5)) - xmin;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      w[x] = bicubic((x + xmin - center + 0.5) * ss);
      ww += w[x];
    }
    for (let x = 0; x < xmax; x++) {
      const v = ww !== 0 ? w[x] / ww : w[x];
      kk[xx * ksize + x] = v < 0 ? Math.trunc(-0.5 + v * (1 << PRECISION_BITS)) : Math.trunc(0.5 + v * (1 << PRECISION_BITS));
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  return { ksize, bounds, kk };
}

function clip8(ss: number): number {
  const v = ss >> PRECISION_BITS;
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/**
 * PIL `Image.resize((outW, outH), Image.BICUBIC)` of an interleaved uint8 image (h, w, channels):
 * horizontal pass, then vertical, each rounding and clamping to uint8.
 */
export function resizeBicubicPil(src: Uint8Array, h: number, w: number, outH: number, outW: number, channels = 3): Uint8Array {
  const half = 1 << (PRECISION_BITS - 1);
  let tmp = src;
  if (outW !== w) {
    const { ksize, bounds, kk } = coefficients(w, outW);
    tmp = new Uint8Array(h * outW * channels);
    for (let y = 0; y < h; y++) {
      const row = y * w * channels;
      for (let xx = 0; xx < outW; xx++) {
        const xmin = bounds[xx * 2];
        const n = bounds[xx * 2 + 1];
        const k = xx * ksize;
        for (let c = 0; c < channels; c++) {
          let ss = half;
          for (let x = 0; x < n; x++) ss += src[row + (x + xmin) * channels + c] * kk[k + x];
          tmp[(y * outW + xx) * channels + c] = clip8(ss);
        }
      }
    }
  }
  if (outH === h) return tmp === src ? src.slice() : tmp;
  const { ksize, bounds, kk } = coefficients(h, outH);
  const out = new Uint8Array(outH * outW * channels);
  const stride = outW * channels;
  for (let yy = 0; yy < outH; yy++) {
    const ymin = bounds[yy * 2];
    const n = bounds[yy * 2 + 1];
    const k = yy * ksize;
    for (let i = 0; i < stride; i++) {
      let ss = half;
      for (let y = 0; y < n; y++) ss += tmp[(y + ymin) * stride + i] * kk[k + y];
      out[yy * stride + i] = clip8(ss);
    }
  }
  return out;
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
