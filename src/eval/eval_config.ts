// eval_config.json: the settings that decide an evaluation's outcomes, written into its folder by the first run.
// A re-run into the folder (a resume, another shard) must have the same ones, and `eval merge` merges only
// folders whose settings agree, so results of different evaluations never mix.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../util/atomic.js';
import { EvalError } from './errors.js';

export const EVAL_CONFIG = 'eval_config.json';

export interface EvalIdentity {
  policy: string;
  checkpoint_step: number | null;
  protocol: string;
  exec_horizon: number;
  temporal_ensemble: number | null;
  /** --max-steps, null = the protocol's per-suite budget. */
  max_steps: number | null;
  seed: number;
  seeding: string;
  backend: string;
  /** --perturb's sets (perturb.ts), present only when given: a folder never mixes perturbation settings. */
  perturbations?: unknown[];
}

/** The folder's recorded settings, or null when it has none yet. */
export function readEvalConfig(dir: string): Record<string, unknown> | null {
  const file = join(dir, EVAL_CONFIG);
  if (!existsSync(file)) return null;
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new EvalError(`${file} is not JSON (${(e as Error).message}); it records the evaluation's settings: restore it or evaluate into a new folder`);
  }
}

/** The first setting in which `b` differs from `a` (every key of either), or null. */
export function firstDifference(a: Record<string, unknown>, b: Record<string, unknown>): string | null {
  for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) if (JSON.stringify(a[k]) !== JSON.stringify(b[k])) return k;
  return null;
}

/** Write the settings into a new folder, or check them against the ones it holds. */
export function claimFolder(dir: string, id: EvalIdentity): void {
  const prev = readEvalConfig(dir);
  const file = join(dir, EVAL_CONFIG);
  if (!prev) return writeFileAtomic(file, JSON.stringify(id, null, 2) + '\n');
  const k = firstDifference(prev, id as unknown as Record<string, unknown>);
  if (k !== null)
    throw new EvalError(`${file}: this folder holds an evaluation with ${k} = ${JSON.stringify(prev[k])}, this run has ${JSON.stringify((id as unknown as Record<string, unknown>)[k])}; ` +
      'use another --out (results of different settings must not mix), or the same settings to resume');
}
