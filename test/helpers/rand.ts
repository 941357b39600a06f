// Deterministic pseudo-random test data (mulberry32), identical on every platform, so the same
// numbers can be handed to PyTorch as JSON.
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** n floats uniform in [lo, hi), rounded to float32. */
export function uniformData(n: number, seed: number, lo = -1, hi = 1): number[] {
  const r = rng(seed);
  return Array.from(Float32Array.from({ length: n }, () => lo + (hi - lo) * r()));
}

/** n integers in [0, high). */
export function intData(n: number, seed: number, high: number): number[] {
  const r = rng(seed);
  return Array.from({ length: n }, () => Math.floor(r() * high));
}
