// Training checkpoints on disk: `output_dir/checkpoint-{step}/`, each written to a temporary sibling
// and renamed into place when complete, so a run killed at any moment leaves the previous complete
// checkpoint usable. `checkpoints_total_limit` is enforced (the official trainer never deletes).
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join, basename, resolve } from 'node:path';
import { writeDirAtomic } from '../util/atomic.js';
import { ConfigError } from './errors.js';
import { CHECKPOINT_NAME as NAME, TRAINER_STATE, listCheckpoints, type CheckpointRef } from '../policy/checkpoints.js';

/** Resolve `--resume_from_checkpoint latest|PATH` to a checkpoint directory (or null: start fresh). */
export function resolveResume(outputDir: string, spec: string | null): CheckpointRef | null {
  if (!spec) return null;
  if (spec === 'latest') {
    const all = listCheckpoints(outputDir);
    if (!all.length)
      throw new ConfigError(`resume_from_checkpoint: latest, but ${outputDir} holds no complete checkpoint to resume; ` +
        'drop --resume_from_checkpoint to start a new run, or point output_dir at the run to continue');
    return all[all.length - 1];
  }
  const path = resolve(spec);
  const m = NAME.exec(basename(path));
  if (!existsSync(path)) throw new ConfigError(`resume_from_checkpoint: ${path} does not exist; use 'latest' or an existing checkpoint-N folder`);
  if (!existsSync(join(path, TRAINER_STATE)))
    throw new ConfigError(`resume_from_checkpoint: ${path} is not a complete checkpoint (no ${TRAINER_STATE}); use 'latest' or a checkpoint-N folder`);
  return { step: m ? Number(m[1]) : -1, path };
}

/** Write checkpoint-{step} atomically with `fill(tmpDir)`, then delete the oldest beyond `limit`. */
export function writeCheckpoint(outputDir: string, step: number, fill: (dir: string) => void, limit: number | null): string {
  const dir = join(outputDir, `checkpoint-${step}`);
  writeDirAtomic(dir, fill);
  if (limit !== null && limit > 0) {
    const all = listCheckpoints(outputDir);
    for (const old of all.slice(0, Math.max(0, all.length - limit))) rmSync(old.path, { recursive: true, force: true });
  }
  return dir;
}

/** Remove half-written checkpoint temporaries left by a run that was killed (`.checkpoint-N.tmp-PID`). */
export function removeStaleTemporaries(outputDir: string): string[] {
  if (!existsSync(outputDir)) return [];
  const stale = readdirSync(outputDir).filter((n) => /^\.checkpoint-\d+\.tmp-\d+/.test(n));
  for (const n of stale) rmSync(join(outputDir, n), { recursive: true, force: true });
  return stale;
}
