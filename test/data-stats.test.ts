// dataset_stat.json: the official std rule checked against numpy, action percentiles, the cache, the magnitude report.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LiberoDataset } from '../src/data/dataset.js';
import { writeSyntheticSuite } from '../src/data/synthetic.js';
import { computeStats, loadOrComputeStats, magnitudeReport, magnitudeRows, magnitudeWarnings } from '../src/data/stats.js';
import { encodeState } from '../src/data/adapter.js';
import { getEncoding } from '../src/data/encodings/index.js';
import { axisAngleToMat } from '../src/data/rotation.js';
import { runNumpy } from './helpers/python.js';

const tmp = mkdtempSync(join(tmpdir(), 'rdt-data-stats-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));
const root = join(tmp, 'data');
const ready = Promise.all([
  writeSyntheticSuite({ root, suite: 'libero_goal', tasks: 2, demos: 2, meanLength: 20, size: 8, seed: 1 }),
  writeSyntheticSuite({ root, suite: 'libero_object', tasks: 1, demos: 2, meanLength: 30, size: 8, seed: 2 }),
]);

test('state statistics follow the official rule (numpy reference); action statistics and percentiles', async () => {
  await ready;
  const ds = await LiberoDataset.open({ root, adapter: { encoding: 'eef_velocity', useJoints: true } });
  const st = computeStats(ds);
  assert.deepEqual(Object.keys(st), ['libero_object', 'libero_goal', 'libero']);
  const S: number[][] = [];
  const A: number[][] = [];
  const enc = getEncoding('eef_velocity');
  for (const ep of ds.index.episodes) {
    const ld = ds.files[ep.file].lowdim(ep.demo);
    for (let k = 0; k < ep.obs.length; k++) {
      const t = ep.obs[k], j = ep.act[k];
      const s = new Float64Array(128), a = new Float64Array(128);
      encodeState(ds.cfg, { eefPos: ld.eePos.subarray(t * 3, t * 3 + 3), eefAxisAngle: ld.eeOri.subarray(t * 3, t * 3 + 3), gripperQpos: ld.gripper.subarray(t * 2, t * 2 + 2), jointPos: ld.joints!.subarray(t * 7, t * 7 + 7) }, s);
      enc.encode(ld.actions.subarray(j * 7, j * 7 + 7), { pos: ld.eePos.subarray(t * 3, t * 3 + 3), R: axisAngleToMat(ld.eeOri.subarray(t * 3, t * 3 + 3)) }, a, 0);
      S.push(Array.from(s));
      A.push(Array.from(a));
    }
  }
  assert.equal(st.libero.num_steps, S.length);
  assert.equal(st.libero.num_steps, ds.size);
  assert.equal(st.libero.num_episodes, 6);
  assert.equal(st.libero_goal.num_steps + st.libero_object.num_steps, ds.size);
  // The official compute_dataset_stat.py rule, written in numpy.
  const ref = runNumpy<Record<string, number[]>>(`
x = np.array(inp['S']); a = np.array(inp['A'])
z = np.where(np.abs(x) <= 1e-8, 0.0, x)
nz = np.maximum((np.abs(x) > 1e-8).sum(0), 1)
N = x.shape[0]
out['state_mean'] = (x.sum(0) / N).tolist()
out['state_std'] = np.sqrt(np.maximum((z ** 2).sum(0) / nz - z.sum(0) ** 2 / (N * nz), 0)).tolist()
out['state_min'] = x.min(0).tolist(); out['state_max'] = x.max(0).tolist()
out['action_mean'] = a.mean(0).tolist(); out['action_std'] = a.std(0).tolist()
out['action_q01'] = np.percentile(a, 1, axis=0).tolist(); out['action_q99'] = np.percentile(a, 99, axis=0).tolist()
`, { S, A });
  for (const [k, v] of Object.entries(ref)) {
    const got = st.libero[k as 'state_mean'];
    assert.equal(got.length, 128);
    for (let i = 0; i < 128; i++) assert.ok(Math.abs(got[i] - v[i]) < 1e-9 * (1 + Math.abs(v[i])), `${k}[${i}]: ${got[i]} vs ${v[i]}`);
  }
  // unfilled slots are exactly zero; filled ones have spread
  assert.equal(st.libero.state_std[50], 0);
  assert.ok(st.libero.state_std[30] > 0 && st.libero.state_std[10] > 0);
  assert.ok(st.libero.action_q99[39] > st.libero.action_q01[39]);
  assert.equal(st.libero.action_encoding, 'eef_velocity');
  ds.close();
});

test('cache: computed once, reused, invalidated when an input file changes; written atomically', async () => {
  await ready;
  const cache = join(tmp, 'cache');
  const ds = await LiberoDataset.open({ root });
  const a = loadOrComputeStats(ds, cache);
  assert.equal(a.cached, false);
  const b = loadOrComputeStats(ds, cache);
  assert.equal(b.cached, true);
  assert.equal(b.path, a.path);
  assert.deepEqual(b.stats, JSON.parse(JSON.stringify(a.stats)));
  ds.close();
  const ds2 = await LiberoDataset.open({ root, adapter: { encoding: 'raw_delta' } });
  assert.equal(loadOrComputeStats(ds2, cache).cached, false, 'another encoding is another cache entry');
  ds2.close();
  utimesSync(ds.files[0].path, new Date(), new Date(Date.now() + 5000));
  const ds3 = await LiberoDataset.open({ root });
  const c = loadOrComputeStats(ds3, cache);
  assert.equal(c.cached, false);
  assert.notEqual(c.path, a.path);
  ds3.close();
  assert.deepEqual(readdirSync(cache).filter((f) => f.includes('.tmp-')), []);
  assert.equal(readdirSync(cache).length, 3);
});

test('magnitude report: SI encodings are balanced; the seeds\' metres-next-to-6D bug is flagged', async () => {
  await ready;
  for (const encoding of ['eef_target_pose', 'eef_velocity', 'raw_delta']) {
    const ds = await LiberoDataset.open({ root, adapter: { encoding } });
    const rep = magnitudeReport(computeStats(ds).libero, false);
    if (encoding === 'raw_delta') {
      // LIBERO's unitless rotation commands are small (~0.05) next to the gripper (~0.7): flagged, as it should be.
      assert.equal(rep.warnings.length, 1, rep.warnings.join('; '));
      assert.match(rep.warnings[0], /gripper open \(10\) has typical magnitude 0\.\d+, 1\d\.\dx that of eef angular velocity \(42-44\)/);
    } else assert.deepEqual(rep.warnings, [], `${encoding}: ${rep.warnings.join('; ')}`);
    assert.ok(rep.state.find((r) => r.group.startsWith('eef rotation'))!.rms > 0.5);
    ds.close();
  }
  // position deltas in metres (0.05 * a, a ~ 0.3) beside a 6-D rotation (rms sqrt(1/3))
  const rms = new Array(128).fill(0);
  [30, 31, 32].forEach((i) => (rms[i] = 0.015));
  [33, 34, 35, 36, 37, 38].forEach((i) => (rms[i] = Math.sqrt(1 / 3)));
  rms[10] = 0.6;
  const w = magnitudeWarnings('action', magnitudeRows(rms, [10, 30, 31, 32, 33, 34, 35, 36, 37, 38]));
  assert.equal(w.length, 2);
  assert.match(w[0], /gripper open \(10\) has typical magnitude 0\.600, 40\.0x that of eef position/);
  assert.match(w[1], /eef rotation 6-D \(33-38\) has typical magnitude 0\.577, 38\.5x that of eef position \(30-32\)/);
});
