// Dataset statistics in the official RDT `dataset_stat.json` format (per dataset name: dataset_name, state_mean,
// state_std, state_min, state_max over the 128 slots, with the official non-zero-count std rule), plus action
// statistics of the chosen encoding (mean, std, min, max, 1st and 99th percentiles per slot), computed once and
// cached under a hash of the inputs (file paths, sizes, mtimes, index and adapter options, demo split, code version).
// A magnitude report flags quantities whose typical magnitudes differ by more than 10x (the seeds' bug: position
// deltas in metres next to a 6-D rotation ~100x larger).
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../util/atomic.js';
import { encodeState, stateSlots } from './adapter.js';
import type { LiberoDataset } from './dataset.js';
import { getEncoding } from './encodings/index.js';
import { axisAngleToMat } from './rotation.js';
import { SLOTS, STATE_VEC_LEN, range, slotName } from './state_vec.js';

/** Bump when the statistics code changes what it computes (invalidates caches). */
export const STATS_VERSION = 1;
const EPS = 1e-8;

export interface DatasetStat {
  dataset_name: string;
  state_mean: number[];
  state_std: number[];
  state_min: number[];
  state_max: number[];
  action_mean: number[];
  action_std: number[];
  action_min: number[];
  action_max: number[];
  action_q01: number[];
  action_q99: number[];
  action_encoding: string;
  num_steps: number;
  num_episodes: number;
  input_hash: string;
}

export type DatasetStatFile = Record<string, DatasetStat>;

class Acc {
  n = 0;
  sum = new Float64Array(STATE_VEC_LEN);
  sumZ = new Float64Array(STATE_VEC_LEN);
  sumZ2 = new Float64Array(STATE_VEC_LEN);
  nz = new Float64Array(STATE_VEC_LEN);
  min = new Float64Array(STATE_VEC_LEN).fill(Infinity);
  max = new Float64Array(STATE_VEC_LEN).fill(-Infinity);
  add(v: ArrayLike<number>) {
    this.n++;
    for (let i = 0; i < STATE_VEC_LEN; i++) {
      const x = v[i];
      this.sum[i] += x;
      if (Math.abs(x) > EPS) {
        this.sumZ[i] += x;
        this.sumZ2[i] += x * x;
        this.nz[i]++;
      }
      if (x < this.min[i]) this.min[i] = x;
      if (x > this.max[i]) this.max[i] = x;
    }
  }
  mean(): number[] {
    return Array.from(this.sum, (s) => s / Math.max(this.n, 1));
  }
  /** Official RDT rule: std = sqrt(max(sum Z^2 / nz - (sum Z)^2 / (N * nz), 0)), nz floored at 1. */
  officialStd(): number[] {
    return Array.from(this.sumZ2, (s2, i) => {
      const nz = Math.max(this.nz[i], 1);
      return Math.sqrt(Math.max(s2 / nz - (this.sumZ[i] * this.sumZ[i]) / (Math.max(this.n, 1) * nz), 0));
    });
  }
  fin(a: Float64Array): number[] {
    return Array.from(a, (x) => (Number.isFinite(x) ? x : 0));
  }
}

/** Linear-interpolated percentile (numpy's default) of sorted values. */
export function percentile(sorted: Float64Array, p: number): number {
  if (!sorted.length) return 0;
  const pos = (p / 100) * (sorted.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

/** Cache key over everything the statistics depend on. */
export function statsInputHash(ds: LiberoDataset): string {
  const files = ds.files.map((f) => f.fingerprint());
  const key = {
    v: STATS_VERSION,
    files,
    index: ds.options.index,
    encoding: ds.cfg.encoding,
    useJoints: ds.cfg.useJoints,
    layout: ds.options.layout ?? null,
    // LeRobot: another column mapping reads other numbers from the same files.
    ...(ds.format === 'lerobot' ? { format: ds.format, mapping: ds.lerobot.map((l) => l.mapping) } : {}),
    // The held-out demos are not in the training split's statistics: another split is another key.
    split: ds.options.split && ds.options.split.holdoutPerTask > 0 ? ds.options.split : null,
  };
  return createHash('sha256').update(JSON.stringify(key)).digest('hex');
}

/** Statistics per suite folder, plus `combinedName` over all suites. One pass over the low-dim data (no images). */
export function computeStats(ds: LiberoDataset, combinedName = 'libero'): DatasetStatFile {
  const enc = getEncoding(ds.cfg.encoding);
  const hash = statsInputHash(ds);
  const names = [...ds.suiteFolders, combinedName];
  const all = names.length - 1;
  const sAcc = names.map(() => new Acc());
  const aAcc = names.map(() => new Acc());
  const vals: number[][][] = names.map(() => enc.slots.map(() => []));
  const eps = names.map(() => 0);
  const s = new Float64Array(STATE_VEC_LEN);
  const a = new Float64Array(STATE_VEC_LEN);
  for (const ep of ds.index.episodes) {
    const ld = ds.files[ep.file].lowdim(ep.demo);
    const which = [ep.suite, all];
    for (const w of which) eps[w]++;
    for (let k = 0; k < ep.obs.length; k++) {
      const t = ep.obs[k];
      const j = ep.act[k];
      s.fill(0);
      a.fill(0);
      const robot = {
        eefPos: ld.eePos.subarray(t * 3, t * 3 + 3),
        eefAxisAngle: ld.eeOri.subarray(t * 3, t * 3 + 3),
        gripperQpos: ld.gripper.subarray(t * 2, t * 2 + 2),
        jointPos: ld.joints ? ld.joints.subarray(t * 7, t * 7 + 7) : null,
      };
      encodeState(ds.cfg, robot, s, 0);
      enc.encode(ld.actions.subarray(j * 7, j * 7 + 7), { pos: robot.eefPos, R: axisAngleToMat(robot.eefAxisAngle) }, a, 0);
      for (const w of which) {
        sAcc[w].add(s);
        aAcc[w].add(a);
        enc.slots.forEach((sl, q) => vals[w][q].push(a[sl]));
      }
    }
  }
  const out: DatasetStatFile = {};
  names.forEach((name, w) => {
    const q01 = new Array<number>(STATE_VEC_LEN).fill(0);
    const q99 = new Array<number>(STATE_VEC_LEN).fill(0);
    enc.slots.forEach((sl, q) => {
      const sorted = Float64Array.from(vals[w][q]).sort();
      q01[sl] = percentile(sorted, 1);
      q99[sl] = percentile(sorted, 99);
    });
    const A = aAcc[w];
    const amean = A.mean();
    const astd = Array.from(amean, (m, i) => Math.sqrt(Math.max((vals[w][enc.slots.indexOf(i)] ?? []).reduce((acc, x) => acc + (x - m) ** 2, 0) / Math.max(A.n, 1), 0)));
    out[name] = {
      dataset_name: name,
      state_mean: sAcc[w].mean(),
      state_std: sAcc[w].officialStd(),
      state_min: sAcc[w].fin(sAcc[w].min),
      state_max: sAcc[w].fin(sAcc[w].max),
      action_mean: amean,
      action_std: astd,
      action_min: A.fin(A.min),
      action_max: A.fin(A.max),
      action_q01: q01,
      action_q99: q99,
      action_encoding: enc.name,
      num_steps: sAcc[w].n,
      num_episodes: eps[w],
      input_hash: hash,
    };
  });
  return out;
}

/** Cached statistics: `<cacheDir>/dataset_stat-<hash16>.json`, computed on a miss. */
export function loadOrComputeStats(ds: LiberoDataset, cacheDir: string, combinedName = 'libero'): { stats: DatasetStatFile; path: string; cached: boolean } {
  const hash = statsInputHash(ds);
  const path = join(cacheDir, `dataset_stat-${hash.slice(0, 16)}.json`);
  if (existsSync(path)) {
    try {
      const stats = JSON.parse(readFileSync(path, 'utf8')) as DatasetStatFile;
      if (stats[combinedName]?.input_hash === hash) return { stats, path, cached: true };
    } catch {
      /* corrupt cache: recompute */
    }
  }
  const stats = computeStats(ds, combinedName);
  writeFileAtomic(path, JSON.stringify(stats, null, 1) + '\n');
  return { stats, path, cached: false };
}

// ---- magnitude report ----

/** Groups of slots that hold one physical quantity; magnitudes are compared between groups, not within one
 * (the 6-D rotation legitimately mixes ~1 and ~0 entries). */
export const QUANTITY_GROUPS: { name: string; slots: number[] }[] = [
  { name: 'joint angles (0-6)', slots: range(SLOTS.joints) },
  { name: 'gripper open (10)', slots: [SLOTS.gripperOpen] },
  { name: 'eef position (30-32)', slots: range(SLOTS.eefPos) },
  { name: 'eef rotation 6-D (33-38)', slots: range(SLOTS.eefRot6d) },
  { name: 'eef linear velocity (39-41)', slots: range(SLOTS.eefVel) },
  { name: 'eef angular velocity (42-44)', slots: range(SLOTS.eefAngVel) },
];

export interface MagnitudeRow {
  group: string;
  /** Root mean square over the group's slots and all steps. */
  rms: number;
  /** Per slot: [index, name, rms]. */
  slots: [number, string, number][];
}

export interface MagnitudeReport {
  state: MagnitudeRow[];
  action: MagnitudeRow[];
  warnings: string[];
}

/** RMS per slot from mean and std (population): rms^2 = std^2 + mean^2. */
export function rmsFromMoments(mean: number[], std: number[]): number[] {
  return mean.map((m, i) => Math.sqrt(m * m + std[i] * std[i]));
}

export function magnitudeRows(rms: number[], filled: readonly number[]): MagnitudeRow[] {
  const rows: MagnitudeRow[] = [];
  for (const g of QUANTITY_GROUPS) {
    const sl = g.slots.filter((i) => filled.includes(i));
    if (!sl.length) continue;
    const r = Math.sqrt(sl.reduce((a, i) => a + rms[i] * rms[i], 0) / sl.length);
    rows.push({ group: g.name, rms: r, slots: sl.map((i) => [i, slotName(i), rms[i]]) });
  }
  return rows;
}

export function magnitudeWarnings(what: string, rows: MagnitudeRow[], ratio = 10): string[] {
  const w: string[] = [];
  for (let i = 0; i < rows.length; i++)
    for (let j = 0; j < rows.length; j++) {
      const a = rows[i], b = rows[j];
      if (a.rms > 0 && b.rms > 0 && a.rms / b.rms > ratio)
        w.push(`${what}: ${a.group} has typical magnitude ${a.rms.toPrecision(3)}, ${(a.rms / b.rms).toFixed(1)}x that of ${b.group} (${b.rms.toPrecision(3)}); a diffusion loss will mostly fit the larger one: check units`);
      else if (a.rms > 0 && b.rms === 0 && i < j) w.push(`${what}: ${b.group} is filled but always zero`);
    }
  return w;
}

/** The report over one stats entry: state slots from the adapter config, action slots from the encoding. */
export function magnitudeReport(st: DatasetStat, useJoints: boolean): MagnitudeReport {
  const stateFilled = stateSlots({ useJoints });
  const actionFilled = getEncoding(st.action_encoding).slots;
  // The official state std ignores zeros; for magnitudes use the plain RMS: sqrt(mean^2 + std^2) of the non-zero
  // values is close enough for a 10x test, and exact for slots that are never zero.
  const state = magnitudeRows(rmsFromMoments(st.state_mean, st.state_std), stateFilled);
  const action = magnitudeRows(rmsFromMoments(st.action_mean, st.action_std), actionFilled);
  return { state, action, warnings: [...magnitudeWarnings('state', state), ...magnitudeWarnings('action', action)] };
}
