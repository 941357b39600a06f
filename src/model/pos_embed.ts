// Sin-cos positional tables (rdt-spec.md 1.6). They only initialise the three learned positional
// embeddings of a model trained from scratch; a checkpoint's own values are always loaded instead.
// Computed in float64 like the official numpy code, then stored in the model dtype.
// Convention: [sin(p w), cos(p w)] (sin first, MAE), unlike the timestep embedding ([cos, sin]).
import type { PosEmbedEntry } from './config.js';

/** 1-D sin-cos embedding of positions `pos`: (M, dim) row-major, w_i = 10000^(-i / (dim/2)). */
export function sincos1d(dim: number, pos: ArrayLike<number>): Float64Array {
  if (dim % 2 !== 0) throw new Error(`sincos1d: dim must be even, got ${dim}`);
  const half = dim / 2;
  const out = new Float64Array(pos.length * dim);
  for (let m = 0; m < pos.length; m++)
    for (let i = 0; i < half; i++) {
      const a = pos[m] * (1 / 10000 ** (i / half));
      out[m * dim + i] = Math.sin(a);
      out[m * dim + half + i] = Math.cos(a);
    }
  return out;
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/**
 * n-d sin-cos over a grid (row-major flatten, first axis slowest): (prod(sizes), dim). The axes
 * longer than 1 split `dim` evenly (rounded down to even); axis j's table fills its own slice,
 * leftover dims stay 0.
 */
export function sincosNd(dim: number, sizes: number[]): Float64Array {
  const valid = sizes.filter((s) => s > 1).length;
  const total = sizes.reduce((a, b) => a * b, 1);
  const out = new Float64Array(total * dim);
  if (valid === 0) return out;
  let per = Math.floor(dim / valid);
  if (per % 2 !== 0) per -= 1;
  let slot = 0;
  for (let axis = 0; axis < sizes.length; axis++) {
    if (sizes[axis] <= 1) continue;
    const table = sincos1d(per, range(sizes[axis])); // (sizes[axis], per)
    const inner = sizes.slice(axis + 1).reduce((a, b) => a * b, 1);
    for (let r = 0; r < total; r++) {
      const p = Math.floor(r / inner) % sizes[axis];
      for (let i = 0; i < per; i++) out[r * dim + slot * per + i] += table[p * per + i];
    }
    slot++;
  }
  return out;
}

/**
 * The multimodal table: modalities one after another; each token gets, in its last `posDim` dims,
 * the sin-cos of its position inside its modality and, with `embedModality`, the sin-cos of the
 * modality index in the first dim/2 dims (posDim is then dim/2, else dim).
 * A negative length means no positional variation: every row gets position 0. For an image grid,
 * negative axes get no embedding (the spec's "(2, 3, -729)": history and camera, not patch).
 * Returns (tokens, dim) row-major.
 */
export function multimodalPosEmbed(dim: number, modalities: PosEmbedEntry[], embedModality: boolean): Float64Array {
  const posDim = embedModality ? dim / 2 : dim;
  const modality = embedModality ? sincos1d(dim / 2, range(modalities.length)) : null; // (M, dim/2)
  const rows: Float64Array[] = [];
  modalities.forEach(([, len], idx) => {
    let table: Float64Array; // (n, posDim)
    let n: number;
    if (Array.isArray(len)) {
      n = len.reduce((a, b) => a * Math.abs(b), 1);
      table = sincosNd(posDim, len.map((x) => (x > 0 ? x : 1)));
      // Axes given as negative sizes had size 1 above; expand them by repeating rows.
      const grid = len.map(Math.abs);
      const embedGrid = len.map((x) => (x > 0 ? x : 1));
      const expanded = new Float64Array(n * posDim);
      for (let r = 0; r < n; r++) {
        // row r's multi-index in `grid`, projected onto `embedGrid`
        let rem = r;
        let src = 0;
        let stride = 1;
        const idxs: number[] = new Array(grid.length);
        for (let a = grid.length - 1; a >= 0; a--) {
          idxs[a] = rem % grid[a];
          rem = Math.floor(rem / grid[a]);
        }
        for (let a = grid.length - 1; a >= 0; a--) {
          src += (embedGrid[a] === 1 ? 0 : idxs[a]) * stride;
          stride *= embedGrid[a];
        }
        expanded.set(table.subarray(src * posDim, (src + 1) * posDim), r * posDim);
      }
      table = expanded;
    } else {
      n = Math.abs(len);
      const base = sincos1d(posDim, range(len > 0 ? len : 1));
      table = new Float64Array(n * posDim);
      for (let r = 0; r < n; r++) table.set(base.subarray((len > 0 ? r : 0) * posDim, ((len > 0 ? r : 0) + 1) * posDim), r * posDim);
    }
    const block = new Float64Array(n * dim);
    for (let r = 0; r < n; r++) {
      block.set(table.subarray(r * posDim, (r + 1) * posDim), r * dim + dim - posDim);
      if (modality) for (let i = 0; i < dim / 2; i++) block[r * dim + i] += modality[idx * (dim / 2) + i];
    }
    rows.push(block);
  });
  const out = new Float64Array(rows.reduce((a, b) => a + b.length, 0));
  let off = 0;
  for (const b of rows) {
    out.set(b, off);
    off += b.length;
  }
  return out;
}

/** The modalities of the RDT core's input sequence: [timestep, ctrl_freq, state, action x horizon]. */
export function xPosEmbedConfig(horizon: number): PosEmbedEntry[] {
  return [['timestep', 1], ['ctrl_freq', 1], ['state', 1], ['action', horizon]];
}
