// encoders: official wired through training, the policy folder and `predict --decode`, on the fixture-sized T5
// (d_model 64) and SigLIP (hidden 48, 56 px / 14 = 16 tokens per image) with a matching tiny RDT: lang_token_dim
// 64, img_token_dim 48, img_cond_len 2 history x 3 cameras x 16. The policy must reproduce the encoders + runner
// called directly, and refuse encoders other than the ones it was trained with.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { maxAbsDiff } from './helpers/assert-close.js';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as torch from '../src/engine/index.js';
import { writeSyntheticSuite } from '../src/data/synthetic.js';
import { allocBatch } from '../src/data/dataset.js';
import { buildObservation, type ObsFrame } from '../src/data/adapter.js';
import { Rng } from '../src/data/rng.js';
import { loadConfig, ConfigError } from '../src/train/config.js';
import { train, type TrainResult } from '../src/train/trainer.js';
import { prepareInputs } from '../src/train/conditioning.js';
import { toHubJson } from '../src/model/config.js';
import { loadRdtCheckpoint } from '../src/model/checkpoint.js';
import { SiglipVisionEncoder, T5TextEncoder, tokenizerHash } from '../src/encoders/official.js';
import { POLICY_FILE, loadPolicy, type PolicyInput } from '../src/policy/index.js';
import { fixture, repoRoot } from './helpers/fixtures.js';
import { fixtureEncoderRdt } from './helpers/encoder-fixtures.js';
import { tempDir } from './helpers/python.js';

const T5 = fixture('encoders', 't5');
const SIGLIP = fixture('encoders', 'siglip');
const TOKENIZER = fixture('encoders', 'tokenizer');
const { dir: work, cleanup } = tempDir('wiring');
after(cleanup);
const root = join(work, 'data');
const out = join(work, 'run');
const MODEL = join(work, 'official-tiny.json');
const S = 32; // synthetic frame size
const SEED = 9;

const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

const common = (over: Record<string, unknown> = {}) => loadConfig({
  overrides: {
    model: MODEL, encoders: 'official', text_encoder: T5, vision_encoder: SIGLIP, tokenizer: TOKENIZER,
    train_batch_size: 2, gradient_accumulation_steps: 1, max_train_steps: 3, learning_rate: 1e-3, checkpointing_period: 3,
    sample_period: 0, report_to: ['none'], mixed_precision: 'no', cond_mask_prob: 0,
    data: { dataset_root: root, num_workers: 0, holdout_demos_per_task: 1 },
    ...over,
  },
});

let result: TrainResult;
before(async () => {
  // The condition sizes come from the fixture encoders' config.json files.
  writeFileSync(MODEL, JSON.stringify(toHubJson(fixtureEncoderRdt({
    max_lang_cond_len: 1024, lang_pos_embed_config: [['lang', -1024]], rdt: { hidden_size: 32, depth: 2, num_heads: 2 },
  }))));
  await writeSyntheticSuite({ root, suite: 'libero_goal', tasks: 2, demos: 3, meanLength: 24, size: S, seed: 5 });
  result = await train(common({ output_dir: out }), { verbose: false });
});

/** Random observations (B rows, history 2, S x S frames) as PolicyInput[] and as the --decode input file. */
function observations(B: number): { inputs: PolicyInput[]; file: string } {
  const r = new Rng(3);
  const F = S * S * 3;
  const pos: number[] = [], aa: number[] = [], grip: number[] = [];
  const av = Uint8Array.from({ length: B * 2 * F }, () => r.int(256));
  const eh = Uint8Array.from({ length: B * 2 * F }, () => r.int(256));
  const instructions = ['put the bowl on the plate', 'open the top drawer of the cabinet'].slice(0, B);
  const inputs = instructions.map((instruction, b) => ({
    instruction,
    history: [0, 1].map((h): ObsFrame => {
      const i = b * 2 + h;
      const p = [r.uniform(-0.2, 0.2), r.uniform(-0.2, 0.2), Math.fround(1.1 + r.uniform(-0.1, 0.1))].map(Math.fround);
      const a = [Math.PI - r.uniform(0, 0.2), r.uniform(-0.1, 0.1), r.uniform(-0.1, 0.1)];
      const q = r.uniform(0, 0.04);
      pos.push(...p);
      aa.push(...a);
      grip.push(q, -q);
      return { robot: { eefPos: p, eefAxisAngle: a, gripperQpos: [q, -q] }, images: { agentview: av.subarray(i * F, (i + 1) * F), eyeInHand: eh.subarray(i * F, (i + 1) * F) } };
    }),
  }));
  const file = join(work, `obs-${B}.safetensors`);
  torch.scope(() => torch.saveSafetensors(file, {
    eef_pos: torch.tensor(Float32Array.from(pos), { shape: [B, 2, 3] }),
    eef_axis_angle: torch.tensor(Float64Array.from(aa), { shape: [B, 2, 3] }),
    gripper_qpos: torch.tensor(Float64Array.from(grip), { shape: [B, 2, 2] }),
    agentview: torch.tensor(av, { shape: [B, 2, S, S, 3] }),
    eye_in_hand: torch.tensor(eh, { shape: [B, 2, S, S, 3] }),
  }, { instructions: JSON.stringify(instructions) }));
  return { inputs, file };
}


test('train with encoders: official runs end to end; every saved folder records the encoders by path and hash', () => {
  assert.equal(result.steps, 3);
  assert.ok(result.losses.length === 3 && result.losses.every(Number.isFinite), `losses ${result.losses}`);
  for (const d of ['checkpoint-3', join('checkpoint-3', 'ema'), 'final']) {
    const p = JSON.parse(readFileSync(join(out, d, POLICY_FILE), 'utf8'));
    assert.deepEqual(p.encoders.text, {
      kind: 'official', path: T5, tokenizer_path: TOKENIZER, token_dim: 64, max_length: 1024, dtype: 'float32',
      config_sha256: sha256(join(T5, 'config.json')), tokenizer_sha256: tokenizerHash(TOKENIZER),
    }, d);
    assert.deepEqual(p.encoders.vision, {
      kind: 'official', path: SIGLIP, token_dim: 48, tokens_per_image: 16, image_size: 56, dtype: 'float32', config_sha256: sha256(join(SIGLIP, 'config.json')),
    }, d);
  }
  const run = readFileSync(join(out, 'run_config.yaml'), 'utf8');
  assert.match(run, new RegExp(`text_encoder: ${T5.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
});

test('loadPolicy rebuilds the official encoders and reproduces the encoders + runner called directly', () => {
  const live = torch.liveTensors();
  const { inputs } = observations(2);
  const policy = loadPolicy(join(out, 'final'));
  let got: Float64Array;
  try {
    assert.match(policy.encoders.text.name, /^t5-encoder/);
    assert.match(policy.encoders.vision.name, /^siglip-vision/);
    got = policy.predict(inputs, { seed: SEED, raw: true }).raw!;
  } finally {
    policy.dispose();
  }
  // Expected: the same folders loaded by hand, the observations through the data adapter, the runner's sampler.
  const { runner } = loadRdtCheckpoint(join(out, 'final'));
  runner.eval();
  const text = T5TextEncoder.load(T5, { tokenizerDir: TOKENIZER });
  const vision = SiglipVisionEncoder.load(SIGLIP);
  try {
    const batch = allocBatch(policy.adapter, 2);
    inputs.forEach((x, b) => {
      buildObservation(policy.adapter, x.history, batch, b);
      batch.instruction[b] = x.instruction;
    });
    const want = torch.noGrad(() => torch.scope(() => {
      const inp = prepareInputs(batch, { text, vision }, null);
      // The conditions are the encoders' own outputs.
      const direct = text.encode(batch.instruction.slice(0, 2));
      assert.equal(maxAbsDiff(inp.langTokens.toFloat64(), direct.tokens.toFloat64()), 0);
      assert.deepEqual(inp.imgTokens.shape, [2, 96, 48]);
      return runner.predictAction(inp, { generator: new torch.Generator(SEED) }).toFloat64();
    }));
    assert.equal(maxAbsDiff(got, want), 0, 'policy.predict = encoders + runner.predictAction');
  } finally {
    runner.dispose();
    text.dispose();
    vision.dispose();
  }
  assert.equal(torch.liveTensors(), live, 'nothing leaked');
});

function cli(args: string[]): { code: number; stderr: string } {
  const r = spawnSync(process.execPath, [join(repoRoot(), 'dist', 'src', 'cli', 'main.js'), 'predict', ...args], { encoding: 'utf8' });
  return { code: r.status ?? -1, stderr: r.stderr };
}

const rawOf = (file: string) => torch.scope(() => torch.loadSafetensors(file).tensors.get('raw_actions')!.toFloat64());

test('predict --decode on the official-encoder policy; moved encoder folders are accepted when they hash the same', () => {
  const { inputs, file } = observations(2);
  const policy = loadPolicy(join(out, 'final'));
  let want: Float64Array;
  try {
    want = policy.predict(inputs, { seed: 5, raw: true }).raw!;
  } finally {
    policy.dispose();
  }
  const o1 = join(work, 'pred.safetensors');
  const r = cli(['--decode', '--checkpoint', join(out, 'final'), '--inputs', file, '--out', o1, '--seed', '5', '--raw']);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(maxAbsDiff(rawOf(o1), want) <= 1e-5, 'the CLI writes the policy\'s chunk (float32)');
  // The same encoders copied elsewhere (another machine): same result.
  const moved = join(work, 'moved');
  cpSync(T5, join(moved, 't5'), { recursive: true });
  cpSync(SIGLIP, join(moved, 'siglip'), { recursive: true });
  cpSync(TOKENIZER, join(moved, 'tok'), { recursive: true });
  const o2 = join(work, 'pred-moved.safetensors');
  const m = cli(['--decode', '--checkpoint', join(out, 'final'), '--inputs', file, '--out', o2, '--seed', '5', '--raw',
    '--text-encoder', join(moved, 't5'), '--vision-encoder', join(moved, 'siglip'), '--tokenizer', join(moved, 'tok')]);
  assert.equal(m.code, 0, m.stderr);
  assert.equal(maxAbsDiff(rawOf(o2), rawOf(o1)), 0);
  // The same weights without policy.json (like the hub rdt-1b): the conventions and the official encoders given by hand.
  const bare = join(work, 'bare');
  for (const f of ['config.json', 'model.safetensors']) cpSync(join(out, 'final', f), join(bare, f));
  const p = JSON.parse(readFileSync(join(out, 'final', POLICY_FILE), 'utf8'));
  const o3 = join(work, 'pred-bare.safetensors');
  const flags = ['--encoding', p.action.encoding, '--orientation', p.cameras.orientation, '--image-size', `${S}x${S}`, '--encoders', 'official'];
  const half = cli(['--decode', '--checkpoint', bare, '--inputs', file, '--out', o3, ...flags, '--text-encoder', T5]);
  assert.equal(half.code, 2);
  assert.match(half.stderr, /--encoders official needs --text-encoder DIR and --vision-encoder DIR/);
  const b = cli(['--decode', '--checkpoint', bare, '--inputs', file, '--out', o3, '--seed', '5', '--raw', ...flags,
    '--text-encoder', T5, '--vision-encoder', SIGLIP, '--tokenizer', TOKENIZER]);
  assert.equal(b.code, 0, b.stderr);
  assert.match(b.stderr, /no policy\.json; using the conventions given explicitly .*official encoders/);
  assert.equal(maxAbsDiff(rawOf(o3), rawOf(o1)), 0, 'the same policy');
  // Without --decode the conditions are already encoded: the encoder flags are refused.
  const u = cli(['--checkpoint', join(out, 'final'), '--inputs', file, '--out', o2, '--text-encoder', T5]);
  assert.equal(u.code, 2);
  assert.match(u.stderr, /--text-encoder applies only with --decode/);
});

test('refused: official without text_encoder, folders with demo, encoders of other sizes', async () => {
  await assert.rejects(train(common({ output_dir: join(work, 'no-text'), text_encoder: null }), { verbose: false }),
    (e: Error) => e instanceof ConfigError && /'text_encoder' is required with encoders: official/.test(e.message) && !e.message.includes('\n'));
  await assert.rejects(train(common({ output_dir: join(work, 'no-vision'), vision_encoder: join(work, 'nowhere') }), { verbose: false }),
    /'vision_encoder': .*nowhere holds no config\.json/);
  assert.throws(() => loadConfig({ overrides: { encoders: 'demo', vision_encoder: SIGLIP } }), /'vision_encoder' is set, but encoders: demo reads no encoder folders/);
  assert.throws(() => loadConfig({ overrides: { encoders: 'demo', encoder_dtype: 'bfloat16' } }), /'encoder_dtype' is bfloat16, but the demo encoders always run in float32/);
  const live = torch.liveTensors();
  await assert.rejects(train(common({ output_dir: join(work, 'dims'), model: 'tiny' }), { verbose: false }),
    (e: Error) => /the model has lang_token_dim 32 but the text encoder gives 64-d tokens; img_token_dim 24 but the vision encoder gives 48-d tokens; img_cond_len 54 image tokens but the vision encoder gives 2 history x 3 cameras x 16 = 96/.test(e.message) && !e.message.includes('\n'));
  assert.equal(torch.liveTensors(), live, 'the refused encoders were freed');
});

test('a policy used with other encoders is refused at load, naming the config that differs', () => {
  const other = join(work, 'other');
  cpSync(SIGLIP, join(other, 'siglip'), { recursive: true });
  const cfgFile = join(other, 'siglip', 'config.json');
  const c = JSON.parse(readFileSync(cfgFile, 'utf8'));
  writeFileSync(cfgFile, JSON.stringify({ ...c, layer_norm_eps: 1e-5 }, null, 2)); // another tower, same sizes
  const live = torch.liveTensors();
  assert.throws(() => loadPolicy(join(out, 'final'), { encoderDirs: { vision: join(other, 'siglip') } }),
    (e: Error) => new RegExp(`encoders\\.vision: ${cfgFile.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} has sha256 [0-9a-f]{12}\\.\\.\\., but the policy was trained with ${sha256(join(SIGLIP, 'config.json')).slice(0, 12)}`).test(e.message) && !e.message.includes('\n'));
  // The tokenizer is part of the identity too.
  cpSync(TOKENIZER, join(other, 'tok'), { recursive: true });
  const tc = join(other, 'tok', 'tokenizer_config.json');
  writeFileSync(tc, readFileSync(tc, 'utf8').replace(/\}\s*$/, ', "model_max_length": 7}\n'));
  assert.throws(() => loadPolicy(join(out, 'final'), { encoderDirs: { tokenizer: join(other, 'tok') } }), /encoders\.tokenizer: the tokenizer files of .*tok has sha256/);
  // A missing folder says which one the policy was trained with.
  assert.throws(() => loadPolicy(join(out, 'final'), { encoderDirs: { text: join(other, 'gone') } }), /encoders\.text: .*gone\/config\.json does not exist; the policy was trained with .*t5\/config\.json/);
  assert.equal(torch.liveTensors(), live, 'nothing stays allocated');
  const r = cli(['--decode', '--checkpoint', join(out, 'final'), '--inputs', observations(1).file, '--out', join(work, 'x.safetensors'), '--vision-encoder', join(other, 'siglip')]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /encoders\.vision: .*config\.json has sha256/);
});
