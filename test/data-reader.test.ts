// Reading LIBERO files written by h5py (as the real ones are) and by our generator, field by field; bad input.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, readFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { h5ready } from '../src/data/hdf5/h5.js';
import { LiberoFile, instructionFromFileName } from '../src/data/hdf5/libero_file.js';
import { discoverSuites } from '../src/data/discover.js';
import { synthesizeDemo, syntheticBddlInstruction, writeSyntheticSuite } from '../src/data/synthetic.js';
import { LiberoDataset } from '../src/data/dataset.js';
import { runNumpy } from './helpers/python.js';

const tmp = mkdtempSync(join(tmpdir(), 'rdt-data-reader-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));

test('instruction from the file name follows LIBERO (SCENE prefix stripped)', () => {
  assert.equal(instructionFromFileName('/x/KITCHEN_SCENE3_turn_on_the_stove_and_put_the_moka_pot_on_it_demo.hdf5'), 'turn on the stove and put the moka pot on it');
  assert.equal(instructionFromFileName('LIVING_ROOM_SCENE10_put_both_x_demo.hdf5'), 'put both x');
  assert.equal(instructionFromFileName('pick_up_the_black_bowl_demo.hdf5'), 'pick up the black bowl');
});

test('reads an h5py-written original-layout file: every field equals what was written', async () => {
  await h5ready();
  const dir = join(tmp, 'h5py', 'libero_goal');
  mkdirSync(dir, { recursive: true });
  const path = join(dir, 'open_the_middle_drawer_of_the_cabinet_demo.hdf5');
  const ref = runNumpy<{ demos: Record<string, { actions: number[][]; ee_pos: number[][]; ee_ori: number[][]; gripper: number[][]; joints: number[][]; px: number[] }>; all: Record<string, { shape: number[]; sha: string; attrs: Record<string, unknown> }> }>(`
rng = np.random.default_rng(3)
demos = {}
with h5py.File(inp['path'], 'w') as f:
    g = f.create_group('data')
    g.attrs['env_name'] = 'Libero_Kitchen_Tabletop_Manipulation'
    g.attrs['problem_info'] = json.dumps({'problem_name': 'p', 'domain_name': 'robosuite', 'language_instruction': 'Open the middle layer of the drawer'})
    g.attrs['macros_image_convention'] = 'opengl'
    g.attrs['num_demos'] = 2
    g.attrs['total'] = 11 + 7
    g.attrs['tag'] = 'libero-v1'
    for i, T in enumerate([11, 7]):
        d = g.create_group(f'demo_{i}')
        d.attrs['num_samples'] = T
        d.attrs['init_state'] = rng.standard_normal(79)
        a = rng.uniform(-1, 1, (T, 7)); a[:, 6] = np.sign(a[:, 6])
        d.create_dataset('actions', data=a)
        d.create_dataset('states', data=rng.standard_normal((T, 79)))
        d.create_dataset('rewards', data=np.eye(T, dtype=np.uint8)[-1])
        d.create_dataset('dones', data=np.eye(T, dtype=np.uint8)[-1])
        o = d.create_group('obs')
        ee = np.concatenate([rng.uniform(-0.3, 1.2, (T, 3)), rng.uniform(-3.2, 3.2, (T, 3))], 1)
        o.create_dataset('ee_states', data=ee)
        o.create_dataset('ee_pos', data=ee[:, :3])
        o.create_dataset('ee_ori', data=ee[:, 3:])
        gr = np.stack([rng.uniform(0, 0.04, T), -rng.uniform(0, 0.04, T)], 1)
        o.create_dataset('gripper_states', data=gr)
        j = rng.standard_normal((T, 7))
        o.create_dataset('joint_states', data=j)
        av = rng.integers(0, 256, (T, 128, 128, 3), dtype=np.uint8)
        o.create_dataset('agentview_rgb', data=av)
        o.create_dataset('eye_in_hand_rgb', data=255 - av)
        demos[f'demo_{i}'] = dict(actions=a.tolist(), ee_pos=ee[:, :3].tolist(), ee_ori=ee[:, 3:].tolist(), gripper=gr.tolist(), joints=j.tolist(),
                                  px=[int(av[T-1, 5, 7, 1]), int(av[2, 127, 0, 2]), int(av[0, 0, 0, 0])])
out['demos'] = demos
import hashlib
allds = {}
with h5py.File(inp['path'], 'r') as f:
    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            a = obj[()]
            a = a.astype(np.float64) if a.dtype != np.uint8 else a
            allds[name] = {'shape': list(obj.shape), 'sha': hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest(), 'attrs': {}}
        elif name.count('/') == 1:
            allds[name] = {'shape': [], 'sha': '', 'attrs': {k: (v.tolist() if hasattr(v, 'tolist') else v) for k, v in obj.attrs.items()}}
    f.visititems(visit)
out['all'] = allds
`, { path });
  const f = LiberoFile.open(path);
  try {
    assert.deepEqual(f.problems, []);
    assert.equal(f.layout, 'original');
    assert.equal(f.height, 128);
    assert.deepEqual(f.demos.map((d) => [d.name, d.length]), [['demo_0', 11], ['demo_1', 7]]);
    assert.equal(f.instruction(), 'open the middle drawer of the cabinet');
    assert.equal(f.instruction('problem_info'), 'Open the middle layer of the drawer');
    assert.equal(f.attributes.num_demos, 2); // int64 attribute read as a number, not a BigInt
    assert.equal(f.attributes.tag, 'libero-v1');
    // every dataset of every demo, byte for byte (sha256 of the float64 / uint8 contents), and the demo attributes
    const { createHash } = await import('node:crypto');
    let checked = 0;
    for (const [name, r] of Object.entries(ref.all)) {
      const [, demo, ...rest] = name.split('/');
      if (!rest.length) {
        const got = f.demoAttributes(demo);
        assert.deepEqual(Object.keys(got).sort(), Object.keys(r.attrs).sort());
        for (const [k, v] of Object.entries(r.attrs)) assert.deepEqual(ArrayBuffer.isView(got[k]) ? Array.from(got[k] as Float64Array) : got[k], v, `${demo}.attrs.${k}`);
        continue;
      }
      const got = f.read(demo, rest.join('/'));
      assert.deepEqual(got.shape, r.shape, name);
      assert.equal(createHash('sha256').update(Buffer.from(got.data.buffer, got.data.byteOffset, got.data.byteLength)).digest('hex'), r.sha, name);
      checked++;
    }
    assert.equal(checked, 2 * 11);
    for (const [name, d] of Object.entries(ref.demos)) {
      const ld = f.lowdim(name);
      assert.deepEqual(Array.from(ld.actions), d.actions.flat());
      assert.deepEqual(Array.from(ld.eePos), d.ee_pos.flat());
      assert.deepEqual(Array.from(ld.eeOri), d.ee_ori.flat());
      assert.deepEqual(Array.from(ld.gripper), d.gripper.flat());
      assert.deepEqual(Array.from(ld.joints!), d.joints.flat());
      const T = d.actions.length;
      const av = f.frames(name, 'agentview', T - 1, T);
      assert.equal(av.length, 128 * 128 * 3);
      assert.equal(av[(5 * 128 + 7) * 3 + 1], d.px[0]);
      assert.equal(f.frames(name, 'agentview', 2, 3)[(127 * 128 + 0) * 3 + 2], d.px[1]);
      assert.equal(f.frames(name, 'eye_in_hand', 0, 1)[0], 255 - d.px[2]);
    }
  } finally {
    f.close();
  }
});

test('generator: original layout, attribute types and dtypes as h5py sees them; our reader returns what was generated', async () => {
  const opts = { root: join(tmp, 'gen'), suite: 'libero_10' as const, tasks: 2, demos: 3, meanLength: 20, seed: 5 };
  const files = await writeSyntheticSuite(opts);
  assert.equal(files.length, 2);
  const py = runNumpy<{ attrs: Record<string, string>; demo_attrs: Record<string, string>; dtypes: Record<string, string>; shapes: Record<string, number[]>; keys: string[]; sha: Record<string, string>; total: number }>(`
with h5py.File(inp['path'], 'r') as f:
    g = f['data']
    def kind(v):
        return type(v).__name__ + ':' + (str(v.dtype) if hasattr(v, 'dtype') else '')
    out['attrs'] = {k: kind(v) for k, v in g.attrs.items()}
    out['demo_attrs'] = {k: kind(v) for k, v in g['demo_0'].attrs.items()}
    out['keys'] = sorted(g['demo_0'].keys()) + sorted('obs/' + k for k in g['demo_0/obs'].keys())
    out['dtypes'] = {}
    out['shapes'] = {}
    def visit(name, obj):
        if isinstance(obj, h5py.Dataset) and name.startswith('demo_0/'):
            out['dtypes'][name[7:]] = str(obj.dtype)
            out['shapes'][name[7:]] = list(obj.shape)
            assert obj.compression is None
    g.visititems(visit)
    import hashlib
    out['sha'] = {k: hashlib.sha256(np.ascontiguousarray(g['demo_0'][k][()]).tobytes()).hexdigest() for k in out['dtypes']}
    out['total'] = int(g.attrs['total'])
`, { path: files[1] });
  assert.deepEqual(py.attrs, {
    bddl_file_content: 'str:', bddl_file_name: 'str:', env_args: 'str:', env_name: 'str:', macros_image_convention: 'str:',
    num_demos: 'int64:int64', problem_info: 'str:', tag: 'str:', total: 'int64:int64',
  });
  assert.deepEqual(py.demo_attrs, { init_state: 'ndarray:float64', model_file: 'str:', num_samples: 'int64:int64' });
  assert.deepEqual(py.keys, ['actions', 'dones', 'obs', 'rewards', 'robot_states', 'states',
    'obs/agentview_rgb', 'obs/ee_ori', 'obs/ee_pos', 'obs/ee_states', 'obs/eye_in_hand_rgb', 'obs/gripper_states', 'obs/joint_states']);
  const d0 = synthesizeDemo(opts, 1, 0);
  assert.deepEqual(py.dtypes, {
    actions: 'float64', dones: 'uint8', rewards: 'uint8', robot_states: 'float64', states: 'float64',
    'obs/agentview_rgb': 'uint8', 'obs/ee_ori': 'float64', 'obs/ee_pos': 'float64', 'obs/ee_states': 'float64',
    'obs/eye_in_hand_rgb': 'uint8', 'obs/gripper_states': 'float64', 'obs/joint_states': 'float64',
  });
  assert.deepEqual(py.shapes['obs/agentview_rgb'], [d0.T, 128, 128, 3]);
  // h5py reads back exactly what the generator produced, for every dataset
  const { createHash } = await import('node:crypto');
  const sha = (a: ArrayBufferView) => createHash('sha256').update(Buffer.from(a.buffer, a.byteOffset, a.byteLength)).digest('hex');
  const last = new Uint8Array(d0.T);
  last[d0.T - 1] = 1;
  const eeStates = new Float64Array(d0.T * 6);
  for (let t = 0; t < d0.T; t++) {
    eeStates.set(d0.eePos.subarray(t * 3, t * 3 + 3), t * 6);
    eeStates.set(d0.eeOri.subarray(t * 3, t * 3 + 3), t * 6 + 3);
  }
  const want: Record<string, ArrayBufferView> = {
    actions: d0.actions, states: d0.states, robot_states: d0.robotStates, rewards: last, dones: last,
    'obs/agentview_rgb': d0.agentview, 'obs/eye_in_hand_rgb': d0.eyeInHand, 'obs/ee_pos': d0.eePos, 'obs/ee_ori': d0.eeOri,
    'obs/ee_states': eeStates, 'obs/gripper_states': d0.gripper, 'obs/joint_states': d0.joints,
  };
  assert.deepEqual(Object.keys(py.sha).sort(), Object.keys(want).sort());
  for (const [k, v] of Object.entries(want)) assert.equal(py.sha[k], sha(v), k);
  assert.equal(py.total, [0, 1, 2].reduce((a, d) => a + synthesizeDemo(opts, 1, d).T, 0));
  assert.deepEqual(py.shapes.states, [d0.T, 47]);

  const f = LiberoFile.open(files[1]);
  try {
    assert.deepEqual(f.problems, []);
    assert.equal(f.instruction(), 'open the middle drawer of the cabinet');
    assert.equal(f.instruction('problem_info'), syntheticBddlInstruction('libero_10', 1));
    for (let d = 0; d < 3; d++) {
      const want = synthesizeDemo(opts, 1, d);
      assert.equal(f.demos[d].length, want.T);
      const ld = f.lowdim(want.name);
      assert.deepEqual(ld.actions, want.actions);
      assert.deepEqual(ld.eePos, want.eePos);
      assert.deepEqual(ld.eeOri, want.eeOri);
      assert.deepEqual(ld.gripper, want.gripper);
      assert.deepEqual(ld.joints, want.joints);
      assert.deepEqual(f.frames(want.name, 'agentview', 0, want.T), want.agentview);
      assert.deepEqual(f.frames(want.name, 'eye_in_hand', 3, 5), want.eyeInHand.subarray(3 * 49152, 5 * 49152));
    }
  } finally {
    f.close();
  }
  // robot_states = [gripper qpos (2), eef pos (3), eef quat xyzw (4)], consistent with ee_pos/ee_ori
  const { quatToMat, axisAngleToMat: aa2m, matDist } = await import('../src/data/rotation.js');
  for (const dd of [synthesizeDemo(opts, 0, 0), synthesizeDemo(opts, 0, 1)])
    for (let t = 0; t < dd.T; t++) {
      const rs = dd.robotStates.subarray(t * 9, t * 9 + 9);
      assert.deepEqual(Array.from(rs.subarray(0, 2)), Array.from(dd.gripper.subarray(t * 2, t * 2 + 2)));
      assert.deepEqual(Array.from(rs.subarray(2, 5)), Array.from(dd.eePos.subarray(t * 3, t * 3 + 3)));
      assert.ok(matDist(quatToMat(rs.subarray(5, 9)), aa2m(dd.eeOri.subarray(t * 3, t * 3 + 3))) < 1e-12);
    }
  // Generated motion is consistent: in the original layout obs[t] is the pose after action t (90% tracking).
  const d = synthesizeDemo(opts, 0, 0);
  for (let t = 1; t < d.T; t++)
    for (let i = 0; i < 3; i++) assert.ok(Math.abs(d.eePos[t * 3 + i] - d.eePos[(t - 1) * 3 + i] - 0.9 * 0.05 * d.actions[t * 7 + i]) < 1e-12);
  // odd demos store |ee_ori| above pi (the long way round), even ones at most pi
  const norms = (x: Float64Array) => Array.from({ length: x.length / 3 }, (_, t) => Math.hypot(x[3 * t], x[3 * t + 1], x[3 * t + 2]));
  assert.ok(Math.max(...norms(synthesizeDemo(opts, 0, 1).eeOri)) > Math.PI + 1e-3);
  assert.ok(Math.max(...norms(d.eeOri)) <= Math.PI + 1e-12);
  assert.ok(Math.min(...norms(d.eeOri)) > 2.5, 'the gripper points down: |ee_ori| near pi');
});

test('regenerated layout: no attributes, 256x256, demo numbering with gaps, discovery of _no_noops', async () => {
  const root = join(tmp, 'regen');
  const opts = { root, suite: 'libero_spatial' as const, tasks: 1, demos: 2, meanLength: 10, layout: 'regenerated' as const };
  await writeSyntheticSuite(opts);
  await writeSyntheticSuite({ root, suite: 'libero_goal', tasks: 1, demos: 1, meanLength: 10, size: 32 });
  const suites = discoverSuites(root);
  assert.deepEqual(suites.map((s) => [s.suite, s.folder]), [['libero_spatial', 'libero_spatial_no_noops'], ['libero_goal', 'libero_goal']]);
  assert.deepEqual(discoverSuites(join(root, 'libero_goal')).map((s) => s.suite), ['libero_goal']);
  const f = LiberoFile.open(suites[0].files[0]);
  try {
    assert.equal(f.layout, 'regenerated');
    assert.deepEqual(Object.keys(f.attributes), []);
    assert.equal(f.height, 256);
    assert.deepEqual(f.demos.map((d) => d.name), ['demo_0', 'demo_2']);
    assert.throws(() => f.instruction('problem_info'), /no problem_info.*use instruction source 'filename'/);
    // regenerated: obs[t] is the pose before action t
    const want = synthesizeDemo(opts, 0, 1);
    assert.deepEqual(f.lowdim('demo_2').eePos, want.eePos);
  } finally {
    f.close();
  }
  assert.throws(() => discoverSuites(join(root, 'libero_goal', 'nope')), /dataset root is not a directory/);
  assert.throws(() => discoverSuites(tmp), /no LIBERO suite folder found/);
});

test('suites are selected by exact folder name: libero_goal and libero_goal_no_noops side by side (the README layout)', async () => {
  const root = join(tmp, 'both');
  await writeSyntheticSuite({ root, suite: 'libero_goal', tasks: 1, demos: 1, meanLength: 10, size: 32 });
  await writeSyntheticSuite({ root, suite: 'libero_goal', tasks: 1, demos: 1, meanLength: 10, layout: 'regenerated' });
  const folders = (only?: string[]) => discoverSuites(root, only).map((s) => s.folder);
  assert.deepEqual(folders(), ['libero_goal', 'libero_goal_no_noops']);
  assert.deepEqual(folders(['libero_goal']), ['libero_goal']);
  assert.deepEqual(folders(['libero_goal_no_noops']), ['libero_goal_no_noops']);
  // the README's run.yaml with this layout opens one resolution, so it trains
  const ds = await LiberoDataset.open({ root, suites: ['libero_goal'] });
  try {
    assert.deepEqual(ds.suiteFolders, ['libero_goal']);
    assert.equal(ds.cfg.imageHeight, 32);
  } finally {
    ds.close();
  }
  // a name that matches no folder lists what was found
  assert.throws(() => discoverSuites(root, ['libero_spatial']), /no suite folder named libero_spatial.*found: libero_goal, libero_goal_no_noops/);
  const only = join(tmp, 'only-regen');
  await writeSyntheticSuite({ root: only, suite: 'libero_10', tasks: 1, demos: 1, meanLength: 10, layout: 'regenerated' });
  assert.throws(() => discoverSuites(only, ['libero_10']), /no suite folder named libero_10.*found: libero_10_no_noops.*did you mean libero_10_no_noops/);
});

test('bad input: each problem names the file, demo and key; all problems are collected', async () => {
  await h5ready();
  const dir = join(tmp, 'bad');
  mkdirSync(dir, { recursive: true });
  const missing = join(dir, 'missing_demo.hdf5');
  assert.throws(() => LiberoFile.open(missing), (e: Error) => e.message.includes(missing) && /not found/.test(e.message));
  const [good] = await writeSyntheticSuite({ root: dir, suite: 'libero_goal', tasks: 1, demos: 2, meanLength: 10, size: 16 });
  const trunc = join(dir, 'trunc_demo.hdf5');
  const bytes = readFileSync(good);
  writeFileSync(trunc, bytes.subarray(0, Math.floor(bytes.length / 2)));
  assert.throws(() => LiberoFile.open(trunc), (e: Error) => e.message.includes(trunc) && /truncated: \d+ bytes on disk/.test(e.message));
  writeFileSync(join(dir, 'text_demo.hdf5'), 'hello');
  assert.throws(() => LiberoFile.open(join(dir, 'text_demo.hdf5')), /not an HDF5 file/);
  const broken = join(dir, 'broken_demo.hdf5');
  runNumpy(`
with h5py.File(inp['path'], 'w') as f:
    g = f.create_group('data')
    def demo(name, T, skip=(), lens={}, lzf=()):
        d = g.create_group(name)
        o = d.create_group('obs')
        spec = {'actions': 7, 'obs/ee_pos': 3, 'obs/ee_ori': 3, 'obs/gripper_states': 2, 'obs/joint_states': 7}
        for k, w in spec.items():
            if k in skip: continue
            kw = {'compression': 'lzf'} if k in lzf else {}
            d.create_dataset(k, data=np.zeros((lens.get(k, T), w)), **kw)
        for k in ['obs/agentview_rgb', 'obs/eye_in_hand_rgb']:
            d.create_dataset(k, data=np.zeros((T, 8, 8, 3), dtype=np.uint8))
    demo('demo_0', 5)
    demo('demo_1', 5, skip=('obs/gripper_states',))
    demo('demo_2', 5, lens={'actions': 4})
    demo('demo_3', 5, lzf=('obs/ee_pos',))
`, { path: broken });
  const f = LiberoFile.open(broken);
  try {
    assert.deepEqual(f.demos.map((d) => d.name), ['demo_0']);
    const msgs = f.problems.map((p) => p.message);
    assert.equal(msgs.length, 3, msgs.join('\n'));
    assert.ok(msgs[0].includes(`file ${broken}, demo demo_1, key obs/gripper_states: missing key`), msgs[0]);
    assert.ok(/demo demo_2, key actions: mismatched lengths: actions=4, .*obs\/gripper_states=5/.test(msgs[1]), msgs[1]);
    assert.ok(/demo demo_3, key obs\/ee_pos: unsupported HDF5 filter 'lzf'/.test(msgs[2]), msgs[2]);
    assert.equal(f.problems[2].demo, 'demo_3');
    assert.equal(f.problems[2].key, 'obs/ee_pos');
  } finally {
    f.close();
  }
  // a NaN in the data: the error names the file's own key (obs/ee_pos, not an internal field name), demo and step
  const nan = join(dir, 'nan_demo.hdf5');
  runNumpy(`
with h5py.File(inp['path'], 'w') as f:
    d = f.create_group('data').create_group('demo_0')
    spec = {'actions': 7, 'obs/ee_pos': 3, 'obs/ee_ori': 3, 'obs/gripper_states': 2, 'obs/joint_states': 7}
    for k, w in spec.items():
        a = np.zeros((6, w))
        if k == 'obs/ee_pos': a[4, 1] = np.nan
        d.create_dataset(k, data=a)
    for k in ['obs/agentview_rgb', 'obs/eye_in_hand_rgb']:
        d.create_dataset(k, data=np.zeros((6, 8, 8, 3), dtype=np.uint8))
`, { path: nan });
  const fn = LiberoFile.open(nan);
  try {
    assert.throws(() => fn.lowdim('demo_0'), (e: Error) => e.message.startsWith(`file ${nan}, demo demo_0, key obs/ee_pos, step 4: non-finite value NaN`));
  } finally {
    fn.close();
  }
  const empty = join(dir, 'empty_demo.hdf5');
  runNumpy(`
with h5py.File(inp['path'], 'w') as f:
    f.create_group('data')
`, { path: empty });
  const e = LiberoFile.open(empty);
  assert.equal(e.demos.length, 0);
  assert.match(e.problems[0].message, /empty_demo\.hdf5, key data: no demo_\* groups \(empty suite file\)/);
  e.close();
});

test('image reads: direct preads equal h5wasm for h5py files of every header version; chunked/filtered fall back', async () => {
  await h5ready();
  const dir = join(tmp, 'layouts');
  mkdirSync(dir, { recursive: true });
  const cases = runNumpy<{ files: { path: string; direct: boolean; px: number[] }[] }>(`
files = []
for name, libver, chunks, comp in [('v0', 'earliest', None, None), ('latest', 'latest', None, None), ('v110', ('v110', 'latest'), None, None),
                                   ('chunked', 'earliest', (2, 8, 8, 3), None), ('gzip', 'earliest', (2, 8, 8, 3), 'gzip')]:
    path = inp['dir'] + '/' + name + '_demo.hdf5'
    rng = np.random.default_rng(len(name))
    with h5py.File(path, 'w', libver=libver) as f:
        for i in range(3):
            d = f.create_group(f'data/demo_{i}')
            T = 9 + i
            d.attrs['many'] = np.arange(50.0)  # bigger headers
            for k in range(30):
                d.attrs[f'attr_{k}'] = 'x' * 40  # forces header continuation blocks
            d.create_dataset('actions', data=rng.standard_normal((T, 7)))
            d.create_dataset('obs/ee_pos', data=rng.standard_normal((T, 3)))
            d.create_dataset('obs/ee_ori', data=rng.standard_normal((T, 3)))
            d.create_dataset('obs/gripper_states', data=rng.standard_normal((T, 2)))
            av = rng.integers(0, 256, (T, 8, 8, 3), dtype=np.uint8)
            d.create_dataset('obs/agentview_rgb', data=av, chunks=chunks, compression=comp)
            d.create_dataset('obs/eye_in_hand_rgb', data=av[::-1].copy(), chunks=chunks, compression=comp)
    files.append({'path': path, 'direct': chunks is None, 'px': [int(x) for x in av.reshape(-1)[:: 37]]})
out['files'] = files
`, { dir });
  for (const c of cases.files) {
    const f = LiberoFile.open(c.path);
    try {
      assert.deepEqual(f.problems, []);
      assert.equal(f.readsDirect('demo_2', 'agentview'), c.direct, c.path);
      const T = f.demo('demo_2').length;
      const direct = f.frames('demo_2', 'agentview', 0, T);
      assert.deepEqual(Array.from(direct.filter((_, i) => i % 37 === 0)), c.px, c.path);
      f.directReads = false;
      for (const cam of ['agentview', 'eye_in_hand'] as const)
        for (const [a, b] of [[0, 1], [3, 5], [T - 1, T]]) {
          const viaWasm = f.frames('demo_2', cam, a, b);
          f.directReads = true;
          assert.deepEqual(f.frames('demo_2', cam, a, b), viaWasm);
          f.directReads = false;
        }
    } finally {
      f.close();
    }
  }
});
