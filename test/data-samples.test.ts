// Full-step samples from a generated suite: the index count, alignment, state, action chunk, images and masks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LiberoDataset } from '../src/data/dataset.js';
import { synthesizeDemo, writeSyntheticSuite, type SyntheticOptions } from '../src/data/synthetic.js';
import { decodeAction } from '../src/data/adapter.js';
import { oscRef } from './helpers/osc-ref.js';

const tmp = mkdtempSync(join(tmpdir(), 'rdt-data-samples-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));
const opts: SyntheticOptions = { root: tmp, suite: 'libero_goal', tasks: 2, demos: 3, meanLength: 24, size: 16, seed: 11 };
const ready = writeSyntheticSuite(opts);
const demos = () => [0, 1].flatMap((k) => [0, 1, 2].map((d) => synthesizeDemo(opts, k, d)));

test('full-step index: the count is the sum over demos of valid steps, for each option', async () => {
  await ready;
  const Ts = demos().map((d) => d.T);
  const sum = (f: (T: number) => number) => Ts.reduce((a, T) => a + f(T), 0);
  // Generated demos: 3 leading idle actions (no-ops), a 2-step pause mid-way (no-ops), gripper changes elsewhere.
  const cases: [object, number][] = [
    [{ align: 'stored', skipLeadingIdle: false, dropNoops: false }, sum((T) => T)],
    [{ align: 'realign', skipLeadingIdle: false, dropNoops: false }, sum((T) => T - 1)],
    [{ align: 'auto', skipLeadingIdle: true, dropNoops: false }, sum((T) => T - 3)], // realign drops action 0, idle 1..2
    [{ align: 'stored', skipLeadingIdle: true, dropNoops: false }, sum((T) => T - 3)],
    [{ align: 'realign', skipLeadingIdle: true, dropNoops: true }, sum((T) => T - 5)],
  ];
  for (const [index, want] of cases) {
    const ds = await LiberoDataset.open({ root: tmp, index });
    assert.equal(ds.size, want, JSON.stringify(index));
    ds.close();
  }
  assert.equal(sum((T) => T - 3), 120); // pinned for this seed
});

test('realign pairs each action with the observation before it (original layout)', async () => {
  await ready;
  const ds = await LiberoDataset.open({ root: tmp, index: { align: 'realign', skipLeadingIdle: false } });
  const d = synthesizeDemo(opts, 1, 2);
  const ep = ds.index.episodes.find((e) => e.demo === d.name && ds.files[e.file].path.includes('open_the_middle'))!;
  for (let k = 0; k + 1 < ep.obs.length; k++) {
    const t = ep.obs[k];
    const j = ep.act[k];
    // the synthetic controller follows 90% of the command: obs[t] + 0.9 * 0.05 * a[j] = obs[t+1]
    for (let i = 0; i < 3; i++) assert.ok(Math.abs(d.eePos[t * 3 + i] + 0.045 * d.actions[j * 7 + i] - d.eePos[(t + 1) * 3 + i]) < 1e-12);
  }
  ds.close();
});

test('a sample: state, action chunk (decodes back to the stored commands), images and masks', async () => {
  await ready;
  for (const encoding of ['eef_target_pose', 'eef_velocity', 'raw_delta']) {
    const ds = await LiberoDataset.open({ root: tmp, adapter: { encoding, chunkSize: 16 } });
    assert.equal(ds.cfg.imageHeight, 16);
    const d = synthesizeDemo(opts, 0, 1);
    const fi = ds.files.findIndex((f) => f.path.includes('pick_up_the_black_bowl'));
    const ep = ds.index.episodes.findIndex((e) => e.file === fi && e.demo === d.name);
    const start = ds.index.offsets[ep];
    const len = ds.index.episodes[ep].obs.length;
    for (const k of [0, 1, 5, len - 3, len - 1]) {
      const b = ds.sample(start + k);
      const id = b.ids[0];
      assert.equal(id.demo, d.name);
      assert.equal(id.actionT, id.t + 1); // realigned
      const t = id.t;
      assert.equal(t, k + 2); // the two leading idle actions after action 0 are skipped
      assert.equal(b.instruction[0], 'pick up the black bowl and place it on the plate');
      assert.equal(b.suite[0], 'libero_goal');
      // state and the whole chunk (real steps encoded against the pose they ran from, then end padding), against
      // the numpy reference of the conventions (float32 storage: 1e-6)
      const n = Math.min(16, len - k);
      const ref = oscRef<{ state: number[]; chunk: number[][] }>(`
t = inp['t']; P = np.array(inp['pos']).reshape(-1, 3); O = np.array(inp['ori']).reshape(-1, 3); A = np.array(inp['act']).reshape(-1, 7)
out['state'] = state(P[t], O[t], np.array(inp['grip']).reshape(-1, 2)[t]).tolist()
rows = [encode(inp['name'], A[t + s + 1], P[t + s], aa2mat(O[t + s])) for s in range(inp['n'])]
while len(rows) < 16: rows.append(pad(inp['name'], rows[-1]))
out['chunk'] = [r.tolist() for r in rows]
`, { t, n, name: encoding, pos: Array.from(d.eePos), ori: Array.from(d.eeOri), act: Array.from(d.actions), grip: Array.from(d.gripper) });
      ref.state.forEach((x, i) => assert.ok(Math.abs(b.state[i] - x) < 1e-6, `state slot ${i}: ${b.state[i]} vs ${x}`));
      ref.chunk.forEach((row, s) => row.forEach((x, i) => assert.ok(Math.abs(b.actions[s * 128 + i] - x) < 1e-6, `${encoding} k=${k} step ${s} slot ${i}: ${b.actions[s * 128 + i]} vs ${x}`)));
      assert.equal(b.stateMask.reduce((a, x) => a + x, 0), 10);
      // real steps decode back to the stored commands (float32 storage: 2e-5)
      assert.equal(b.actionMask.reduce((a, x) => a + x, 0), n);
      for (let s = 0; s < n; s++) {
        const tt = t + s;
        const pose = { eefPos: d.eePos.subarray(tt * 3, tt * 3 + 3), eefAxisAngle: d.eeOri.subarray(tt * 3, tt * 3 + 3), gripperQpos: [0, 0] };
        const a = decodeAction({ encoding }, b.actions, s * 128, pose);
        for (let i = 0; i < 7; i++) assert.ok(Math.abs(a[i] - d.actions[(tt + 1) * 7 + i]) < 2e-5, `${encoding} k=${k} s=${s} i=${i}: ${a[i]} vs ${d.actions[(tt + 1) * 7 + i]}`);
      }
      // images: (history 2, slots 3, 16, 16, 3); upright = the stored frame flipped; red marker on top rows
      const F = 16 * 16 * 3;
      const slot = (h: number, c: number) => b.images.subarray((h * 3 + c) * F, (h * 3 + c + 1) * F);
      const stored = (tt: number) => d.agentview.subarray(tt * F, (tt + 1) * F);
      for (let y = 0; y < 16; y++) assert.deepEqual(slot(1, 0).subarray(y * 48, y * 48 + 48), stored(t).subarray((15 - y) * 48, (16 - y) * 48));
      assert.deepEqual(Array.from(slot(1, 0).subarray(0, 3)), [220, 20, 20]);
      if (k === 0) {
        assert.deepEqual(Array.from(b.imageMask), [0, 0, 0, 1, 1, 0]); // official rule: before the start is invalid
        assert.ok(slot(0, 0).every((x) => x === 127));
      } else {
        assert.deepEqual(Array.from(b.imageMask), [1, 1, 0, 1, 1, 0]);
        for (let y = 0; y < 16; y++) assert.deepEqual(slot(0, 0).subarray(y * 48, y * 48 + 48), stored(t - 1).subarray((15 - y) * 48, (16 - y) * 48));
      }
      assert.ok(slot(1, 2).every((x) => x === 127));
      assert.equal(b.ctrlFreq[0], 20);
    }
    ds.close();
  }
});

test('dropNoops keeps history and chunks over the kept steps only', async () => {
  await ready;
  const ds = await LiberoDataset.open({ root: tmp, index: { dropNoops: true }, adapter: { chunkSize: 64 } });
  const ep = ds.index.episodes[0];
  const gaps = [...ep.obs].slice(1).map((t, i) => t - ep.obs[i]);
  assert.equal(gaps.filter((g) => g !== 1).length, 1); // one jump over the 2-step pause
  const b = ds.sample(0);
  assert.equal(b.actionMask.reduce((a, x) => a + x, 0), Math.min(64, ep.obs.length));
  ds.close();
});
