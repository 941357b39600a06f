// The observation formats: openpi's LIBERO images (rotated 180 degrees, resized with zero padding to 224) come back
// to the checkpoint's orientation and resolution exactly as the documented inverse computes it with PIL (crop the
// padding, rotate back, bicubic) for square, non-square and upscaled checkpoints; the 8-D state maps to the data
// layer's RobotObs; unknown keys, missing keys and a joints checkpoint under the libero format are refused by name.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { adapterConfig } from '../src/data/adapter.js';
import { Rng } from '../src/data/rng.js';
import { checkFormat, fromOpenpiImage, parseRequest } from '../src/openpi/formats.js';
import { OpenpiError } from '../src/openpi/errors.js';
import { runPythonJson } from './helpers/python.js';
import { repoRoot } from './helpers/fixtures.js';

// The Python client's own preprocessing and reference inverse (test/py/openpi_client_check.py).
const PRELUDE = `import sys, numpy as np
sys.path.insert(0, ${JSON.stringify(join(repoRoot(), 'test', 'py'))})
from openpi_client_check import resize_with_pad, recovered`;

test('openpi LIBERO images come back to the checkpoint orientation and size as the PIL reference does', () => {
  for (const [H, W] of [[32, 32], [24, 32], [48, 20], [256, 256]]) {
    const rng = new Rng(H * 1000 + W);
    // A smooth picture with noise on top (pure noise would hide an off-by-one in the crop).
    const raw = Uint8Array.from({ length: H * W * 3 }, (_, i) => {
      const p = Math.floor(i / 3), y = Math.floor(p / W), x = p % W;
      return Math.min(255, Math.floor((x * 255) / W * 0.6 + (y * 255) / H * 0.3 + rng.int(26)));
    });
    const py = runPythonJson<{ sent: number[]; want: number[]; shape: number[] }>(PRELUDE, `
raw = np.array(inp["raw"], np.uint8).reshape(inp["H"], inp["W"], 3)
sent = resize_with_pad(np.ascontiguousarray(raw[::-1, ::-1]), 224, 224)
out["sent"] = sent.ravel().tolist()
out["shape"] = list(sent.shape)
out["want"] = recovered(sent, inp["H"], inp["W"]).ravel().tolist()
`, { raw: Array.from(raw), H, W });
    assert.deepEqual(py.shape, [224, 224, 3]);
    const got = fromOpenpiImage(Uint8Array.from(py.sent), 224, 224, H, W);
    assert.deepEqual(Array.from(got), py.want, `${H}x${W}`);
    // And it is the raw frame back, up to the two resamplings: mean error a few grey levels.
    let err = 0;
    for (let i = 0; i < raw.length; i++) err += Math.abs(got[i] - raw[i]);
    assert.ok(err / raw.length < 12, `${H}x${W}: mean error ${err / raw.length}`);
  }
});

const img224 = { dtype: '|u1', shape: [224, 224, 3], data: new Uint8Array(224 * 224 * 3) };
const state = [-0.211, -0.0111, 1.174, 3.1409, -0.0028, -0.0877, 0.0387, -0.0387];
const liberoReq = { 'observation/image': img224, 'observation/wrist_image': img224, 'observation/state': { dtype: '<f4', shape: [8], data: Float32Array.from(state) }, prompt: 'open the drawer' };

test('the 8-D LIBERO state maps to eef position, axis-angle and finger joints; seed and prompt pass through', () => {
  const cfg = adapterConfig({ imageHeight: 32, imageWidth: 32 });
  const r = parseRequest('libero', { ...liberoReq, seed: 77 }, cfg);
  const f32 = Array.from(Float32Array.from(state));
  assert.deepEqual(Array.from(r.frame.robot.eefPos), f32.slice(0, 3));
  assert.deepEqual(Array.from(r.frame.robot.eefAxisAngle!), f32.slice(3, 6));
  assert.deepEqual(Array.from(r.frame.robot.gripperQpos), f32.slice(6, 8));
  assert.equal(r.frame.robot.jointPos, null);
  assert.equal(r.frame.images.agentview!.length, 32 * 32 * 3);
  assert.equal(r.prompt, 'open the drawer');
  assert.equal(r.seed, 77);
});

test('unknown and missing keys, bad seeds and a joints checkpoint under the libero format are refused by name', () => {
  const cfg = adapterConfig({ imageHeight: 32, imageWidth: 32 });
  const refuse = (v: unknown, re: RegExp) => assert.throws(() => parseRequest('libero', v, cfg), (e: unknown) => e instanceof OpenpiError && e.kind === 'BadRequest' && re.test(e.message));
  refuse({ ...liberoReq, 'observation/joint_position': 1 }, /unknown key 'observation\/joint_position'.*takes observation\/image, observation\/wrist_image, observation\/state, prompt \(optional: seed\)/);
  refuse({ 'observation/image': img224 }, /missing 'observation\/wrist_image', 'observation\/state', 'prompt'/);
  refuse({ ...liberoReq, seed: -1 }, /'seed' must be an integer in 0\.\.2147483647/);
  refuse({ ...liberoReq, seed: 1.5 }, /'seed' must be an integer/);
  refuse({ ...liberoReq, prompt: '' }, /'prompt' must be a non-empty string/);
  refuse({ ...liberoReq, 'observation/image': { dtype: '|u1', shape: [224, 224, 4], data: new Uint8Array(224 * 224 * 4) } }, /'observation\/image' must be \(h, w, 3\) uint8/);
  assert.throws(() => checkFormat('libero', adapterConfig({ useJoints: true })),
    (e: unknown) => e instanceof OpenpiError && e.kind === 'ServerConfig' && /state\.use_joints.*--format native/.test(e.message));
  checkFormat('native', adapterConfig({ useJoints: true }));
  assert.throws(() => parseRequest('native', {
    agentview_image: { dtype: '|u1', shape: [32, 32, 3], data: new Uint8Array(3072) }, robot0_eye_in_hand_image: { dtype: '|u1', shape: [32, 32, 3], data: new Uint8Array(3072) },
    robot0_eef_pos: { dtype: '<f8', shape: [3], data: new Float64Array(3) }, robot0_eef_quat: { dtype: '<f8', shape: [4], data: Float64Array.from([0, 0, 0, 1]) },
    robot0_gripper_qpos: { dtype: '<f8', shape: [2], data: new Float64Array(2) }, prompt: 'x',
  }, adapterConfig({ useJoints: true, imageHeight: 32, imageWidth: 32 })), (e: unknown) => e instanceof OpenpiError && /'robot0_joint_pos' is required/.test(e.message));
});
