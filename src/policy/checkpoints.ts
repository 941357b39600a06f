// The checkpoints of a training run's output folder, as training writes them and eval reads them:
// `checkpoint-{step}/` folders, each a policy folder that is complete once its trainer_state.json exists
// (training writes that file last, so a half-written checkpoint is never listed).
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

export const CHECKPOINT_NAME = /^checkpoint-(\d+)$/;
/** Written last inside a checkpoint: its presence marks the checkpoint as complete. */
export const TRAINER_STATE = 'trainer_state.json';

export interface CheckpointRef {
  step: number;
  path: string;
}

/** Complete checkpoints under outputDir, oldest first. Half-written temporaries are ignored. */
export function listCheckpoints(outputDir: string): CheckpointRef[] {
  if (!existsSync(outputDir)) return [];
  return readdirSync(outputDir)
    .map((name) => ({ m: CHECKPOINT_NAME.exec(name), name }))
    .filter(({ m, name }) => m && statSync(join(outputDir, name)).isDirectory() && existsSync(join(outputDir, name, TRAINER_STATE)))
    .map(({ m, name }) => ({ step: Number(m![1]), path: join(outputDir, name) }))
    .sort((a, b) => a.step - b.step);
}
