// Training-time image augmentation (`image_aug`, rdt-spec.md 5.4), on uint8 HWC frames before encoding.
// As the official recipe: each valid image is augmented with probability 0.5, by colour jitter,
// corruption, or both (chosen uniformly). Colour jitter: brightness 0.3, contrast 0.4, saturation 0.5,
// hue 0.03, in random order (torchvision ColorJitter). Corruption: additive Gaussian noise with scale up
// to 0.05*255 (per channel half of the time), then, half of the time, a box blur of kernel 2-7.
// Divergence: imgaug's Laplace/Poisson noise, median and motion blurs are not reproduced; Gaussian noise
// and box blur stand in for them.
// Randomness comes from the caller's uniform source (the data layer's Rng, seeded per sample from the
// sample's keyed generator, sample_rng.ts), so a resumed run augments exactly as an uninterrupted one.

function gaussian(rand: () => number): number {
  const u = Math.max(rand(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand());
}

const clamp255 = (x: number) => (x < 0 ? 0 : x > 255 ? 255 : x);
const uni = (rand: () => number, lo: number, hi: number) => lo + (hi - lo) * rand();

function colourJitter(px: Float32Array, rand: () => number): void {
  const n = px.length / 3;
  const ops = [0, 1, 2, 3].sort(() => rand() - 0.5);
  for (const op of ops) {
    if (op === 0) {
      const f = uni(rand, 0.7, 1.3);
      for (let i = 0; i < px.length; i++) px[i] = clamp255(px[i] * f);
    } else if (op === 1) {
      const f = uni(rand, 0.6, 1.4);
      let mean = 0;
      for (let i = 0; i < n; i++) mean += 0.299 * px[3 * i] + 0.587 * px[3 * i + 1] + 0.114 * px[3 * i + 2];
      mean /= n;
      for (let i = 0; i < px.length; i++) px[i] = clamp255((px[i] - mean) * f + mean);
    } else if (op === 2) {
      const f = uni(rand, 0.5, 1.5);
      for (let i = 0; i < n; i++) {
        const g = 0.299 * px[3 * i] + 0.587 * px[3 * i + 1] + 0.114 * px[3 * i + 2];
        for (let c = 0; c < 3; c++) px[3 * i + c] = clamp255((px[3 * i + c] - g) * f + g);
      }
    } else {
      // Hue: rotate the colour around the grey axis by up to 0.03 of a turn (YIQ rotation).
      const th = uni(rand, -0.03, 0.03) * 2 * Math.PI;
      const cos = Math.cos(th), sin = Math.sin(th);
      for (let i = 0; i < n; i++) {
        const r = px[3 * i], g = px[3 * i + 1], b = px[3 * i + 2];
        const y = 0.299 * r + 0.587 * g + 0.114 * b;
        const ii = 0.596 * r - 0.274 * g - 0.322 * b;
        const q = 0.211 * r - 0.523 * g + 0.312 * b;
        const i2 = ii * cos - q * sin, q2 = ii * sin + q * cos;
        px[3 * i] = clamp255(y + 0.956 * i2 + 0.621 * q2);
        px[3 * i + 1] = clamp255(y - 0.272 * i2 - 0.647 * q2);
        px[3 * i + 2] = clamp255(y - 1.106 * i2 + 1.703 * q2);
      }
    }
  }
}

function corrupt(px: Float32Array, h: number, w: number, rand: () => number): void {
  const scale = uni(rand, 0, 0.05 * 255);
  const perChannel = rand() < 0.5;
  for (let i = 0; i < h * w; i++) {
    const shared = perChannel ? 0 : gaussian(rand) * scale;
    for (let c = 0; c < 3; c++) px[3 * i + c] = clamp255(px[3 * i + c] + (perChannel ? gaussian(rand) * scale : shared));
  }
  if (rand() < 0.5) {
    const k = 2 + Math.floor(rand() * 6); // 2..7
    const src = Float32Array.from(px);
    const r0 = Math.floor((k - 1) / 2);
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++)
        for (let c = 0; c < 3; c++) {
          let s = 0, m = 0;
          for (let dy = -r0; dy < k - r0; dy++) {
            const yy = Math.min(h - 1, Math.max(0, y + dy));
            for (let dx = -r0; dx < k - r0; dx++) {
              const xx = Math.min(w - 1, Math.max(0, x + dx));
              s += src[(yy * w + xx) * 3 + c];
              m++;
            }
          }
          px[(y * w + x) * 3 + c] = s / m;
        }
  }
}

/**
 * Augment in place the frames of `images` (B, history, cams, H, W, 3) whose `imageMask` entry is 1
 * (background frames stay untouched), drawing from `rand`.
 */
export function augmentImages(images: Uint8Array, imageMask: Uint8Array, count: number, h: number, w: number, rand: () => number): number {
  const frame = h * w * 3;
  const px = new Float32Array(frame);
  let done = 0;
  for (let f = 0; f < count; f++) {
    if (!imageMask[f] || rand() >= 0.5) continue;
    const off = f * frame;
    for (let i = 0; i < frame; i++) px[i] = images[off + i];
    const mode = Math.floor(rand() * 3); // 0 corrupt, 1 colour, 2 both
    if (mode !== 0) colourJitter(px, rand);
    if (mode !== 1) corrupt(px, h, w, rand);
    for (let i = 0; i < frame; i++) images[off + i] = Math.round(px[i]);
    done++;
  }
  return done;
}
