// `rdt-libero predict` end to end on the tiny fixture checkpoint: the actions equal the official
// predict_action output (sample.action, 1e-4 x output scale), and bad inputs fail with errors
// naming the tensor and the expected shape. `predict --decode` on a policy folder (the fixture weights + a
// policy.json) writes LIBERO 7-D actions equal to loadPolicy's and to a numpy decoding of its raw chunk.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, copyFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as torch from '../src/engine/index.js';
import { fixture, repoRoot } from './helpers/fixtures.js';
import { oscRef } from './helpers/osc-ref.js';
import { rdtPreset } from '../src/model/config.js';
import { demoEncoderIdentity } from '../src/encoders/demo.js';
import { loadPolicy, writePolicyFile, type PolicyInput } from '../src/policy/index.js';
import { Rng } from '../src/data/rng.js';
import { loadIo, checkScaled, printResults } from './helpers/rdt-fixtures.js';

const tmp = mkdtempSync(join(tmpdir(), 'rdt-predict-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const ckpt = join(tmp, 'ckpt');
mkdirSync(ckpt);
copyFileSync(fixture('rdt', 'tiny_a.hub-bf16', 'config.json'), join(ckpt, 'config.json'));
copyFileSync(fixture('rdt', 'tiny_a.weights.f32.safetensors'), join(ckpt, 'model.safetensors'));
const io = loadIo('timm103-unbiased-var');
const inputs = (): Record<string, torch.Tensor> => ({
  lang_tokens: io.get('in.lang_tokens')!,
  lang_mask: io.get('in.lang_attn_mask')!,
  img_tokens: io.get('in.img_tokens')!,
  state: io.get('in.state_tokens')!,
  state_mask: io.get('in.action_mask')!.squeeze(1),
  ctrl_freq: io.get('in.ctrl_freqs')!,
  noise: io.get('in.sample_init_noise')!,
});

function cli(args: string[]): { code: number; stderr: string } {
  const r = spawnSync(process.execPath, [join(repoRoot(), 'dist', 'src', 'cli', 'main.js'), 'predict', ...args], { encoding: 'utf8' });
  return { code: r.status ?? -1, stderr: r.stderr };
}

test('predict writes the official actions for the fixture inputs', () => {
  const inPath = join(tmp, 'in.safetensors');
  const outPath = join(tmp, 'out.safetensors');
  torch.scope(() => torch.saveSafetensors(inPath, inputs()));
  const r = cli(['--checkpoint', ckpt, '--inputs', inPath, '--out', outPath]);
  assert.equal(r.code, 0, r.stderr);
  const results = new Map<string, number>();
  torch.scope(() => {
    const out = torch.loadSafetensors(outPath).tensors;
    assert.deepEqual([...out.keys()], ['actions']);
    assert.deepEqual(out.get('actions')!.shape, [2, 64, 128]);
    checkScaled(results, 'predict CLI actions vs sample.action', out.get('actions')!, io.get('sample.action')!);
  });
  // bf16 end to end (the hub checkpoint's dtype): close to the float32 reference, not equal
  const r16 = cli(['--checkpoint', fixture('rdt', 'tiny_a.hub-bf16'), '--inputs', inPath, '--out', outPath, '--dtype', 'bfloat16']);
  assert.equal(r16.code, 0, r16.stderr);
  torch.scope(() => {
    const a = torch.loadSafetensors(outPath).tensors.get('actions')!;
    assert.equal(a.dtype, 'float32');
    const err = checkScaled(results, 'predict CLI bf16 actions vs sample.action (tolerance 0.05)', a, io.get('sample.action')!, 0.05);
    assert.ok(err > 0, 'bf16 arithmetic differs from float32');
  });
  printResults('predict CLI', results);
});

test('predict: missing tensors and wrong shapes are named', () => {
  const bad = (patch: (o: Record<string, torch.Tensor>) => void, re: RegExp) => {
    const p = join(tmp, 'bad.safetensors');
    torch.scope(() => {
      const o = inputs();
      patch(o);
      torch.saveSafetensors(p, o);
    });
    const r = cli(['--checkpoint', ckpt, '--inputs', p, '--out', join(tmp, 'x.safetensors')]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, re);
  };
  bad((o) => delete o.img_tokens, /missing tensors 'img_tokens' \(B, img_cond_len, img_token_dim\)/);
  bad((o) => (o.img_tokens = torch.zeros([2, 54, 25])), /'img_tokens' has shape \[2,54,25\], expected \[2,54,24\]/);
  bad((o) => (o.state_mask = torch.zeros([2, 1, 128])), /'state_mask' has shape \[2,1,128\], expected \[2,128\]/);
  bad((o) => (o.imgs = torch.zeros([1])), /unexpected tensors 'imgs'/);
  const r = cli(['--inputs', 'x']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--checkpoint is required/);
});

// ---- predict --decode ----

const B = 2, H = 2, S = 16;
const policyDir = join(tmp, 'policy');
mkdirSync(policyDir);
copyFileSync(join(ckpt, 'config.json'), join(policyDir, 'config.json'));
copyFileSync(join(ckpt, 'model.safetensors'), join(policyDir, 'model.safetensors'));
const conventions = (encoding: string) => ({
  action: { encoding, chunk_size: 64, ctrl_freq: 20, exec_horizon: null },
  state: { use_joints: false, slots: [10, 30, 31, 32, 33, 34, 35, 36, 37, 38] },
  cameras: { slots: { agentview: 0, eye_in_hand: 1 }, orientation: 'flip_v' as const, height: S, width: S, history: H },
  statistics: null, normalization: 'none' as const, encoders: demoEncoderIdentity(rdtPreset('tiny')), lora: null, origin: null,
});

/** Random observations: the arrays of the --decode input file, and the same as PolicyInput[]. */
function observations() {
  const r = new Rng(21);
  const n = B * H;
  const pos = Array.from({ length: n * 3 }, (_, i) => (i % 3 === 2 ? 1.1 : 0) + r.uniform(-0.2, 0.2));
  const aa = Array.from({ length: n }, () => [Math.PI - r.uniform(0, 0.2), r.uniform(-0.1, 0.1), r.uniform(-0.1, 0.1)]).flat();
  const grip = Array.from({ length: n }, () => { const q = r.uniform(0, 0.04); return [q, -q]; }).flat();
  const img = () => Uint8Array.from({ length: n * S * S * 3 }, () => r.int(256));
  const av = img();
  const eh = img();
  const valid = Uint8Array.from([0, 1, 1, 1]); // row 0: its first frame is before the episode start
  const instructions = ['put the bowl on the plate', 'open the top drawer'];
  const F = S * S * 3;
  const inputs: PolicyInput[] = [0, 1].map((b) => ({
    instruction: instructions[b],
    history: [0, 1].map((h) => {
      const i = b * H + h;
      if (!valid[i]) return null;
      return {
        robot: { eefPos: pos.slice(i * 3, i * 3 + 3), eefAxisAngle: aa.slice(i * 3, i * 3 + 3), gripperQpos: grip.slice(i * 2, i * 2 + 2) },
        images: { agentview: av.subarray(i * F, (i + 1) * F), eyeInHand: eh.subarray(i * F, (i + 1) * F) },
      };
    }),
  }));
  const file = join(tmp, 'obs.safetensors');
  torch.scope(() => torch.saveSafetensors(file, {
    eef_pos: torch.tensor(Float32Array.from(pos), { shape: [B, H, 3] }),
    eef_axis_angle: torch.tensor(Float64Array.from(aa), { shape: [B, H, 3] }),
    gripper_qpos: torch.tensor(Float64Array.from(grip), { shape: [B, H, 2] }),
    agentview: torch.tensor(av, { shape: [B, H, S, S, 3] }),
    eye_in_hand: torch.tensor(eh, { shape: [B, H, S, S, 3] }),
    frame_valid: torch.tensor(valid, { shape: [B, H] }),
  }, { instructions: JSON.stringify(instructions) }));
  // the policy reads eef_pos as stored (float32 here)
  inputs.forEach((x) => x.history.forEach((f) => f && (f.robot.eefPos = Array.from(f.robot.eefPos, Math.fround))));
  return { file, inputs, pos: Array.from(pos, Math.fround), aa };
}

for (const encoding of ['eef_target_pose', 'eef_velocity']) {
  test(`predict --decode (${encoding}) writes the policy's LIBERO actions, decoded as numpy decodes the raw chunk`, () => {
    writePolicyFile(policyDir, conventions(encoding));
    const { file, inputs, pos, aa } = observations();
    const outPath = join(tmp, 'decoded.safetensors');
    const r = cli(['--decode', '--checkpoint', policyDir, '--inputs', file, '--out', outPath, '--seed', '5', '--raw']);
    assert.equal(r.code, 0, r.stderr);
    const { actions, raw } = torch.scope(() => {
      const t = torch.loadSafetensors(outPath).tensors;
      assert.deepEqual([...t.keys()].sort(), ['actions', 'raw_actions']);
      assert.deepEqual(t.get('actions')!.shape, [B, 64, 7]);
      assert.deepEqual(t.get('raw_actions')!.shape, [B, 64, 128]);
      return { actions: t.get('actions')!.toFloat64(), raw: t.get('raw_actions')!.toFloat64() };
    });
    // the same as the library call
    const policy = loadPolicy(policyDir);
    const lib = policy.predict(inputs, { seed: 5, raw: true });
    policy.dispose();
    let dRaw = 0, dAct = 0;
    lib.raw!.forEach((x, i) => (dRaw = Math.max(dRaw, Math.abs(x - raw[i]))));
    lib.actions.forEach((x, i) => (dAct = Math.max(dAct, Math.abs(x - actions[i]))));
    assert.ok(dRaw <= 1e-6 && dAct <= 1e-6, `CLI vs loadPolicy: raw ${dRaw}, actions ${dAct}`);
    // numpy: step 0 against the newest frame's measured pose, step k against the chunk's own target at k-1
    const ref = oscRef<{ actions: number[] }>(`
raw = np.array(inp['raw']).reshape(${B}, 64, 128); P = np.array(inp['pos']).reshape(${B}, ${H}, 3); O = np.array(inp['aa']).reshape(${B}, ${H}, 3)
acts = []
for b in range(${B}):
    for k in range(64):
        if k == 0 or inp['name'] != 'eef_target_pose': pos, R = P[b, -1], aa2mat(O[b, -1])
        else: pos, R = raw[b, k - 1, 30:33], from6(raw[b, k - 1, 33:39])
        acts.append(decode(inp['name'], raw[b, k], pos, R))
out['actions'] = np.concatenate(acts).tolist()
`, { raw: Array.from(raw), pos, aa, name: encoding });
    let worst = 0;
    ref.actions.forEach((x, i) => (worst = Math.max(worst, Math.abs(x - actions[i]))));
    assert.ok(worst <= 1e-4, `decoded actions vs numpy: ${worst}`);
    assert.ok(actions.some((x) => Math.abs(x) > 1e-3));
  });
}

test('predict --decode: a folder without policy.json needs explicit conventions, and says it used them', () => {
  const bare = join(tmp, 'bare');
  mkdirSync(bare);
  copyFileSync(join(ckpt, 'config.json'), join(bare, 'config.json'));
  copyFileSync(join(ckpt, 'model.safetensors'), join(bare, 'model.safetensors'));
  const { file } = observations();
  const outPath = join(tmp, 'bare.safetensors');
  const refused = cli(['--decode', '--checkpoint', bare, '--inputs', file, '--out', outPath]);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /has no policy\.json .*--encoding E --orientation O --image-size HxW/);
  const partial = cli(['--decode', '--checkpoint', bare, '--inputs', file, '--out', outPath, '--encoding', 'eef_velocity']);
  assert.notEqual(partial.code, 0);
  assert.match(partial.stderr, /--orientation is needed too/);
  const ok = cli(['--decode', '--checkpoint', bare, '--inputs', file, '--out', outPath, '--encoding', 'eef_velocity', '--orientation', 'flip_v', '--image-size', `${S}x${S}`, '--encoders', 'demo', '--seed', '5']);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stderr, /has no policy\.json; using the conventions given explicitly \(encoding eef_velocity/);
  writePolicyFile(policyDir, conventions('eef_velocity'));
  const encoded = join(tmp, 'encoded.safetensors');
  torch.scope(() => torch.saveSafetensors(encoded, inputs()));
  const bad = cli(['--decode', '--checkpoint', policyDir, '--inputs', encoded, '--out', outPath, '--instruction', 'x']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /encoded.safetensors: unexpected tensors .*'lang_tokens'.*; expected eef_pos/);
});
