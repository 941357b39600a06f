// Small deterministic PRNG (splitmix32-style mixing) for shuffles, mixing and the synthetic generator.

/** 32-bit hash of a list of integers (order-sensitive). */
export function hash32(...xs: number[]): number {
  let h = 0x9e3779b9 | 0;
  for (const x of xs) {
    h = Math.imul(h ^ (x | 0), 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
    h = (h + 0x9e3779b9) | 0;
  }
  return h >>> 0;
}

export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  /** Uniform in [0, 1). */
  next(): number {
    let z = (this.s = (this.s + 0x9e3779b9) | 0);
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    z ^= z >>> 16;
    return (z >>> 0) / 4294967296;
  }
  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  uniform(a: number, b: number): number {
    return a + (b - a) * this.next();
  }
}

/** Fisher-Yates shuffle of 0..n-1 in a Uint32Array. */
export function permutation(n: number, seed: number): Uint32Array {
  const p = new Uint32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  const r = new Rng(seed);
  for (let i = n - 1; i > 0; i--) {
    const j = r.int(i + 1);
    const t = p[i];
    p[i] = p[j];
    p[j] = t;
  }
  return p;
}
