// PIL's Image.resize on interleaved uint8 images, written from Pillow's documented separable algorithm
// (Resample.c): for each output pixel the filter kernel is stretched by the downscale factor (antialias), its
// weights normalised to sum 1 and turned into 22-bit fixed point; the horizontal pass runs first, rounded and
// clamped to uint8, then the vertical pass likewise. Two filters are needed: BICUBIC (a = -0.5) for SigLIP's
// image processor (src/encoders/image_preprocess.ts) and BILINEAR for openpi's resize_with_pad
// (src/openpi/formats.ts).

const PRECISION_BITS = 22;

export type PilFilter = 'bicubic' | 'bilinear';

/** Each filter's kernel and support (in input pixels at scale 1). */
const FILTERS: Record<PilFilter, { support: number; kernel: (x: number) => number }> = {
  bicubic: {
    support: 2,
    kernel: (x) => {
      const a = -0.5;
      if (x < 0) x = -x;
      if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
      if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
      return 0;
    },
  },
  bilinear: { support: 1, kernel: (x) => (x < 0 ? (x > -1 ? 1 + x : 0) : x < 1 ? 1 - x : 0) },
};

interface Coeffs {
  ksize: number;
  /** Per output pixel: first input index and number of taps. */
  bounds: Int32Array;
  /** outSize * ksize fixed-point weights. */
  kk: Int32Array;
}

/** Pillow's precompute_coeffs + normalize_coeffs_8bpc for a full-image box. */
function coefficients(inSize: number, outSize: number, filter: PilFilter): Coeffs {
  const { support: support0, kernel } = FILTERS[filter];
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
      w[x] = kernel((x + xmin - center + 0.5) * ss);
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
 * PIL `Image.resize((outW, outH), filter)` of an interleaved uint8 image (h, w, channels): horizontal pass,
 * then vertical, each rounding and clamping to uint8.
 */
export function resizePil(src: Uint8Array, h: number, w: number, outH: number, outW: number, filter: PilFilter, channels = 3): Uint8Array {
  const half = 1 << (PRECISION_BITS - 1);
  let tmp = src;
  if (outW !== w) {
    const { ksize, bounds, kk } = coefficients(w, outW, filter);
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
  const { ksize, bounds, kk } = coefficients(h, outH, filter);
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
