// `eval --watch RUN_DIR`: evaluate each checkpoint a training run writes, as it appears, with a few episodes per
// task, and log success rate vs training step next to the loss: RUN_DIR/eval/metrics.jsonl and TensorBoard
// scalars in RUN_DIR/tensorboard/eval/ (its own folder: a second writer in the training's folder would restart
// its timeline). Each checkpoint's episodes go to RUN_DIR/eval/checkpoint-N/, so a stopped watch resumes.
// Training deletes its oldest checkpoints (checkpoints_total_limit) while the watch evaluates, so the folder is
// listed again before each checkpoint, the newest one not yet evaluated goes first, and one that vanished before
// its policy was loaded is skipped with a line saying so (a loaded policy finishes: its weights are in memory).
import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DType } from '../engine/index.js';
import { POLICY_FILE } from '../policy/file.js';
import { listCheckpoints } from '../policy/checkpoints.js';
import { TensorBoardWriter } from '../metrics/tensorboard.js';
import { EvalError, EvalInterrupted } from './errors.js';
import { openPolicy } from './policy_source.js';
import { type EvalOptions, runEval } from './run.js';

export interface WatchOptions extends Omit<EvalOptions, 'out'> {
  policyOpts: { dtype: DType; device: string; threads?: number };
  pollS: number;
  once: boolean;
}

export async function watchRun(runDir: string, o: WatchOptions): Promise<void> {
  if (!existsSync(runDir)) throw new EvalError(`--watch ${runDir}: the run folder does not exist`);
  const evalDir = join(runDir, 'eval');
  mkdirSync(evalDir, { recursive: true });
  const metrics = join(evalDir, 'metrics.jsonl');
  const logged = new Set(existsSync(metrics) ? readFileSync(metrics, 'utf8').split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { step: number }).step) : []);
  let tb: TensorBoardWriter | null = null;
  try {
    const skipped = new Set<number>();
    for (;;) {
      const next = listCheckpoints(runDir).filter((c) => !logged.has(c.step) && !skipped.has(c.step)).sort((a, b) => b.step - a.step)[0];
      if (next === undefined) {
        if (o.once) return;
        await new Promise<void>((res) => {
          const t = setTimeout(res, o.pollS * 1000);
          o.signal?.addEventListener('abort', () => (clearTimeout(t), res()), { once: true });
        });
        if (o.signal?.aborted) throw new EvalInterrupted('the watch was interrupted');
        continue;
      }
      {
        const c = next;
        const dir = existsSync(join(c.path, 'ema', POLICY_FILE)) ? join(c.path, 'ema') : c.path;
        o.log(`eval --watch: checkpoint ${c.step} (${dir})`);
        let policy;
        try {
          policy = await openPolicy({ policy: dir, ...o.policyOpts });
        } catch (e) {
          if (existsSync(c.path)) throw e;
          o.log(`eval --watch: checkpoint ${c.step} was deleted before it could be loaded (the run keeps checkpoints_total_limit of them); skipped`);
          skipped.add(c.step);
          continue;
        }
        let values: Record<string, number>;
        try {
          const r = await runEval(policy, { ...o, out: join(evalDir, `checkpoint-${c.step}`) });
          values = { 'eval/success_rate': r.summary.average.rate };
          for (const [suite, s] of Object.entries(r.summary.suites)) values[`eval/${suite}/success_rate`] = s.rate;
          values['eval/episodes'] = r.summary.average.pooled.episodes;
        } finally {
          await policy.close();
        }
        appendFileSync(metrics, JSON.stringify({ step: c.step, time: new Date().toISOString(), checkpoint: dir, ...values }) + '\n');
        tb ??= new TensorBoardWriter(join(runDir, 'tensorboard', 'eval'));
        tb.scalars(c.step, values);
        tb.flush();
        logged.add(c.step);
        o.log(`eval --watch: step ${c.step}: success ${(100 * values['eval/success_rate']).toFixed(1)}% -> ${metrics}`);
      }
    }
  } finally {
    tb?.close();
  }
}
