// Robustness evaluation (src/eval/perturb.ts, sidecar/perturb_reach.py) on the sidecar's test back-end with the
// scripted reach expert: every dimension applied (the rendered frames differ where they should and nowhere else),
// recorded in every episode record, reproducible from the seed, and reported beside the standard run; level 0 of
// every dimension reproduces the standard episode exactly; a shifted layout is still solved by the vision-based
// expert, while the wrong-instruction control makes it fail; a folder or a merge never mixes perturbation settings.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { gaussianBlur, noisyImage, parseSpec, perturbationSets, templateParaphrases, drawEpisode, type PerturbationSet } from '../src/eval/perturb.js';
import { mergeInto } from '../src/eval/merge.js';
import { readAllRecords, readRecords } from '../src/eval/results.js';
import { runEval } from '../src/eval/run.js';
import { scriptedPolicy } from '../src/eval/scripted_policy.js';
import type { ChunkPolicy } from '../src/eval/chunk_policy.js';
import type { PolicyInput } from '../src/policy/policy.js';
import { SidecarWorker } from '../src/eval/sidecar.js';
import { actionLog, testEvalOptions } from './helpers/eval.js';
import { repoRoot } from './helpers/fixtures.js';
import { tempDir } from './helpers/python.js';

const { dir: work, cleanup } = tempDir('eval-perturb');
after(cleanup);
const MAIN = join(repoRoot(), 'dist', 'src', 'cli', 'main.js');

/** The reach expert, noting every instruction and agentview image it is given. */
function watching(inner: ChunkPolicy): ChunkPolicy & { seen: { instruction: string; agentview: Uint8Array }[] } {
  const seen: { instruction: string; agentview: Uint8Array }[] = [];
  return Object.assign(Object.create(inner) as ChunkPolicy, {
    seen,
    predictChunks: (inputs: readonly PolicyInput[], envs?: readonly number[], seeds?: readonly number[]) => {
      for (const i of inputs) seen.push({ instruction: i.instruction, agentview: i.history[i.history.length - 1]!.images.agentview! });
      return inner.predictChunks(inputs, envs, seeds);
    },
  });
}

test('specs: canonical names, one table of levels, refusals that name the problem', () => {
  assert.deepEqual(perturbationSets(['camera:level=2', 'noise:kind=jpeg,level=1', 'language:mode=wrong', 'layout:level=1+lighting:level=3']).map((s) => s.name),
    ['camera:level=2', 'noise:kind=jpeg,level=1', 'language:mode=wrong', 'layout:level=1+lighting:level=3']);
  assert.deepEqual(parseSpec(' noise:level=2,kind=blur '), { dim: 'noise', level: 2, kind: 'blur' });
  assert.deepEqual(perturbationSets(['camera:level=moderate', 'lighting:level=none']).map((x) => x.name), ['camera:level=2', 'lighting:level=0']);
  for (const [bad, why] of [['camera', /camera needs level=0..3/], ['camera:level=4', /level must be 0..3 or none\|mild\|moderate\|severe, got '4'/], ['zoom:level=1', /unknown dimension 'zoom'/],
    ['noise:level=1', /noise needs kind=gaussian\|blur\|jpeg/], ['language:mode=shuffle', /language needs mode=paraphrase\|wrong, got 'shuffle'/],
    ['camera:level=1,fov=2', /camera takes level, not 'fov'/], ['language:mode=wrong,file=x.yaml', /only with mode=paraphrase/]] as const)
    assert.throws(() => perturbationSets([bad]), why, bad);
  assert.throws(() => perturbationSets(['camera:level=1', 'camera:level=1']), /the set 'camera:level=1' is given twice/);
  assert.throws(() => perturbationSets(['camera:level=1+camera:level=2']), /gives camera twice/);
  const yml = join(work, 'sets.yaml');
  writeFileSync(yml, 'moved: layout:level=2\nmoved-and-dark: [layout:level=2, lighting:level=1]\n');
  assert.deepEqual(perturbationSets([yml]).map((s) => [s.name, s.specs.map((x) => x.dim)]), [['moved', ['layout']], ['moved-and-dark', ['layout', 'lighting']]]);
  writeFileSync(yml, 'bad: [camera:level=9]\n');
  assert.throws(() => perturbationSets([yml]), /sets\.yaml: set 'bad' 'camera:level=9': level must be 0..3/);
  // The CLI refuses a bad spec with a usage error (exit 2) before anything runs.
  const r = spawnSync(process.execPath, [MAIN, 'eval', '--policy', 'scripted:reach', '--sim', 'test', '--suite', 'libero_goal', '--out', join(work, 'x'), '--perturb', 'camera:level=7'], { encoding: 'utf8' });
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /--perturb 'camera:level=7': level must be 0\.\.3/);
});

test('draws: seeded per episode, the same for the same episode, different for another; paraphrases keep the object words', () => {
  const set: PerturbationSet = perturbationSets(['camera:level=2+texture:level=1+robot_init:level=2+language:mode=paraphrase'])[0];
  const ctx = { seed: 7, suite: 'libero_goal', task: 1, episode: 3, language: 'pick up the green block', taskName: 'pick_up_the_green_block', suiteLanguages: [] };
  const a = drawEpisode(set, ctx), b = drawEpisode(set, ctx), c = drawEpisode(set, { ...ctx, episode: 4 });
  assert.deepEqual(a, b);
  assert.notDeepEqual(a.applied, c.applied);
  const cam = a.sim!.camera as { pos_offset: number[]; axis_angle: number[] };
  assert.ok(Math.abs(Math.hypot(...cam.pos_offset) - 0.05) < 1e-9, 'level 2: 5 cm');
  assert.ok(Math.abs(Math.hypot(...cam.axis_angle) - (5 * Math.PI) / 180) < 1e-9, 'level 2: 5 degrees');
  assert.ok(Math.abs(Math.hypot(...(a.sim!.texture as Record<string, number[]>).table) - 0.15) < 1e-9, 'level 1: rgb distance 0.15');
  assert.equal((a.sim!.robot_init as { joint_noise: number[] }).joint_noise.length, 7);
  assert.notEqual(a.instruction, ctx.language);
  assert.match(a.instruction, /\bgreen block\b/);
  const ps = templateParaphrases('pick up the black bowl and place it on the plate');
  assert.ok(ps.length > 10 && !ps.includes('pick up the black bowl and place it on the plate'));
  assert.ok(ps.includes('place it on the plate, after you pick up the black bowl') && ps.includes('please grab the black bowl and place it on the plate'), ps.join('\n'));
  // The paraphrase file: an entry per task name (or instruction); a missing task is named.
  const f = join(work, 'para.yaml');
  writeFileSync(f, 'pick_up_the_green_block: ["grasp the green cube"]\n');
  const fs = perturbationSets([`language:mode=paraphrase,file=${f}`])[0];
  assert.equal(drawEpisode(fs, ctx).instruction, 'grasp the green cube');
  assert.throws(() => drawEpisode(fs, { ...ctx, taskName: 'pick_up_the_red_block', language: 'pick up the red block' }), /has no entry for libero_goal task 1 \('pick_up_the_red_block'/);
});

test('image noise: gaussian of the level std, blur that keeps the mean, a real JPEG round trip; level 0 is the identity', () => {
  const n = 32;
  const img = new Uint8Array(n * n * 3);
  for (let i = 0; i < img.length; i++) img[i] = 60 + ((i * 37) % 131);
  const g = noisyImage(img, n, { kind: 'gaussian', level: 2, magnitude: 13, seed: 5 }, 3, 0);
  let s2 = 0;
  for (let i = 0; i < img.length; i++) s2 += (g[i] - img[i]) ** 2;
  assert.ok(Math.abs(Math.sqrt(s2 / img.length) - 13) < 1, `std ${Math.sqrt(s2 / img.length)}`);
  assert.deepEqual(noisyImage(img, n, { kind: 'gaussian', level: 2, magnitude: 13, seed: 5 }, 3, 0), g, 'seeded');
  assert.notDeepEqual(noisyImage(img, n, { kind: 'gaussian', level: 2, magnitude: 13, seed: 5 }, 4, 0), g, 'another step, other noise');
  // Blur: a separable gaussian; the reference here is the direct 2-D sum (clamped edges) written from the definition.
  const sigma = 1, r = 3;
  const blurred = gaussianBlur(img, n, sigma);
  const at = (y: number, x: number, c: number) => img[(Math.max(0, Math.min(n - 1, y)) * n + Math.max(0, Math.min(n - 1, x))) * 3 + c];
  for (const [y, x, c] of [[0, 0, 0], [10, 17, 1], [31, 5, 2]]) {
    let num = 0, den = 0;
    for (let dy = -r; dy <= r; dy++) for (let dx = -r; dx <= r; dx++) (num += Math.exp(-(dx * dx + dy * dy) / 2) * at(y + dy, x + dx, c), den += Math.exp(-(dx * dx + dy * dy) / 2));
    assert.ok(Math.abs(blurred[(y * n + x) * 3 + c] - num / den) <= 1, `blur at ${y},${x},${c}`);
  }
  const j = noisyImage(img, n, { kind: 'jpeg', level: 3, magnitude: 10, seed: 0 }, 0, 0);
  let mad = 0;
  for (let i = 0; i < img.length; i++) mad += Math.abs(j[i] - img[i]);
  assert.ok(mad / img.length > 2 && mad / img.length < 60, `jpeg q10 mean abs diff ${mad / img.length}`);
  for (const kind of ['gaussian', 'blur', 'jpeg'] as const) assert.equal(noisyImage(img, n, { kind, level: 0, magnitude: kind === 'jpeg' ? 100 : 0, seed: 1 }, 0, 0), img);
});

test('test back-end: each simulator dimension changes the frame where it should and nowhere else', async () => {
  const s = await SidecarWorker.start({ backend: 'test' });
  try {
    const info = await s.open({ suite: 'libero_goal', task: 0, resolution: 64, seed: 7, horizon: 100 });
    assert.deepEqual(info.suite_languages!.slice(0, 5), ['pick up the red block', 'pick up the green block', 'pick up the blue block', 'pick up the yellow block', 'pick up the red block']);
    const base = await s.reset({ initIndex: 0, seed: 7 });
    const diff = (a: Uint8Array, b: Uint8Array) => {
      let k = 0;
      for (let i = 0; i < a.length; i += 3) if (a[i] !== b[i] || a[i + 1] !== b[i + 1] || a[i + 2] !== b[i + 2]) k++;
      return k / (a.length / 3);
    };
    const A = 'agentview_image', W = 'robot0_eye_in_hand_image';
    const tablePx = (img: Uint8Array) => Array.from({ length: img.length / 3 }, (_, p) => img[3 * p] === 200 && img[3 * p + 1] === 180 && img[3 * p + 2] === 150);
    const withP = async (perturb: Record<string, unknown>) => s.reset({ initIndex: 0, seed: 7, perturb });
    const cam = await withP({ camera: { pos_offset: [0.05, 0, 0], axis_angle: [0, 0, 0] } });
    assert.ok(diff(base.obs[A] as Uint8Array, cam.obs[A] as Uint8Array) > 0.02, 'the camera moved: agentview changes');
    assert.equal(diff(base.obs[W] as Uint8Array, cam.obs[W] as Uint8Array), 0, 'the wrist camera is left alone');
    assert.deepEqual(cam.obs.robot0_eef_pos, base.obs.robot0_eef_pos);
    const tex = await withP({ texture: { table: [0.3, 0, 0], floor: [0, 0, 0], walls: [0, 0, 0] } });
    const onTable = tablePx(base.obs[A] as Uint8Array);
    const ta = tex.obs[A] as Uint8Array, ba = base.obs[A] as Uint8Array;
    for (let p = 0; p < onTable.length; p++) {
      const same = ta[3 * p] === ba[3 * p] && ta[3 * p + 1] === ba[3 * p + 1] && ta[3 * p + 2] === ba[3 * p + 2];
      assert.equal(same, !onTable[p], `pixel ${p}: a table colour change differs exactly on the table`);
    }
    assert.deepEqual(Array.from(ta.subarray(0, 3)), [255, 180, 150], 'table red + 0.3 x 255, clipped');
    const light = await withP({ lighting: { intensity_scale: 0.5, direction_axis_angle: [0, 0, 0], ambient_add: 0 } });
    assert.ok(diff(ba, light.obs[A] as Uint8Array) > 0.95 && diff(base.obs[W] as Uint8Array, light.obs[W] as Uint8Array) > 0.95, 'light changes both cameras everywhere');
    assert.deepEqual(Array.from((light.obs[A] as Uint8Array).subarray(0, 3)), [100, 90, 75]);
    const lay = await withP({ layout: { shift_m: 0.05, yaw_deg: 20, seed: 3 } });
    const moved = (lay.perturbation!.layout as { moved_xy_m: number[][]; draws: number }).moved_xy_m;
    for (const m of moved) assert.ok(Math.abs(Math.hypot(m[0], m[1]) - 0.05) < 1e-12, 'every block moved 5 cm');
    assert.deepEqual(lay.state!.slice(0, 9), base.state!.slice(0, 9), 'the robot did not move');
    for (let b = 0; b < 4; b++) assert.ok(Math.abs(Math.hypot(lay.state![9 + 3 * b] - base.state![9 + 3 * b], lay.state![10 + 3 * b] - base.state![10 + 3 * b]) - 0.05) < 1e-12);
    assert.deepEqual(lay.state, (await withP({ layout: { shift_m: 0.05, yaw_deg: 20, seed: 3 } })).state, 'the same seed, the same placement');
    // A shift that cannot fit is refused (the episode fails with the error), never run with overlapping blocks.
    await assert.rejects(withP({ layout: { shift_m: 0.5, yaw_deg: 0, seed: 1 } }), /layout: no valid placement .* in 100 draws/);
    const rob = await withP({ robot_init: { joint_noise: [0.02, -0.04, 0.02, 0, 0, 0, 0] } });
    assert.deepEqual((rob.obs.robot0_eef_pos as number[]).map((x, i) => Math.round((x - (base.obs.robot0_eef_pos as number[])[i]) * 1e6)), [10000, -20000, 10000]);
    assert.deepEqual(rob.state!.slice(9), base.state!.slice(9), 'the blocks did not move');
    // Level 0 of every simulator dimension: the very same frames and state as no perturbation.
    const zero = await withP({ camera: { pos_offset: [0, 0, 0], axis_angle: [0, 0, 0] }, lighting: { intensity_scale: 1, direction_axis_angle: [0, 0, 0], ambient_add: 0 },
      texture: { table: [0, 0, 0], floor: [0, 0, 0], walls: [0, 0, 0] }, layout: { shift_m: 0, yaw_deg: 0, seed: 9 }, robot_init: { joint_noise: [0, 0, 0, 0, 0, 0, 0] } });
    assert.deepEqual(zero.obs, base.obs);
    assert.deepEqual(zero.state, base.state);
    await assert.rejects(withP({ zoom: {} }), /unknown dimension\(s\) \['zoom'\]/);
  } finally {
    await s.close();
  }
});

const LEVEL0 = ['camera:level=0', 'lighting:level=0', 'texture:level=0', 'layout:level=0', 'robot_init:level=0', 'noise:kind=gaussian,level=0', 'noise:kind=blur,level=0', 'noise:kind=jpeg,level=0'];

test('level 0 of every dimension reproduces the standard episode exactly (records and every action)', async () => {
  const log = join(work, 'level0.actions.jsonl');
  const sets = perturbationSets(LEVEL0);
  await runEval(scriptedPolicy('reach'), testEvalOptions(join(work, 'level0'), { tasks: [1], episodesPerTask: 2, perturbations: sets }, { RDT_TEST_ENV_ACTION_LOG: log }));
  const recs = readRecords(join(work, 'level0', 'episodes.jsonl'));
  assert.equal(recs.length, 2 * (1 + sets.length));
  const eps = actionLog(log);
  assert.equal(eps.length, recs.length);
  const std = recs.filter((r) => !r.perturbation);
  assert.deepEqual(std.map((r) => r.success), [true, true]);
  for (const r of recs.filter((x) => x.perturbation)) {
    const s = std[r.episode];
    assert.deepEqual([r.success, r.steps, r.env_steps, r.replans, r.init], [s.success, s.steps, s.env_steps, s.replans, s.init], r.perturbation!.set);
    assert.deepEqual(eps[recs.indexOf(r)].map((a) => a.action), eps[recs.indexOf(s)].map((a) => a.action), `${r.perturbation!.set}: the same actions`);
  }
});

test('every dimension end to end: applied, recorded, reproducible, reported beside the standard run; layout still solved, the wrong instruction fails', async () => {
  const specs = ['camera:level=3', 'lighting:level=2', 'texture:level=2', 'layout:level=2', 'robot_init:level=2', 'noise:kind=gaussian,level=1', 'noise:kind=blur,level=2',
    'noise:kind=jpeg,level=2', 'language:mode=paraphrase', 'language:mode=wrong'];
  const sets = perturbationSets(specs);
  const out = join(work, 'all');
  const policy = watching(scriptedPolicy('reach'));
  const r = await runEval(policy, testEvalOptions(out, { tasks: [2], episodesPerTask: 3, perturbations: sets, maxSteps: 40 }));
  const recs = readRecords(join(out, 'episodes.jsonl'));
  assert.equal(recs.length, 3 * (1 + specs.length));
  const by = (set: string | null) => recs.filter((x) => (x.perturbation?.set ?? null) === set);
  assert.deepEqual(by(null).map((x) => x.success), [true, true, true]);
  // The vision-based expert finds its block wherever the layout puts it, and follows a paraphrase (the colour word
  // stays); told another task's goal, it grasps the wrong block every time.
  assert.deepEqual(by('layout:level=2').map((x) => x.success), [true, true, true]);
  assert.deepEqual(by('language:mode=paraphrase').map((x) => x.success), [true, true, true]);
  assert.deepEqual(by('language:mode=wrong').map((x) => x.success), [false, false, false]);
  for (const x of by('language:mode=wrong')) assert.notEqual(x.perturbation!.instruction, x.language);
  // The camera moved 10 cm: the expert's fixed pixel-to-table map aims beside the block.
  assert.ok(by('camera:level=3').filter((x) => x.success).length < 3);
  // Recorded: every perturbed record names its set, specs, seed, the values drawn and what the simulator applied.
  for (const x of recs.filter((y) => y.perturbation)) {
    const p = x.perturbation!;
    assert.equal(typeof p.seed, 'number');
    const dim = (p.specs[0] as { dim: string }).dim;
    assert.ok(dim in p.applied, `${p.set}: ${JSON.stringify(p.applied)}`);
    if (['camera', 'lighting', 'texture', 'layout', 'robot_init'].includes(dim)) assert.ok(p.sim_applied && dim in p.sim_applied, `${p.set}: the sidecar reports it`);
    else assert.equal(p.sim_applied, null);
  }
  // The policy was given the variants: paraphrases (blue kept) and other tasks' goals.
  assert.ok(policy.seen.some((s) => s.instruction.includes('blue') && s.instruction !== 'pick up the blue block'), 'a paraphrase reached the policy');
  assert.ok(policy.seen.some((s) => !s.instruction.includes('blue')), 'the wrong instruction reached the policy');
  // Reproducible: the same run again (another folder, episodes 1-2 of the sets that draw most) draws the same
  // perturbations and gets the same outcomes.
  const again = join(work, 'all-again');
  const some = ['camera:level=3', 'layout:level=2', 'noise:kind=gaussian,level=1', 'language:mode=paraphrase'];
  await runEval(scriptedPolicy('reach'), testEvalOptions(again, { tasks: [2], episodesPerTask: 3, shard: { index: 1, count: 2 }, perturbations: perturbationSets(some), maxSteps: 40 }));
  const recs2 = readAllRecords(again);
  const strip = (x: (typeof recs)[number]) => JSON.stringify([x.task, x.episode, x.success, x.steps, x.replans, x.perturbation ?? null]);
  assert.ok(recs2.length >= 7);
  for (const x of recs2) assert.ok(recs.map(strip).includes(strip(x)), strip(x));
  // Reported: summary.md leads with standard vs perturbed (Wilson intervals, relative drop); robustness.csv per task.
  const md = readFileSync(join(out, 'summary.md'), 'utf8');
  assert.match(md, /^# LIBERO evaluation\n\n## Robustness: standard vs perturbed\n/);
  // Wilson at k = n (and k = 0) in closed form: lower n / (n + z^2) (upper z^2 / (n + z^2)).
  const z2 = 1.959963984540054 ** 2;
  const [lo, hi] = [(100 * 3) / (3 + z2), 100].map((v) => v.toFixed(1));
  assert.match(md, new RegExp(`^\\| standard \\| - \\| - \\| 100\\.0 \\| ${lo}-${hi} \\| 3 / 3 \\| - \\|$`, 'm'));
  const [wlo, whi] = [0, (100 * z2) / (3 + z2)].map((v) => v.toFixed(1));
  assert.match(md, new RegExp(`^\\| language:mode=wrong \\| language/wrong \\| - \\| 0\\.0 \\| ${wlo}-${whi} \\| 0 / 3 \\| 100\\.0% \\|$`, 'm'));
  assert.match(md, /^\| layout:level=2 \| layout \| 2 \| 100\.0 \| .* \| 3 \/ 3 \| 0\.0% \|$/m);
  assert.match(md, /^\| noise:kind=blur,level=2 \| noise\/blur \| 2 \| /m);
  assert.equal(r.summary.suites.libero_goal.episodes, 3, 'the standard numbers count standard episodes only');
  const csv = readFileSync(join(out, 'robustness.csv'), 'utf8').trim().split('\n');
  assert.equal(csv[0], 'suite,task,task_name,condition,dimension,level,episodes,successes,success_rate,ci95_low,ci95_high,relative_drop');
  const w3 = (z2 / (3 + z2)).toFixed(4);
  assert.ok(csv.includes(`libero_goal,2,pick_up_the_blue_block,language:mode=wrong,language/wrong,-,3,0,0.0000,0.0000,${w3},1.0000`), csv.join('\n'));
  assert.equal(csv.length, 1 + (1 + specs.length) * 2);
});

test('image noise reaches the policy: every image it sees', async () => {
  const policy = watching(scriptedPolicy('reach'));
  await runEval(policy, testEvalOptions(join(work, 'noise'), { tasks: [0], episodesPerTask: 1, maxSteps: 20, perturbations: perturbationSets(['noise:kind=gaussian,level=3']) }));
  const colours = (img: Uint8Array) => new Set(Array.from({ length: img.length / 3 }, (_, p) => (img[3 * p] << 16) | (img[3 * p + 1] << 8) | img[3 * p + 2])).size;
  const std = policy.seen.slice(0, 1), noisy = policy.seen.slice(-1);
  assert.ok(colours(std[0].agentview) < 10, 'the standard render: a few flat colours');
  assert.ok(colours(noisy[0].agentview) > 1000, 'with noise: nearly every pixel its own colour');
  assert.equal(policy.seen.length % 2, 0, 'as many requests in the noisy episode as in the standard one (the expert copes with this noise)');
});

test('videos name the perturbation; a folder and a merge refuse another run\'s perturbation settings', async () => {
  const out = join(work, 'vid');
  const o = testEvalOptions(out, { tasks: [1], episodesPerTask: 1, maxSteps: 5, videos: 'all', perturbations: perturbationSets(['noise:kind=blur,level=1']) });
  await runEval(scriptedPolicy('reach'), o);
  assert.deepEqual(readdirSync(join(out, 'videos', 'libero_goal')).sort(), ['task01_init00_ep00_failure.mp4', 'task01_init00_ep00_noise-kind=blur-level=1_failure.mp4']);
  await assert.rejects(runEval(scriptedPolicy('reach'), { ...o, perturbations: perturbationSets(['noise:kind=blur,level=2']) }),
    /eval_config\.json: this folder holds an evaluation with perturbations = .*"level":1.*, this run has .*"level":2/);
  await assert.rejects(runEval(scriptedPolicy('reach'), { ...o, perturbations: [] }), /this folder holds an evaluation with perturbations = /);
  const other = join(work, 'vid-other');
  await runEval(scriptedPolicy('reach'), { ...o, out: other, videos: 'none', perturbations: perturbationSets(['noise:kind=blur,level=2']) });
  assert.throws(() => mergeInto(join(work, 'merged'), [out, other]), /has perturbations = .*these folders hold different evaluations/);
  assert.ok(!existsSync(join(work, 'merged', 'episodes.jsonl')));
});
