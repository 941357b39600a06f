// `rdt-libero demo --quick` end to end, as `npm start` runs it but shorter: demonstrations recorded in the test
// back-end and read back by the data layer, policy folders, `rdt-libero eval` results for the untrained and the
// trained policy, videos that browsers play (H.264) showing both cameras upright; and the target, marked
// todo while it does not hold: a trained policy that beats the untrained one by more than their Wilson intervals
// allow by chance, and one that follows the instruction (the same held-out episodes, told another task's
// instruction, fail).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { LiberoDataset } from '../src/data/dataset.js';
import { QUICK } from '../src/cli/demo.js';
import { wilson } from '../src/eval/report.js';
import { readRecords } from '../src/eval/results.js';
import { runEval } from '../src/eval/run.js';
import { scriptedPolicy } from '../src/eval/scripted_policy.js';
import type { ActionChunk, ChunkPolicy } from '../src/eval/chunk_policy.js';
import { RdtChunkPolicy } from '../src/eval/policy_source.js';
import { SidecarWorker } from '../src/eval/sidecar.js';
import type { PolicyInput } from '../src/policy/policy.js';
import { repoRoot } from './helpers/fixtures.js';
import { testEvalOptions } from './helpers/eval.js';
import { tempDir } from './helpers/python.js';

const { dir: work, cleanup } = tempDir('demo');
after(cleanup);
const MAIN = join(repoRoot(), 'dist', 'src', 'cli', 'main.js');
const out = join(work, 'run');

/** The policy under test, told another task's instruction (task k's episodes get task k+1's, cyclically). */
class SwappedInstructions implements ChunkPolicy {
  constructor(private inner: ChunkPolicy, private swap: Map<string, string>) {}
  get describe() { return `${this.inner.describe} with swapped instructions`; }
  get chunkSize() { return this.inner.chunkSize; }
  get historySize() { return this.inner.historySize; }
  get resolution() { return this.inner.resolution; }
  get checkpointStep() { return this.inner.checkpointStep; }
  get execHorizon() { return this.inner.execHorizon; }
  get inputs() { return this.inner.inputs; }
  predictChunks(inputs: readonly PolicyInput[], envs?: readonly number[], seeds?: readonly number[]): Promise<ActionChunk[]> {
    return this.inner.predictChunks(inputs.map((i) => ({ ...i, instruction: this.swap.get(i.instruction)! })), envs, seeds);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

/** Successes / episodes of one evaluation of the quick demo. */
function rate(name: string): { k: number; n: number } {
  const recs = readRecords(join(out, 'eval', name, 'episodes.jsonl'));
  return { k: recs.filter((x) => x.success).length, n: recs.length };
}

test('demo --quick end to end: demonstrations read back as LIBERO files, policy folders, every eval result, an H.264 video of both cameras', async () => {
  const r = spawnSync(process.execPath, [MAIN, 'demo', '--quick', '--out', out], { encoding: 'utf8', maxBuffer: 1 << 26 });
  assert.equal(r.status, 0, r.stderr.slice(-3000));
  const report = r.stdout;
  assert.match(report, /closed-loop report/);
  assert.match(report, /untrained \(exec horizon 8\)\s+\d+\/20/);
  assert.match(report, /trained, exec horizon 8\s+\d+\/20/);
  assert.match(report, /re-run:\n {2}the evaluation {6}node dist\/src\/cli\/main\.js eval --policy \S+ --sim test --suite libero_object/);
  assert.match(report, /CPU \d+ s in this process \+ \d+ s in its child processes/);
  assert.match(r.stderr, /record: libero_object task 3 "pick up the yellow block": \d+ demos/);
  assert.match(r.stderr, /train \d+\/\d+ \(100\.0%\)/);
  assert.match(r.stderr, /eval trained \(exec_horizon 8\): \[20\/20\]/);

  // Training: the loss falls, held-out sample chunks get closer, and the metrics files the report names exist.
  const loss = /training loss \(mean of the first\/last \d+ steps\): ([\d.e+-]+) -> ([\d.e+-]+)/.exec(report);
  assert.ok(loss, `no loss line in:\n${report}`);
  assert.ok(Number(loss[2]) < 0.5 * Number(loss[1]), `loss ${loss[1]} -> ${loss[2]} did not halve`);
  const mse = /sample MSE \(overall_avg_sample_mse\)\s+([\d.e+-]+) ->\s+([\d.e+-]+)/.exec(report);
  assert.ok(mse, `no sample MSE line in:\n${report}`);
  assert.ok(Number(mse[2]) < 0.5 * Number(mse[1]), `sample MSE ${mse[1]} -> ${mse[2]} did not halve`);
  const files = /^ {2}training metrics\s+(\S+), TensorBoard (\S+)$/m.exec(report);
  assert.ok(files, `no training metrics line in:\n${report}`);
  const steps = readFileSync(resolve(files[1]), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { step: number; 'train/loss'?: number })
    .filter((x) => x['train/loss'] !== undefined).map((x) => x.step);
  assert.ok(steps.length >= 3 && steps.every((x, i) => i === 0 || x > steps[i - 1]), `train/loss steps: ${steps}`);
  assert.ok(/events\.out\.tfevents/.test(files[2]) && readFileSync(resolve(files[2])).length > 100, `TensorBoard file ${files[2]}`);

  // Demonstrations: read back by the data layer as LIBERO's released layout.
  const ds = await LiberoDataset.open({ root: join(out, 'data'), suites: ['libero_object'] });
  assert.deepEqual(ds.instructions, ['pick up the blue block', 'pick up the green block', 'pick up the red block', 'pick up the yellow block']);
  assert.ok(ds.files.every((f) => f.layout === 'original' && f.demos.length === QUICK.demosPerTask));
  ds.close();

  // Policy folders: the trained EMA weights and the untrained model (step 0), each with its policy.json.
  for (const dir of [join(out, 'train', `checkpoint-${QUICK.steps}`, 'ema'), join(out, 'untrained')])
    assert.ok(existsSync(join(dir, 'policy.json')) && existsSync(join(dir, 'model.safetensors')), dir);
  assert.equal(JSON.parse(readFileSync(join(out, 'untrained', 'policy.json'), 'utf8')).origin.step, 0);

  // Evaluations: every results file, on held-out initial states only (the demonstrations start at firstDemoInit).
  for (const name of ['untrained', 'trained-h8']) {
    const dir = join(out, 'eval', name);
    for (const f of ['episodes.jsonl', 'summary.json', 'summary.md', 'tasks.csv', 'eval_config.json']) assert.ok(existsSync(join(dir, f)), `${name}/${f}`);
    const recs = readRecords(join(dir, 'episodes.jsonl'));
    assert.equal(recs.length, QUICK.tasks.length * QUICK.episodes);
    assert.ok(recs.every((x) => x.init < QUICK.firstDemoInit && x.max_steps === QUICK.maxSteps));
  }

  // Videos: H.264 in MP4 (what browsers play), both cameras side by side; the first frame's agentview is upright:
  // the blocks sit where the camera mapping puts the episode's initial state, not mirrored.
  const recs = readRecords(join(out, 'eval', 'trained-h8', 'episodes.jsonl'));
  const rec = recs.find((x) => x.video)!;
  const video = join(out, 'eval', 'trained-h8', rec.video!);
  const probe = spawnSync('ffprobe', ['-v', 'error', '-select_streams', 'v:0', '-show_entries', 'stream=codec_name,pix_fmt,width', '-of', 'csv=p=0', video], { encoding: 'utf8' });
  assert.equal(probe.stdout.trim(), `h264,${2 * QUICK.resolution},yuv420p`); // ffprobe prints the fields in its own order
  const n = QUICK.resolution;
  const frame = spawnSync('ffmpeg', ['-loglevel', 'error', '-i', video, '-vframes', '1', '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-'], { maxBuffer: 1 << 24 }).stdout as Buffer;
  const bar = frame.length / (2 * n * 3) - n; // rows of the step bar above the cameras
  const sim = await SidecarWorker.start({ backend: 'test' });
  try {
    await sim.open({ suite: 'libero_object', task: rec.task, resolution: n, seed: 0, horizon: 10 });
    const state = (await sim.reset({ initIndex: rec.init, seed: 0 })).state!;
    const rgb = [[220, 30, 30], [40, 170, 60], [40, 80, 220], [230, 200, 30]];
    let checked = 0;
    rgb.forEach((want, b) => {
      const [x, y] = state.slice(9 + 3 * b, 11 + 3 * b);
      if (Math.hypot(x - state[1], y - state[2]) < 0.12) return; // the fingers may cover it
      checked++;
      const col = Math.floor(((x + 0.3) / 0.6) * n), row = Math.floor(((0.3 - y) / 0.6) * n); // upright camera mapping
      const px = (r: number) => Array.from(frame.subarray(((bar + r) * 2 * n + col) * 3, ((bar + r) * 2 * n + col) * 3 + 3));
      const near = (p: number[]) => p.every((v, i) => Math.abs(v - want[i]) < 40); // H.264 changes colours a little
      assert.ok(near(px(row)), `block ${b} at upright row ${row}: ${px(row)}`);
      if (Math.abs(y) > 0.05) assert.ok(!near(px(n - 1 - row)), `block ${b} also at the mirrored row`);
    });
    assert.ok(checked >= 2, 'blocks checked');
  } finally {
    await sim.close();
  }
  assert.match(report, /a (success|failure) {4}\S+\.mp4/);
});

/** The instruction swap of the check below: task k's episodes are told task k+1's instruction (cyclically). */
const LANGS = ['red', 'green', 'blue', 'yellow'].map((c) => `pick up the ${c} block`);
const SWAP = new Map(LANGS.map((l, i) => [l, LANGS[(i + 1) % LANGS.length]]));

test('the demo task needs the instruction: an expert that reads it solves the held-out episodes, told the wrong one it fails them', async () => {
  // scripted:reach finds the instruction's colour in the image; the same episodes with swapped instructions send
  // it to another block, so a policy that ignored the instruction could not succeed in more than chance allows.
  const opts = (dir: string) => testEvalOptions(join(work, dir), {
    suites: ['libero_object'], tasks: QUICK.tasks, episodesPerTask: QUICK.episodes, maxSteps: QUICK.maxSteps, execHorizon: 8, workers: 2, maxBatch: 2,
  });
  const right = (await runEval(scriptedPolicy('reach'), opts('expert'))).summary.suites.libero_object;
  const swapped = (await runEval(new SwappedInstructions(scriptedPolicy('reach'), SWAP), opts('expert-swapped'))).summary.suites.libero_object;
  const n = QUICK.tasks.length * QUICK.episodes;
  assert.equal(right.successes, n, `the expert with the right instructions: ${right.successes}/${n}`);
  assert.equal(swapped.successes, 0, `the expert told another block: ${swapped.successes}/${n}`);
});

// The two checks below are the target for the quick demo. They do not hold within the quick demo's budget:
// the tiny RDT from scratch learns to read the state and the images there (held-out position error 12.8 -> ~3.5 cm
// with z-scored values and the palette encoder), but not yet "the block the instruction names", which needs a
// language-dependent lookup over the image tokens; that lookup appears between 3000 and 6000 steps (6000 steps: 45%
// held-out success; README, "What the demo does"). They stay here, run, and report their numbers, so the day a
// configuration learns the task within the budget they pass.
const TODO = 'the tiny RDT learns the language-conditioned lookup only after ~6000 steps, beyond the quick budget (README: What the demo does)';

test('the trained policy beats the untrained one beyond their Wilson 95% intervals', { todo: TODO }, () => {
  const u = rate('untrained'), t = rate('trained-h8');
  const [, uHigh] = wilson(u.k, u.n);
  const [tLow] = wilson(t.k, t.n);
  assert.ok(tLow > uHigh, `trained ${t.k}/${t.n} vs untrained ${u.k}/${u.n}: the Wilson 95% intervals overlap`);
});

test('the policy follows the instruction: the held-out episodes told another task\'s instruction fail', { todo: TODO }, async () => {
  const t = rate('trained-h8');
  const policy = new SwappedInstructions(await RdtChunkPolicy.open({ dir: join(out, 'train', `checkpoint-${QUICK.steps}`, 'ema'), threads: 1 }), SWAP);
  try {
    const s = await runEval(policy, testEvalOptions(join(work, 'swapped'), {
      suites: ['libero_object'], tasks: QUICK.tasks, episodesPerTask: QUICK.episodes, maxSteps: QUICK.maxSteps, execHorizon: 8, workers: 2, maxBatch: 2,
    }));
    const k = s.summary.suites.libero_object.successes;
    // A policy that goes for the block the instruction names succeeds only by chance now; one that ignores the
    // instruction keeps its rate.
    assert.ok(t.k > 0 && k <= t.k / 2, `with swapped instructions ${k}/${t.n} succeed, with the right ones ${t.k}/${t.n}`);
  } finally {
    await policy.close();
  }
});

// Last: it replaces the quick demo's training and evaluations, which the checks above read.
test('a second demo run reuses the recorded demonstrations', () => {
  const r = spawnSync(process.execPath, [MAIN, 'demo', '--quick', '--steps', '2', '--out', out], { encoding: 'utf8', maxBuffer: 1 << 26 });
  assert.equal(r.status, 0, r.stderr.slice(-3000));
  assert.match(r.stderr, new RegExp(`data: reusing ${QUICK.tasks.length * QUICK.demosPerTask} recorded demonstrations`));
  assert.match(r.stdout, /LIBERO's HDF5 layout \(reused\)/);
  assert.match(r.stdout, /training: .* 2 steps of batch/);
});
