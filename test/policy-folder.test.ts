// The self-describing policy folder end to end: train the tiny model on generated data, then load only a saved
// folder in a FRESH process and reproduce the training-time actions of a held-out sample; every recorded
// convention, changed, changes the result or is refused; folders without policy.json, LoRA folders and EMA folders.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { maxAbsDiff } from './helpers/assert-close.js';
import { cpSync, existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import * as torch from '../src/engine/index.js';
import { writeSyntheticSuite } from '../src/data/synthetic.js';
import { LiberoDataset } from '../src/data/dataset.js';
import type { LiberoFile } from '../src/data/hdf5/libero_file.js';
import { decodeAction, type ObsFrame } from '../src/data/adapter.js';
import { axisAngleToMat } from '../src/data/rotation.js';
import { loadConfig, type TrainConfig } from '../src/train/config.js';
import { train } from '../src/train/trainer.js';
import { prepareInputs } from '../src/train/conditioning.js';
import { loadRdtCheckpoint } from '../src/model/checkpoint.js';
import { demoEncoderIdentity } from '../src/encoders/demo.js';
import { createEncoders } from '../src/encoders/factory.js';
import { POLICY_FILE, loadPolicy, type PolicyInput } from '../src/policy/index.js';
import { RdtError } from '../src/util/errors.js';
import { tempDir } from './helpers/python.js';
import { repoRoot } from './helpers/fixtures.js';

const { dir: work, cleanup } = tempDir('policy');
after(cleanup);
const root = join(work, 'data');
const out = join(work, 'run');
const SEED = 123;
let cfg: TrainConfig;

before(async () => {
  await writeSyntheticSuite({ root, suite: 'libero_goal', tasks: 2, demos: 3, meanLength: 30, size: 32, seed: 5 });
  cfg = loadConfig({
    overrides: {
      model: 'tiny', encoders: 'demo', output_dir: out, train_batch_size: 4, gradient_accumulation_steps: 1,
      max_train_steps: 3, learning_rate: 1e-3, checkpointing_period: 3, sample_period: 0, report_to: ['none'], mixed_precision: 'no',
      data: { dataset_root: root, num_workers: 0, holdout_demos_per_task: 1, action_encoding: 'eef_target_pose' },
    },
  });
  await train(cfg, { verbose: false });
});

/** The held-out sample as the trainer's dataset builds it, plus its raw observation history and future measured poses. */
async function heldOut(): Promise<{ ds: LiberoDataset; i: number; input: PolicyInput; poses: { pos: number[]; aa: number[] }[] }> {
  const ds = await LiberoDataset.open({
    root, adapter: { encoding: cfg.data.action_encoding, ctrlFreq: cfg.ctrl_freq },
    index: { align: 'auto', skipLeadingIdle: cfg.data.skip_idle_steps, dropNoops: cfg.data.drop_noops },
    split: { holdoutPerTask: 1, part: 'holdout' },
  });
  const i = 5; // step 5 of the first held-out demo: a full history, and a chunk that runs past the episode end
  const { episode, k } = ds.index.locate(i);
  const ep = ds.index.episodes[episode];
  const f = ds.files[ep.file] as LiberoFile;
  const ld = f.lowdim(ep.demo);
  const history: (ObsFrame | null)[] = [];
  for (let h = 0; h < ds.cfg.historySize; h++) {
    const kk = k - ds.cfg.historySize + 1 + h;
    if (kk < 0) {
      history.push(null);
      continue;
    }
    const t = ep.obs[kk];
    history.push({
      robot: { eefPos: Array.from(ld.eePos.subarray(t * 3, t * 3 + 3)), eefAxisAngle: Array.from(ld.eeOri.subarray(t * 3, t * 3 + 3)), gripperQpos: Array.from(ld.gripper.subarray(t * 2, t * 2 + 2)) },
      images: { agentview: f.frames(ep.demo, 'agentview', t, t + 1).slice(), eyeInHand: f.frames(ep.demo, 'eye_in_hand', t, t + 1).slice() },
    });
  }
  // The pose measured before each chunk step (what training encoded against); past the episode end, the last one.
  const poses = Array.from({ length: ds.cfg.chunkSize }, (_, s) => {
    const t = ep.obs[Math.min(k + s, ep.obs.length - 1)];
    return { pos: Array.from(ld.eePos.subarray(t * 3, t * 3 + 3)), aa: Array.from(ld.eeOri.subarray(t * 3, t * 3 + 3)) };
  });
  return { ds, i, input: { history, instruction: ds.instructions[ep.file] }, poses };
}

/** Training-time actions: the saved weights + the dataset sample through prepareInputs and predictAction, decoded per step. */
function trainingTimeActions(weights: string, ds: LiberoDataset, i: number, poses: { pos: number[]; aa: number[] }[]): { raw: Float64Array; actions: Float64Array } {
  const { runner } = loadRdtCheckpoint(weights);
  const enc = createEncoders(demoEncoderIdentity(runner.config));
  runner.eval();
  try {
    const batch = ds.sample(i);
    const raw = torch.noGrad(() => torch.scope(() => runner.predictAction(prepareInputs(batch, enc, null), { generator: new torch.Generator(SEED) }).toFloat64()));
    const actions = new Float64Array(64 * 7);
    for (let s = 0; s < 64; s++) actions.set(decodeAction(ds.cfg, raw, s * 128, { pos: poses[s].pos, R: axisAngleToMat(poses[s].aa) }), s * 7);
    return { raw, actions };
  } finally {
    runner.dispose();
    enc.text.dispose();
    enc.vision.dispose();
  }
}

/** Run loadPolicy + predict in a fresh node process that sees only `dir` and the observation. */
function freshProcess(dir: string, input: PolicyInput, poses: { pos: number[]; aa: number[] }[]): { raw: number[]; actions: number[] } {
  const obsFile = join(work, 'obs.json');
  const enc = (u: Uint8Array | null) => (u ? Buffer.from(u).toString('base64') : null);
  writeFileSync(obsFile, JSON.stringify({
    instruction: input.instruction, poses,
    history: input.history.map((f) => f && { robot: f.robot, images: { agentview: enc(f.images.agentview), eyeInHand: enc(f.images.eyeInHand) } }),
  }));
  const policyJs = pathToFileURL(join(repoRoot(), 'dist', 'src', 'policy', 'index.js')).href;
  const rotJs = pathToFileURL(join(repoRoot(), 'dist', 'src', 'data', 'rotation.js')).href;
  const child = spawnSync(process.execPath, ['--input-type=module', '-e', `
    import { readFileSync } from 'node:fs';
    const { loadPolicy } = await import(${JSON.stringify(policyJs)});
    const { axisAngleToMat } = await import(${JSON.stringify(rotJs)});
    const o = JSON.parse(readFileSync(${JSON.stringify(obsFile)}, 'utf8'));
    const img = (s) => (s === null ? null : new Uint8Array(Buffer.from(s, 'base64')));
    const history = o.history.map((f) => f && { robot: f.robot, images: { agentview: img(f.images.agentview), eyeInHand: img(f.images.eyeInHand) } });
    const policy = loadPolicy(${JSON.stringify(dir)});
    const poses = [o.poses.map((p) => ({ pos: p.pos, R: axisAngleToMat(p.aa) }))];
    const r = policy.predict({ history, instruction: o.instruction }, { seed: ${SEED}, raw: true, poses });
    process.stdout.write(JSON.stringify({ raw: Array.from(r.raw), actions: Array.from(r.actions) }));
    policy.dispose();
  `], { encoding: 'utf8', maxBuffer: 1 << 26 });
  assert.equal(child.status, 0, child.stderr);
  return JSON.parse(child.stdout);
}


test('every saved folder holds policy.json with the run\'s conventions', () => {
  for (const d of ['checkpoint-3', join('checkpoint-3', 'ema'), 'final']) assert.ok(existsSync(join(out, d, POLICY_FILE)), d);
  const p = JSON.parse(readFileSync(join(out, 'final', POLICY_FILE), 'utf8'));
  assert.equal(p.format, 'rdt-libero.policy');
  assert.equal(p.version, 1);
  assert.deepEqual(p.action, { encoding: 'eef_target_pose', chunk_size: 64, ctrl_freq: 20, exec_horizon: 16 });
  assert.deepEqual(p.state, { use_joints: false, slots: [10, 30, 31, 32, 33, 34, 35, 36, 37, 38] });
  assert.deepEqual(p.cameras, { slots: { agentview: 0, eye_in_hand: 1 }, orientation: 'flip_v', height: 32, width: 32, history: 2 });
  assert.deepEqual(p.encoders.vision, { kind: 'demo', token_dim: 24, grid: 3, cells: 4, seed: 1234 });
  assert.deepEqual(p.encoders.text, { kind: 'demo', token_dim: 32, max_length: 16, vocab: 4096, seed: 4321 });
  assert.equal(p.lora, null);
  assert.deepEqual(p.origin, { run: 'run', step: 3, ema: false, base_model: 'tiny', data_format: 'hdf5' });
  assert.equal(JSON.parse(readFileSync(join(out, 'checkpoint-3', 'ema', POLICY_FILE), 'utf8')).origin.ema, true);
  // The statistics are the run's own (the cached dataset_stat.json the trainer computed).
  const cached = readdirSync(join(out, 'stats')).filter((n) => n.startsWith('dataset_stat-'));
  assert.equal(cached.length, 1);
  const statsFile = JSON.parse(readFileSync(join(out, 'stats', cached[0]), 'utf8'));
  for (const k of ['state_mean', 'state_std', 'action_mean', 'action_std', 'action_min', 'action_max']) assert.deepEqual(p.statistics[k], statsFile.libero[k], k);
});

test('a fresh process loading only final/ (and checkpoint-3/ema/) reproduces the training-time actions of a held-out sample', async () => {
  const { ds, i, input, poses } = await heldOut();
  try {
    for (const d of ['final', join('checkpoint-3', 'ema')]) {
      const want = trainingTimeActions(join(out, d), ds, i, poses);
      const got = freshProcess(join(out, d), input, poses);
      assert.ok(maxAbsDiff(got.raw, want.raw) <= 1e-6, `${d}: raw chunk differs by ${maxAbsDiff(got.raw, want.raw)}`);
      assert.ok(maxAbsDiff(got.actions, want.actions) <= 1e-6, `${d}: decoded actions differ by ${maxAbsDiff(got.actions, want.actions)}`);
      assert.ok(want.actions.some((x) => Math.abs(x) > 1e-3), 'the actions are not trivially zero');
    }
    // EMA and raw weights differ after 3 steps: the two folders are told apart.
    const a = trainingTimeActions(join(out, 'final'), ds, i, poses).raw;
    const b = trainingTimeActions(join(out, 'checkpoint-3', 'ema'), ds, i, poses).raw;
    assert.ok(maxAbsDiff(a, b) > 1e-6);
  } finally {
    ds.close();
  }
});

type Mutation = { field: string; set: (p: Record<string, any>) => void };

test('changing any recorded convention changes the result or is refused', async () => {
  const { ds, input } = await heldOut();
  ds.close();
  const base = join(out, 'final');
  const original = JSON.parse(readFileSync(join(base, POLICY_FILE), 'utf8'));
  const run = (dir: string) => {
    const p = loadPolicy(dir);
    try {
      return p.predict(input, { seed: SEED, raw: true });
    } finally {
      p.dispose();
    }
  };
  const ref = run(base);
  const mutations: Mutation[] = [
    { field: 'format', set: (p) => (p.format = 'rdt-libero.policy2') },
    { field: 'version', set: (p) => (p.version = 2) },
    { field: 'action.encoding', set: (p) => (p.action.encoding = 'eef_velocity') },
    { field: 'action.chunk_size', set: (p) => (p.action.chunk_size = 32) },
    { field: 'action.ctrl_freq', set: (p) => (p.action.ctrl_freq = 10) },
    // Applied by the evaluation, not by predict (its default exec horizon: test/eval-policy.test.ts); here, one
    // longer than the chunk is refused.
    { field: 'action.exec_horizon', set: (p) => (p.action.exec_horizon = 65) },
    { field: 'state.use_joints', set: (p) => (p.state.use_joints = true) },
    { field: 'state.slots', set: (p) => (p.state.slots = [10, 30, 31, 32]) },
    { field: 'cameras.slots', set: (p) => (p.cameras.slots = { agentview: 1, eye_in_hand: 0 }) },
    { field: 'cameras.orientation', set: (p) => (p.cameras.orientation = 'rot180') },
    { field: 'cameras.height', set: (p) => (p.cameras.height = 16) },
    { field: 'cameras.width', set: (p) => (p.cameras.width = 64) },
    { field: 'cameras.history', set: (p) => (p.cameras.history = 1) },
    { field: 'statistics.action_encoding', set: (p) => (p.statistics.action_encoding = 'raw_delta') },
    { field: 'statistics.state_max', set: (p) => (p.statistics.state_max[0] = 1) },
    // loadPolicy applies it: the model then reads the state and writes actions as z-scores of the statistics.
    { field: 'normalization', set: (p) => (p.normalization = 'zscore') },
    { field: 'encoders.text.kind', set: (p) => (p.encoders.text.kind = 'official') },
    { field: 'encoders.text.token_dim', set: (p) => (p.encoders.text.token_dim = 64) },
    { field: 'encoders.text.max_length', set: (p) => (p.encoders.text.max_length = 17) },
    { field: 'encoders.text.vocab', set: (p) => (p.encoders.text.vocab = 1000) },
    { field: 'encoders.text.seed', set: (p) => (p.encoders.text.seed = 1) },
    { field: 'encoders.vision.kind', set: (p) => (p.encoders.vision.kind = 'siglip') },
    { field: 'encoders.vision.token_dim', set: (p) => (p.encoders.vision.token_dim = 12) },
    { field: 'encoders.vision.grid', set: (p) => (p.encoders.vision.grid = 2) },
    { field: 'encoders.vision.cells', set: (p) => (p.encoders.vision.cells = 2) },
    { field: 'encoders.vision.seed', set: (p) => (p.encoders.vision.seed = 1) },
    { field: 'lora', set: (p) => (p.lora = { rank: 4, alpha: 4, targets: ['attn.qkv'] }) },
    { field: 'unknown key', set: (p) => (p.action.chunk = 64) },
  ];
  // Recorded for people and for later runs, not applied at inference: provenance, and the statistics' values (with
  // normalization 'none', as here, RDT normalises nothing with them, rdt-spec 5.6; their consistency with the encoding
  // and state slots is checked above; with 'zscore' they are applied, the mutation above).
  const notApplied = ['origin.', 'statistics.'];
  const leaves = (o: unknown, path = ''): string[] =>
    o !== null && typeof o === 'object' && !Array.isArray(o) && !(path === 'cameras.slots.')
      ? Object.entries(o as object).flatMap(([k, v]) => leaves(v, `${path}${k}.`))
      : [path.slice(0, -1)];
  const covered = new Set(mutations.map((m) => m.field));
  const missing = leaves(original).filter((f) => !covered.has(f) && !notApplied.some((p) => f.startsWith(p)));
  assert.deepEqual(missing, [], 'every convention field has a mutation in this test');

  const variant = join(work, 'variant');
  cpSync(base, variant, { recursive: true });
  const outcomes: string[] = [];
  for (const m of mutations) {
    const p = structuredClone(original);
    m.set(p);
    writeFileSync(join(variant, POLICY_FILE), JSON.stringify(p));
    let r;
    try {
      r = run(variant);
    } catch (e) {
      assert.ok(e instanceof RdtError, `${m.field}: refused with a layer error, not ${(e as Error).stack}`);
      assert.doesNotMatch((e as Error).message, /\n/, `${m.field}: one-line error`);
      outcomes.push(`${m.field}: refused (${(e as Error).message.slice(0, 90)})`);
      continue;
    }
    const d = Math.max(maxAbsDiff(r.raw!, ref.raw!), maxAbsDiff(r.actions, ref.actions));
    assert.ok(d > 1e-6, `${m.field}: changed in the file, but the result is the same (a convention that is ignored)`);
    outcomes.push(`${m.field}: result changes by ${d.toExponential(2)}`);
  }
  console.log(`# policy.json mutations\n  ${outcomes.join('\n  ')}`);
  // Provenance and statistic values are not applied: changing them leaves the result as it was.
  const p = structuredClone(original);
  p.origin.step = 99;
  p.statistics.state_mean[30] += 0.5;
  writeFileSync(join(variant, POLICY_FILE), JSON.stringify(p));
  const same = run(variant);
  assert.equal(maxAbsDiff(same.raw!, ref.raw!), 0);
});

test('a folder without policy.json is refused unless conventions are given, and then says so', async () => {
  const { ds, input } = await heldOut();
  ds.close();
  const bare = join(work, 'bare');
  cpSync(join(out, 'final'), bare, { recursive: true });
  rmSync(join(bare, POLICY_FILE));
  assert.throws(() => loadPolicy(bare), /has no policy\.json .*pass its conventions explicitly.*--encoding E --orientation O --image-size HxW/);
  const lines: string[] = [];
  const p = loadPolicy(bare, { conventions: { encoding: 'eef_target_pose', orientation: 'flip_v', imageHeight: 32, imageWidth: 32, encoders: 'demo' }, warn: (l) => lines.push(l) });
  assert.equal(lines.length, 1);
  assert.match(lines[0], /has no policy\.json; using the conventions given explicitly \(encoding eef_target_pose, use_joints false, orientation flip_v, 32x32, ctrl_freq 20, demo encoders\)/);
  const withFile = loadPolicy(join(out, 'final'));
  const a = p.predict(input, { seed: SEED, raw: true });
  const b = withFile.predict(input, { seed: SEED, raw: true });
  assert.equal(maxAbsDiff(a.raw!, b.raw!), 0, 'the same conventions by hand give the same actions');
  p.dispose();
  withFile.dispose();
  assert.throws(() => loadPolicy(join(out, 'final'), { conventions: { encoding: 'raw_delta', orientation: 'none', imageHeight: 32, imageWidth: 32, encoders: 'demo' } }),
    /records this model's conventions; do not pass conventions explicitly too/);
  // LoRA adapters beside the weights: refused with the command that folds them.
  const lora = join(work, 'lora');
  cpSync(join(out, 'final'), lora, { recursive: true });
  writeFileSync(join(lora, 'adapter_model.safetensors'), '');
  assert.throws(() => loadPolicy(lora), /LoRA adapters .* rdt-libero lora-merge --checkpoint .*lora --out .*lora-merged, then load .*lora-merged$/);
});

test('the default decoding: step 0 against the measured pose, step k against the target the chunk planned for k-1', async () => {
  const { ds, input } = await heldOut();
  ds.close();
  const p = loadPolicy(join(out, 'final'));
  const r = p.predict(input, { seed: SEED, raw: true });
  p.dispose();
  const raw = r.raw!;
  // eef_target_pose positions (rule written out here, robosuite: goal = measured + 0.05 a, clipped to [-1, 1]).
  const clip = (x: number) => Math.max(-1, Math.min(1, x));
  const now = input.history[1]!.robot.eefPos;
  for (let i = 0; i < 3; i++) assert.ok(Math.abs(r.actions[i] - clip((raw[30 + i] - now[i]) / 0.05)) < 1e-9);
  for (let k = 1; k < 64; k++)
    for (let i = 0; i < 3; i++) assert.ok(Math.abs(r.actions[k * 7 + i] - clip((raw[k * 128 + 30 + i] - raw[(k - 1) * 128 + 30 + i]) / 0.05)) < 1e-9, `step ${k}`);
  // gripper: open fraction f at slot 10 -> 1 - 2 f
  for (let k = 0; k < 64; k++) assert.ok(Math.abs(r.actions[k * 7 + 6] - clip(1 - 2 * raw[k * 128 + 10])) < 1e-9);
});
