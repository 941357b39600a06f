// The unified vector map, rotation conversions near angle pi, and exact round trips of every action encoding.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { STATE_VEC_IDX, STATE_VEC_LEN, slot } from '../src/data/state_vec.js';
import {
  axisAngleToMat, matDist, matMulT, matTo6d, matToAxisAngle, matToQuat, quatToMat, rot6dToMat,
} from '../src/data/rotation.js';
import { oscRef } from './helpers/osc-ref.js';
import { ENCODINGS, getEncoding } from '../src/data/encodings/index.js';
import { Rng } from '../src/data/rng.js';
import {
  FULL_OPEN_GAP_M, adapterConfig, allocObservation, buildObservation, decodeAction, encodeActionChunk, gripperOpenFraction, poseOf,
} from '../src/data/adapter.js';

test('state_vec: the official 144 names map onto 93 indices of 128', () => {
  assert.equal(STATE_VEC_LEN, 128);
  assert.equal(Object.keys(STATE_VEC_IDX).length, 144);
  assert.equal(new Set(Object.values(STATE_VEC_IDX)).size, 93);
  assert.equal(slot('right_gripper_open'), 10);
  assert.equal(slot('gripper_open'), 10);
  assert.equal(slot('eef_pos_x'), 30);
  assert.equal(slot('eef_angle_5'), 38);
  assert.equal(slot('eef_vel_x'), 39);
  assert.equal(slot('eef_angular_vel_yaw'), 44);
  assert.equal(slot('left_gripper_open'), 60);
  assert.equal(slot('left_eef_angle_0'), 83);
  assert.equal(slot('base_angular_vel'), 102);
  assert.throws(() => slot('eef_pos_w'), /unknown slot/);
});

function randomAxisAngle(r: Rng, angle: number): number[] {
  const v = [r.uniform(-1, 1), r.uniform(-1, 1), r.uniform(-1, 1)];
  const n = Math.hypot(...v);
  return v.map((x) => (x / n) * angle);
}

// Angles that matter for LIBERO: ~0, generic, and pi from both sides (the stored ee_ori has |v| ~ pi, and robosuite
// can store the long way round, |v| slightly above pi). Axis-angle is ambiguous at pi (v and -v are the same
// rotation), so rotation round trips are judged on the matrix, not on the vector.
const ANGLES = [0, 1e-12, 1e-6, 0.3, 1.5, 3.0, Math.PI - 1e-6, Math.PI - 1e-9, Math.PI, Math.PI + 1e-9, Math.PI + 1e-4, 3.3, 2 * Math.PI - 0.1];

test('rotation: axis-angle -> matrix -> axis-angle -> matrix is the same rotation, near pi included', () => {
  const r = new Rng(1);
  for (const ang of ANGLES)
    for (let k = 0; k < 50; k++) {
      const v = randomAxisAngle(r, ang);
      const R = axisAngleToMat(v);
      // orthonormal with det +1
      const RtR = matMulT(R, R);
      assert.ok(matDist(RtR, [1, 0, 0, 0, 1, 0, 0, 0, 1]) < 1e-14, `R not orthonormal at angle ${ang}`);
      const back = matToAxisAngle(R);
      assert.ok(Math.hypot(...back) <= Math.PI + 1e-12);
      assert.ok(matDist(axisAngleToMat(back), R) < 1e-12, `angle ${ang}: rotation changed by ${matDist(axisAngleToMat(back), R)}`);
      if (ang < Math.PI - 1e-3) for (let i = 0; i < 3; i++) assert.ok(Math.abs(back[i] - v[i]) < 1e-12);
      assert.ok(matDist(quatToMat(matToQuat(R)), R) < 1e-13);
      const six = matTo6d(R);
      assert.ok(matDist(rot6dToMat(six), R) < 1e-14);
    }
  // hand-checked: 90 degrees about z maps x to y
  const Rz = axisAngleToMat([0, 0, Math.PI / 2]);
  assert.ok(matDist(Rz, [0, -1, 0, 1, 0, 0, 0, 0, 1]) < 1e-15);
  assert.deepEqual(Array.from(matTo6d(Rz)).map((x) => Math.round(x)), [0, 1, 0, -1, 0, 0]);
  // the gripper pointing down (the LIBERO home pose): 180 degrees about x
  const down = axisAngleToMat([Math.PI, 0, 0]);
  assert.ok(matDist(down, [1, 0, 0, 0, -1, 0, 0, 0, -1]) < 1e-15);
  assert.ok(matDist(axisAngleToMat(matToAxisAngle(down)), down) < 1e-15);
  // 6-D inverse re-orthonormalises a perturbed input (official Gram-Schmidt)
  const noisy = Array.from(matTo6d(down)).map((x, i) => x + (i === 1 ? 1e-3 : 0));
  assert.ok(matDist(matMulT(rot6dToMat(noisy), rot6dToMat(noisy)), [1, 0, 0, 0, 1, 0, 0, 0, 1]) < 1e-14);
});

test('rotation: axis-angle, quaternion and 6-D conversions equal numpy (Rodrigues, Gram-Schmidt)', () => {
  const r = new Rng(9);
  const aas = ANGLES.flatMap((ang) => [0, 1, 2].map(() => randomAxisAngle(r, ang)));
  const quats = aas.map(() => { const q = [r.uniform(-1, 1), r.uniform(-1, 1), r.uniform(-1, 1), r.uniform(-1, 1)]; const n = Math.hypot(...q); return q.map((x) => x / n); });
  const noisy6 = aas.map((v) => Array.from(matTo6d(axisAngleToMat(v))).map((x) => x + r.uniform(-0.05, 0.05)));
  const ref = oscRef<{ R: number[][]; Q: number[][]; G: number[][] }>(`
out['R'] = [aa2mat(v).flatten().tolist() for v in inp['aas']]
out['Q'] = [quat2mat(q).flatten().tolist() for q in inp['quats']]
out['G'] = [from6(d).flatten().tolist() for d in inp['six']]
`, { aas, quats, six: noisy6 });
  aas.forEach((v, k) => {
    assert.ok(matDist(axisAngleToMat(v), ref.R[k]) < 1e-14, `axisAngleToMat ${v}`);
    const six = matTo6d(axisAngleToMat(v));
    const want = [0, 3, 6, 1, 4, 7].map((i) => ref.R[k][i]); // first two columns of row-major R
    assert.ok(six.every((x, i) => Math.abs(x - want[i]) < 1e-14), 'matTo6d');
    assert.ok(matDist(quatToMat(quats[k]), ref.Q[k]) < 1e-14, 'quatToMat (x, y, z, w)');
    assert.ok(matDist(rot6dToMat(noisy6[k]), ref.G[k]) < 1e-13, 'rot6dToMat');
  });
});

test('gripper: finger positions -> open fraction; command sign -> open fraction', () => {
  assert.equal(gripperOpenFraction([0.0387, -0.0387]), 1);
  assert.equal(gripperOpenFraction([0, 0]), 0);
  assert.ok(Math.abs(gripperOpenFraction([0.020833, -0.020833]) - 0.041666 / FULL_OPEN_GAP_M) < 1e-12);
  assert.equal(gripperOpenFraction([0.045, -0.045]), 1); // clamped
  for (const name of Object.keys(ENCODINGS)) {
    const e = getEncoding(name);
    const v = new Float64Array(128);
    const pose = { pos: [0, 0, 1], R: axisAngleToMat([Math.PI, 0, 0]) };
    e.encode([0, 0, 0, 0, 0, 0, -1], pose, v, 0);
    assert.equal(v[10], 1, `${name}: -1 (open) must give open fraction 1`);
    e.encode([0, 0, 0, 0, 0, 0, 1], pose, v, 0);
    assert.equal(v[10], 0, `${name}: +1 (close) must give open fraction 0`);
    const out = new Float64Array(7);
    e.decode(v, 0, pose, out);
    assert.equal(out[6], 1);
  }
});

test('encodings: hand-checked SI values', () => {
  const pose = { pos: [0.1, -0.2, 1.17], R: axisAngleToMat([Math.PI, 0, 0]) };
  const v = new Float64Array(128);
  getEncoding('eef_velocity').encode([1, -0.5, 0, 0, 0, 1, -1], pose, v, 0);
  assert.equal(v[39], 1); // 1.0 * 0.05 m / 0.05 s
  assert.equal(v[40], -0.5);
  assert.equal(v[44], 10); // 1.0 * 0.5 rad / 0.05 s
  assert.equal(v[30], 0);
  v.fill(0);
  getEncoding('raw_delta').encode([1, -0.5, 0, 0, 0, 2, -1], pose, v, 0);
  assert.deepEqual(Array.from(v.subarray(39, 45)), [1, -0.5, 0, 0, 0, 1]); // clipped to [-1, 1]
  v.fill(0);
  getEncoding('eef_target_pose').encode([1, -0.5, 0, 0, 0, 1, 1], pose, v, 0);
  assert.ok(Math.abs(v[30] - 0.15) < 1e-15 && Math.abs(v[31] + 0.225) < 1e-15 && v[32] === 1.17);
  // goal_R = Rz(0.5) @ Rx(pi): columns [cos .5, sin .5, 0] and [sin .5, -cos .5, 0] (written out by hand)
  const [c, s] = [Math.cos(0.5), Math.sin(0.5)];
  assert.ok([c, s, 0, s, -c, 0].every((x, i) => Math.abs(v[33 + i] - x) < 1e-15), `6-D ${Array.from(v.subarray(33, 39))}`);
  assert.equal(v[10], 0);
  assert.equal(v[39], 0);
});

/** Random LIBERO commands (some beyond [-1, 1], to exercise clipping) and poses, rotations near pi included. */
function randomCases(seed: number, n: number): { a: number[]; pos: number[]; aa: number[] }[] {
  const r = new Rng(seed);
  return Array.from({ length: n }, (_, k) => {
    const a = [0, 1, 2, 3, 4, 5].map(() => r.uniform(-1.3, 1.3));
    a.push(k % 3 === 0 ? r.uniform(-1, 1) : r.next() < 0.5 ? -1 : 1);
    return { a, pos: [r.uniform(-0.5, 0.5), r.uniform(-0.5, 0.5), r.uniform(0.8, 1.4)], aa: randomAxisAngle(r, ANGLES[k % ANGLES.length] || 0.4) };
  });
}

test('encodings: encode and decode equal an independent numpy reference of the robosuite OSC rules', () => {
  const cases = randomCases(3, 60);
  const names = Object.keys(ENCODINGS);
  const ref = oscRef<{ enc: Record<string, number[][]>; dec: Record<string, number[][]> }>(`
out['enc'] = {}; out['dec'] = {}
for name in inp['names']:
    vs = [encode(name, c['a'], c['pos'], aa2mat(c['aa'])) for c in inp['cases']]
    out['enc'][name] = [v.tolist() for v in vs]
    # decode against a different measured pose than the one encoded against (the execution-time pose)
    out['dec'][name] = [decode(name, v, np.asarray(c['pos']) + 0.01, aa2mat(np.asarray(c['aa']) * 0.98)).tolist() for v, c in zip(vs, inp['cases'])]
`, { names, cases });
  for (const name of names) {
    const e = getEncoding(name);
    cases.forEach((c, k) => {
      const v = new Float64Array(128);
      e.encode(c.a, { pos: c.pos, R: axisAngleToMat(c.aa) }, v, 0);
      const want = ref.enc[name][k];
      for (let i = 0; i < 128; i++) assert.ok(Math.abs(v[i] - want[i]) < 1e-12, `${name} case ${k} slot ${i}: ${v[i]} vs ${want[i]}`);
      const measured = { pos: c.pos.map((x) => x + 0.01), R: axisAngleToMat(c.aa.map((x) => x * 0.98)) };
      const back = decodeAction({ encoding: name }, Float64Array.from(want), 0, measured);
      for (let i = 0; i < 7; i++) assert.ok(Math.abs(back[i] - ref.dec[name][k][i]) < 1e-9, `${name} case ${k} decode ${i}: ${back[i]} vs ${ref.dec[name][k][i]}`);
    });
  }
});

test('encodeActionChunk and buildObservation state equal the numpy reference (encode, end padding, SI state)', () => {
  const cases = randomCases(4, 5);
  const ref = oscRef<{ chunk: Record<string, number[][]>; state: number[][] }>(`
out['chunk'] = {}
for name in inp['names']:
    rows = [encode(name, c['a'], c['pos'], aa2mat(c['aa'])) for c in inp['cases']]
    while len(rows) < 8: rows.append(pad(name, rows[-1]))
    out['chunk'][name] = [r.tolist() for r in rows]
out['state'] = [state(c['pos'], c['aa'], [0.03, -0.025], [0.1 * i for i in range(7)]).tolist() for c in inp['cases']]
`, { names: Object.keys(ENCODINGS), cases });
  const acts = cases.flatMap((c) => c.a);
  const poses = cases.map((c) => ({ pos: c.pos, R: axisAngleToMat(c.aa) }));
  for (const name of Object.keys(ENCODINGS)) {
    const out = new Float64Array(8 * 128);
    const valid = new Float32Array(8);
    encodeActionChunk(adapterConfig({ encoding: name, chunkSize: 8 }), acts, 0, poses, out, 0, valid, 0);
    assert.deepEqual(Array.from(valid), [1, 1, 1, 1, 1, 0, 0, 0]);
    ref.chunk[name].forEach((row, k) => row.forEach((x, i) => assert.ok(Math.abs(out[k * 128 + i] - x) < 1e-12, `${name} step ${k} slot ${i}`)));
  }
  const cfg = adapterConfig({ useJoints: true, imageHeight: 1, imageWidth: 1 });
  const buf = allocObservation(cfg, cases.length);
  cases.forEach((c, b) => buildObservation(cfg, [null, { robot: { eefPos: c.pos, eefAxisAngle: c.aa, gripperQpos: [0.03, -0.025], jointPos: [0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6] }, images: { agentview: null, eyeInHand: null } }], buf, b));
  ref.state.forEach((row, b) => row.forEach((x, i) => assert.ok(Math.abs(buf.state[b * 128 + i] - x) < 1e-6, `state ${b} slot ${i}: ${buf.state[b * 128 + i]} vs ${x}`)));
});

test('encodings: LIBERO 7-D -> unified -> 7-D is exact to 1e-9 for every encoding, poses near pi included', () => {
  const r = new Rng(7);
  let worst = 0;
  for (const name of Object.keys(ENCODINGS)) {
    const e = getEncoding(name);
    for (const ang of ANGLES)
      for (let k = 0; k < 40; k++) {
        const a = [0, 1, 2, 3, 4, 5].map(() => (k % 5 === 0 ? [-1, 1, 0][r.int(3)] : r.uniform(-1, 1)));
        a.push(r.next() < 0.5 ? -1 : 1);
        const pose = { pos: [r.uniform(-0.5, 0.5), r.uniform(-0.5, 0.5), r.uniform(0.8, 1.4)], R: axisAngleToMat(randomAxisAngle(r, ang)) };
        const v = new Float64Array(256);
        e.encode(a, pose, v, 128);
        for (let i = 0; i < 128; i++) if (!e.slots.includes(i)) assert.equal(v[128 + i], 0, `${name} wrote outside its slots at ${i}`);
        const back = decodeAction({ encoding: name }, v, 128, pose);
        for (let i = 0; i < 7; i++) worst = Math.max(worst, Math.abs(back[i] - a[i]));
        assert.ok(back.every((x, i) => Math.abs(x - a[i]) <= 1e-9), `${name} at angle ${ang}: ${Array.from(back)} vs ${a}`);
      }
  }
  assert.ok(worst <= 1e-9);
  // Decoding against the stored axis-angle or the simulator quaternion gives the same command.
  const q = matToQuat(axisAngleToMat([Math.PI, 0.01, 0]));
  const robot = { eefPos: [0, 0, 1], eefQuat: q, gripperQpos: [0.0387, -0.0387] };
  const v = new Float64Array(128);
  getEncoding('eef_target_pose').encode([0.2, 0, 0, 0, 0.3, 0, -1], poseOf(robot), v, 0);
  const back = decodeAction({ encoding: 'eef_target_pose' }, v, 0, robot);
  assert.ok(Math.abs(back[4] - 0.3) < 1e-12 && Math.abs(back[0] - 0.2) < 1e-12);
});

test('encodeActionChunk: end padding per encoding and the validity mask', () => {
  const poses = [0, 1, 2].map((k) => ({ pos: [0.01 * k, 0, 1], R: axisAngleToMat([Math.PI, 0, 0]) }));
  const acts = new Float64Array([0.5, 0, 0, 0, 0, 0.2, 1, 0.5, 0, 0, 0, 0, 0.2, 1, 0.4, 0.1, 0, 0, 0, 0, -1]);
  for (const name of Object.keys(ENCODINGS)) {
    const cfg = adapterConfig({ encoding: name, chunkSize: 6 });
    const out = new Float32Array(6 * 128);
    const valid = new Float32Array(6);
    encodeActionChunk(cfg, acts, 0, poses, out, 0, valid, 0);
    assert.deepEqual(Array.from(valid), [1, 1, 1, 0, 0, 0]);
    for (let k = 3; k < 6; k++) {
      assert.equal(out[k * 128 + 10], 1, `${name}: padding keeps the last gripper (open)`);
      if (name === 'eef_target_pose') {
        for (let i = 0; i < 128; i++) assert.equal(out[k * 128 + i], out[2 * 128 + i]);
      } else for (let i = 39; i < 45; i++) assert.equal(out[k * 128 + i], 0, `${name}: padding is zero motion`);
    }
  }
});

test('buildObservation: state in SI units, masks, camera slots and orientation', () => {
  const cfg = adapterConfig({ encoding: 'eef_velocity', imageHeight: 2, imageWidth: 2, useJoints: true });
  const B = 2;
  const buf = allocObservation(cfg, B);
  const img = (v: number) => Uint8Array.from({ length: 12 }, (_, i) => v + Math.floor(i / 6)); // row 0 = v, row 1 = v+1
  const robot = { eefPos: [0.1, 0.2, 1.1], eefAxisAngle: [Math.PI, 0, 0], gripperQpos: [0.0387, -0.0387], jointPos: [1, 2, 3, 4, 5, 6, 7] };
  buildObservation(cfg, [null, { robot, images: { agentview: img(10), eyeInHand: img(20) } }], buf, 1);
  const s = buf.state.subarray(128, 256);
  assert.deepEqual(Array.from(s.subarray(0, 7)), [1, 2, 3, 4, 5, 6, 7]);
  assert.equal(s[10], 1);
  assert.ok(Math.abs(s[30] - 0.1) < 1e-7 && Math.abs(s[32] - 1.1) < 1e-7);
  assert.deepEqual(Array.from(s.subarray(33, 39)).map((x) => Math.round(x)), [1, 0, 0, 0, -1, 0]);
  const sm = buf.stateMask.subarray(128, 256);
  const on = (m: Float32Array) => [...m.keys()].filter((i) => m[i] === 1);
  assert.deepEqual(on(sm), [0, 1, 2, 3, 4, 5, 6, 10, 30, 31, 32, 33, 34, 35, 36, 37, 38]);
  assert.deepEqual(on(buf.actionSlotMask.subarray(128, 256)), [10, 39, 40, 41, 42, 43, 44]);
  assert.equal(on(buf.elemMask.subarray(128, 256)).length, 23);
  assert.deepEqual(Array.from(buf.imageMask.subarray(6, 12)), [0, 0, 0, 1, 1, 0]);
  const frame = 12;
  const at = (h: number, c: number) => Array.from(buf.images.subarray(((1 * 2 + h) * 3 + c) * frame, ((1 * 2 + h) * 3 + c + 1) * frame));
  assert.ok(at(0, 0).every((x) => x === 127), 'frame before the episode start is background');
  assert.deepEqual(at(1, 0), [11, 11, 11, 11, 11, 11, 10, 10, 10, 10, 10, 10]); // flipped upright
  assert.deepEqual(at(1, 1).slice(0, 6), [21, 21, 21, 21, 21, 21]);
  assert.ok(at(1, 2).every((x) => x === 127), 'left wrist slot is background');
  assert.equal(buf.ctrlFreq[1], 20);
});

test('evaluation path: a simulator observation (quaternion) builds the same state as the stored axis-angle', async () => {
  const { obsFrameFromEnv, ObservationHistory } = await import('../src/data/adapter.js');
  const cfg = adapterConfig({ imageHeight: 2, imageWidth: 2 });
  const aa = [Math.PI * 0.999, 0.02, -0.1];
  const R = axisAngleToMat(aa);
  const img = new Uint8Array(12).fill(9);
  const env = { robot0_eef_pos: [0.1, 0, 1.2], robot0_eef_quat: matToQuat(R), robot0_gripper_qpos: [0.02, -0.02], agentview_image: img, robot0_eye_in_hand_image: img };
  const h = new ObservationHistory(2);
  const a = allocObservation(cfg, 1);
  buildObservation(cfg, h.push(obsFrameFromEnv(env)), a);
  const b = allocObservation(cfg, 1);
  buildObservation(cfg, [null, { robot: { eefPos: [0.1, 0, 1.2], eefAxisAngle: aa, gripperQpos: [0.02, -0.02] }, images: { agentview: img, eyeInHand: img } }], b);
  for (let i = 0; i < 128; i++) assert.ok(Math.abs(a.state[i] - b.state[i]) < 1e-6, `slot ${i}`);
  assert.deepEqual(Array.from(a.imageMask), [0, 0, 0, 1, 1, 0]);
  buildObservation(cfg, h.push(obsFrameFromEnv(env)), a);
  assert.deepEqual(Array.from(a.imageMask), [1, 1, 0, 1, 1, 0]);
  h.reset();
  assert.deepEqual(h.current, [null, null]);
  assert.throws(() => obsFrameFromEnv({ robot0_eef_pos: [0, 0, 0] }), /key robot0_eef_quat: simulator observation lacks a key/);
});
