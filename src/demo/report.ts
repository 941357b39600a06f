// The demo's report: closed-loop success before -> after with Wilson intervals, per task, at each exec horizon,
// the sample-MSE lines of training, one success and one failure video, the exact commands to re-run, and where
// the time went. Text only; everything it prints comes from the files the phases wrote (summary.json,
// episodes.jsonl, metrics) or from the training result.
import { existsSync, readdirSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { wilson } from '../eval/report.js';
import type { EpisodeRecord } from '../eval/results.js';
import { formatDuration } from '../metrics/progress.js';
import type { SampleMetrics } from '../train/sample_eval.js';
import type { DemoResult } from './run.js';
import type { EvalRun } from './eval_child.js';

/** A path relative to the working directory when it lies inside it, else absolute. */
export function shortPath(p: string): string {
  const r = relative(process.cwd(), resolve(p));
  return !r ? '.' : r.startsWith('..') ? resolve(p) : r;
}

const f3 = (x: number | undefined) => (x === undefined ? 'n/a' : Math.abs(x) >= 100 ? x.toFixed(1) : x.toPrecision(3));
const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

function sampleRows(b: SampleMetrics | null, a: SampleMetrics | null): string[] {
  const rows: [string, keyof SampleMetrics][] = [
    ['sample MSE (overall_avg_sample_mse)', 'overall_avg_sample_mse'],
    ['sample L2 error (normalised)', 'overall_avg_sample_l2err'],
    ['end-effector position error, cm', 'eef_pos_err_cm'],
    ['end-effector rotation error, deg', 'eef_rot_err_deg'],
    ['gripper error (open fraction)', 'gripper_err'],
  ];
  return rows
    .filter(([, k]) => b?.[k] !== undefined || a?.[k] !== undefined)
    .map(([label, k]) => `  ${label.padEnd(38)} ${f3(b?.[k]).padStart(9)} -> ${f3(a?.[k]).padStart(9)}`);
}

/** Mean of the first / last `n` losses (single steps are noisy: the diffusion timestep is random). */
export function lossEnds(losses: number[]): { first: number; last: number; n: number } {
  const n = Math.max(1, Math.min(10, Math.floor(losses.length / 5)));
  const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
  return { first: mean(losses.slice(0, n)), last: mean(losses.slice(-n)), n };
}

/** Successes, episodes, rate, Wilson interval and mean steps of the successful episodes of some records. */
export function tallyRecords(rs: readonly EpisodeRecord[]) {
  const wins = rs.filter((r) => r.success);
  return {
    k: wins.length, n: rs.length, rate: rs.length ? wins.length / rs.length : 0, ci: wilson(wins.length, rs.length),
    meanSuccessSteps: wins.length ? wins.reduce((s, r) => s + r.steps, 0) / wins.length : null,
  };
}

function rateCell(rs: readonly EpisodeRecord[]): string {
  const t = tallyRecords(rs);
  return `${t.k}/${t.n} ${pct(t.rate).padStart(6)} [${pct(t.ci[0])}-${pct(t.ci[1])}]`;
}

/** The first video of a success and of a failure among the runs (in order), as paths. */
function videos(runs: readonly EvalRun[]): { success: string | null; failure: string | null } {
  const pick = (ok: boolean) => {
    for (const r of runs) {
      const rec = r.records.find((x) => x.success === ok && x.video);
      if (rec) return join(r.out, rec.video!);
    }
    return null;
  };
  return { success: pick(true), failure: pick(false) };
}

export const CLI = 'node dist/src/cli/main.js';

export function demoReport(d: DemoResult): string {
  const s = d.settings;
  const rel = shortPath;
  const { first, last, n } = lossEnds(d.train.losses);
  const main = d.trained[0];
  const quoted = (args: string[]) => args.map((a) => (existsSync(a) ? rel(a) : a)).map((a) => (/^[\w./:,=-]+$/.test(a) ? a : `'${a}'`)).join(' ');
  const tasks = main.run.summary.suites[s.suite]?.tasks ?? [];
  const v = videos([main.run, ...d.trained.slice(1).map((t) => t.run), d.untrained]);
  const tbDir = join(d.cfg.output_dir, 'tensorboard');
  const tbFile = existsSync(tbDir) ? readdirSync(tbDir).find((f) => f.startsWith('events.out.tfevents')) : undefined;
  const u = tallyRecords(d.untrained.records);
  const t = tallyRecords(main.run.records);
  const inits = (a: number, b: number) => (a === b ? `${a}` : `${a}-${b}`);
  const lines = [
    '',
    '================ rdt-libero demo: closed-loop report ================',
    "SIMULATOR TEST BACK-END + DEMO ENCODERS: a policy trained and evaluated end to end by rdt-libero, in the sidecar's",
    'test back-end (not LIBERO) with stand-in encoders (not T5/SigLIP); it shows the whole loop works, not LIBERO numbers.',
    '',
    `task family: ${s.suite} tasks ${s.tasks.join(',')} of the test back-end: four coloured blocks on a table, the instruction`,
    '  names one ("pick up the red block", ... green, blue, yellow); success = the env\'s done flag (gripper closed on it).',
    `demonstrations: ${d.recorded.demos} by the scripted expert (${s.demosPerTask} per task, initial states ${inits(s.firstDemoInit, s.firstDemoInit + s.demosPerTask - 1)}), ` +
      `${d.recorded.steps} steps, LIBERO's HDF5 layout${d.recorded.reused ? ' (reused)' : ''}: ${rel(join(d.paths.data, s.suite))}/`,
    `training: the tiny RDT from scratch (${rel(d.paths.model)}), ${d.train.steps} steps of batch ${s.batch} in ` +
      `${formatDuration(d.phases.find((p) => p.name === 'train')?.wallS ?? 0)} (${d.train.samplesPerSecond.toFixed(1)} samples/s)`,
    `  training loss (mean of the first/last ${n} steps): ${f3(first)} -> ${f3(last)}`,
    `  predicted action chunks on held-out demonstrations (1 per task, ${d.train.sampleAfter?.samples ?? d.train.sampleBefore?.samples ?? 0} samples), before -> after:`,
    ...sampleRows(d.train.sampleBefore, d.train.sampleAfter),
    '',
    `closed loop (rdt-libero eval --sim test): ${s.episodes} episodes per task on initial states ${inits(0, s.episodes - 1)}, which no demonstration`,
    `used; at most ${s.maxSteps} policy steps; success rate with its Wilson 95% interval; mean policy steps of the successes`,
    `  untrained (${main.label.replace('exec_horizon', 'exec horizon')})`.padEnd(42) + `${rateCell(d.untrained.records).padEnd(28)} ${u.meanSuccessSteps === null ? '-' : u.meanSuccessSteps.toFixed(1)}`,
    ...d.trained.map((x) => {
      const tt = tallyRecords(x.run.records);
      return `  trained, ${x.label.replace('exec_horizon', 'exec horizon')}`.padEnd(42) + `${rateCell(x.run.records).padEnd(28)} ${tt.meanSuccessSteps === null ? '-' : tt.meanSuccessSteps.toFixed(1)}`;
    }),
    `  success ${pct(u.rate)} -> ${pct(t.rate)} at ${main.label.replace('exec_horizon', 'exec horizon')}` +
      (t.ci[0] > u.ci[1] ? ' (the intervals do not overlap)' : ' (the intervals overlap: not a clear gain)'),
    ...(t.ci[0] > u.ci[1] ? [] : ['  the tiny model learns "the block the instruction names" only after thousands of steps: README, "What the demo',
      '  does", measures it; rdt-libero demo --steps 6000 runs that long (about 9 minutes on 2 cores)']),
    '',
    `per task (${main.label.replace('exec_horizon', 'exec horizon')}):`,
    `  ${'task'.padEnd(5)} ${'instruction'.padEnd(26)} ${'untrained'.padEnd(26)} trained`,
    ...tasks.map((tk) => `  ${String(tk.task).padEnd(5)} ${tk.language.padEnd(26)} ${rateCell(d.untrained.records.filter((r) => r.task === tk.task)).padEnd(26)} ` +
      rateCell(main.run.records.filter((r) => r.task === tk.task))),
    '',
    'videos (both cameras upright, H.264 MP4):',
    `  a success    ${v.success ? rel(v.success) : '(none: no episode succeeded)'}`,
    `  a failure    ${v.failure ? rel(v.failure) : '(none recorded: every trained episode succeeded and the untrained run keeps no videos)'}`,
    '',
    'outputs:',
    `  trained policy      ${rel(d.policy)}/  (EMA weights + policy.json; untrained: ${rel(d.paths.untrained)}/)`,
    `  evaluations         ${rel(d.paths.eval)}/*/  (episodes.jsonl, tasks.csv, summary.md, videos/)`,
    `  training metrics    ${rel(join(d.cfg.output_dir, 'metrics.jsonl'))}, TensorBoard ${tbFile ? rel(join(tbDir, tbFile)) : rel(tbDir)}`,
    `  resolved config     ${rel(join(d.cfg.output_dir, 'run_config.yaml'))}`,
    '',
    're-run:',
    `  the evaluation      ${CLI} eval ${quoted(main.run.args)}`,
    `  more training       ${CLI} train --config ${rel(join(d.cfg.output_dir, 'run_config.yaml'))} max_train_steps=${d.train.steps * 2} --resume_from_checkpoint latest`,
    '',
    `time: ${d.phases.map((p) => `${p.name} ${formatDuration(p.wallS)}`).join(', ')}`,
    `  total ${formatDuration(d.wallS)} wall; CPU ${d.cpuS.self.toFixed(0)} s in this process` +
      (d.cpuS.children !== null ? ` + ${d.cpuS.children.toFixed(0)} s in its child processes (evaluations, simulators, ffmpeg)` : '') +
      `; load average ${d.loadStart[0].toFixed(2)} at the start, ${d.loadEnd[0].toFixed(2)} at the end`,
  ];
  return lines.join('\n') + '\n';
}
