// The demo's recordings: the scripted expert run in the sidecar's test back-end and written in the layout of
// LIBERO's released files. Checked with h5py and numpy from the documented rules (libero-facts.md 1.2:
// keys, dtypes, attributes, the release's one-step offset between states and observations, robosuite's
// quat2axisangle, upside-down images; reach_env.py: 0.05 m per unit action, the camera mapping), then read back
// by the data layer and by `rdt-libero data inspect`.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { LiberoDataset } from '../src/data/dataset.js';
import { LiberoFile } from '../src/data/hdf5/libero_file.js';
import { hash32 } from '../src/data/rng.js';
import { recordDemos } from '../src/demo/record.js';
import { BLOCK_STATE, BlockExpert, namedBlock } from '../src/demo/expert.js';
import { SidecarWorker } from '../src/eval/sidecar.js';
import { repoRoot } from './helpers/fixtures.js';
import { runNumpy, tempDir } from './helpers/python.js';

const { dir: work, cleanup } = tempDir('demo-record');
after(cleanup);
const MAIN = join(repoRoot(), 'dist', 'src', 'cli', 'main.js');

test('namedBlock reads the colour word; the expert closes only over its block', () => {
  assert.equal(namedBlock('pick up the yellow block'), 3);
  assert.equal(namedBlock('Pick up the RED block.'), 0);
  assert.equal(namedBlock('pick up the block'), -1);
  const s = new Float64Array(BLOCK_STATE.dim);
  s.set([0.1, 0.1, 1.1], BLOCK_STATE.eefPos);
  s.set([0.2, 0.2, 0.92, -0.2, 0, 0.92, 0, 0.2, 0.92, 0, -0.2, 0.92], BLOCK_STATE.blocks);
  const e = new BlockExpert(2, 5); // blue, at (0, 0.2)
  const a = e.act(s);
  assert.equal(a[6], -1, 'open while far');
  assert.ok(a[1] > 0 && Math.hypot(a[0], a[1], a[2]) <= 0.85 + 1e-12, `towards blue, at most 0.85: [${Array.from(a)}]`);
  s.set([0.001, 0.2, 0.925], BLOCK_STATE.eefPos);
  assert.equal(e.act(s)[6], 1, 'closes over the blue block');
});

test('recorded demonstrations: the release layout exactly (h5py), the release one-step offset, units, upside-down images', async () => {
  const root = join(work, 'data');
  const r = await recordDemos({ root, suite: 'libero_object', tasks: [0, 2], inits: [20, 21], resolution: 32, seed: 3 });
  assert.equal(r.demos, 4);
  assert.equal(r.dropped, 0);
  assert.deepEqual(r.files.map((f) => f.split('/').pop()), ['pick_up_the_blue_block_demo.hdf5', 'pick_up_the_red_block_demo.hdf5']);
  // The initial states the test back-end resets to, for init_state.
  const sim = await SidecarWorker.start({ backend: 'test' });
  await sim.open({ suite: 'libero_object', task: 0, resolution: 32, seed: 0, horizon: 10 });
  const init20 = (await sim.reset({ initIndex: 20, seed: 0 })).state!;
  await sim.close();

  const out = runNumpy<{ problems: string[]; demos: number; steps: number[]; init0: number[] }>(`
import json
problems = []
def check(c, what):
    if not c: problems.append(what)
def quat2axisangle(q):  # robosuite 1.4 utils/transform_utils.quat2axisangle
    q = q.copy(); q[3] = min(max(q[3], -1.0), 1.0)
    den = np.sqrt(1.0 - q[3] * q[3])
    return np.zeros(3) if math.isclose(den, 0.0) else (q[:3] * 2.0 * math.acos(q[3])) / den
colours = {'red': (220, 30, 30), 'green': (40, 170, 60), 'blue': (40, 80, 220), 'yellow': (230, 200, 30)}
steps = []
demos = 0
init0 = None
for fname, colour, block in [('pick_up_the_red_block_demo.hdf5', 'red', 0), ('pick_up_the_blue_block_demo.hdf5', 'blue', 2)]:
    f = h5py.File(inp['root'] + '/libero_object/' + fname, 'r')
    d = f['data']
    a = d.attrs
    lang = 'pick up the %s block' % colour
    check(json.loads(a['problem_info'])['language_instruction'] == lang, 'problem_info')
    env_args = json.loads(a['env_args'])
    check(env_args['env_kwargs']['camera_heights'] == 32 and env_args['env_kwargs']['control_freq'] == 20, 'env_args')
    check(env_args['env_kwargs']['controller_configs']['type'] == 'OSC_POSE', 'controller')
    check(a['macros_image_convention'] == 'opengl' and a['tag'] == 'libero-v1', 'convention/tag')
    check(('(:language %s)' % lang) in a['bddl_file_content'], 'bddl language')
    check(isinstance(a['env_name'], str) and isinstance(a['bddl_file_name'], str), 'names')
    names = sorted(k for k in d.keys())
    check(names == ['demo_0', 'demo_1'] and a['num_demos'] == 2, 'demo groups %s' % names)
    total = 0
    for name in names:
        g = d[name]
        T = g['actions'].shape[0]
        total += T
        steps.append(T)
        demos += 1
        want = {'actions': ((T, 7), 'float64'), 'states': ((T, 21), 'float64'), 'robot_states': ((T, 9), 'float64'),
                'rewards': ((T,), 'uint8'), 'dones': ((T,), 'uint8'), 'obs/agentview_rgb': ((T, 32, 32, 3), 'uint8'),
                'obs/eye_in_hand_rgb': ((T, 32, 32, 3), 'uint8'), 'obs/ee_pos': ((T, 3), 'float64'), 'obs/ee_ori': ((T, 3), 'float64'),
                'obs/ee_states': ((T, 6), 'float64'), 'obs/gripper_states': ((T, 2), 'float64'), 'obs/joint_states': ((T, 7), 'float64')}
        for k, (shape, dt) in want.items():
            check(g[k].shape == shape and str(g[k].dtype) == dt, '%s %s %s' % (k, g[k].shape, g[k].dtype))
            check(g[k].compression is None, k + ' compressed')
        check(sorted(g['obs'].keys()) == sorted(k[4:] for k in want if k.startswith('obs/')), 'obs keys')
        check(g.attrs['num_samples'] == T and isinstance(g.attrs['model_file'], str), 'demo attrs')
        S = g['states'][()]; A = g['actions'][()]; P = g['obs/ee_pos'][()]; RS = g['robot_states'][()]
        check(np.array_equal(g.attrs['init_state'], S[0]), 'init_state = states[0]')
        if fname.startswith('pick_up_the_red') and name == 'demo_0':
            init0 = S[0].tolist()
        last = np.zeros(T, np.uint8); last[-1] = 1
        check(np.array_equal(g['rewards'][()], last) and np.array_equal(g['dones'][()], last), 'rewards/dones')
        # The release's offset: obs[j] is after actions[j], states[j] before it, so obs[j] = states[j + 1].
        check(np.allclose(P[:-1], S[1:, 1:4], atol=0, rtol=0), 'obs/ee_pos[j] = states[j+1] eef')
        # The test back-end's OSC: the gripper moves 0.05 m per unit action from the state before it.
        check(np.allclose(P, np.clip(S[:, 1:4] + 0.05 * np.clip(A[:, :3], -1, 1), [-0.3, -0.3, 0.9], [0.3, 0.3, 1.3]), atol=1e-12), 'OSC step')
        check(np.allclose(g['obs/ee_ori'][()], np.array([quat2axisangle(q) for q in RS[:, 5:9]]), atol=1e-12), 'ee_ori = quat2axisangle')
        check(np.array_equal(g['obs/ee_states'][()], np.concatenate([P, g['obs/ee_ori'][()]], 1)), 'ee_states')
        check(np.array_equal(RS[:, 0:2], g['obs/gripper_states'][()]) and np.array_equal(RS[:, 2:5], P), 'robot_states')
        c_after = np.append(S[1:, 8], np.clip(S[-1, 8] + 0.25 * np.sign(A[-1, 6]), -1, 1))
        check(np.allclose(g['obs/gripper_states'][()][:, 0], 0.0387 * (1 - c_after) / 2, atol=1e-12), 'finger qpos')
        # The expert ended closed on the named block: within 2 cm horizontally, at most 2 cm above.
        b = S[-1, 9 + 3 * block: 12 + 3 * block]
        check(np.hypot(*(P[-1, :2] - b[:2])) <= 0.02 and P[-1, 2] - b[2] <= 0.02 and c_after[-1] >= 0.75, 'final grasp')
        # Images are stored upside down: flipped, each block's pixels centre where the camera puts the block.
        img = g['obs/agentview_rgb'][0]
        up = img[::-1]
        for ci, (cname, rgb) in enumerate(colours.items()):
            x, y = S[1, 9 + 3 * ci: 11 + 3 * ci]
            rr, cc = np.nonzero((np.abs(up.astype(int) - rgb).sum(-1) < 10))
            check(len(rr) > 0, cname + ' visible')
            if len(rr):
                check(abs(cc.mean() + 0.5 - (x + 0.3) / 0.6 * 32) < 1.0 and abs(rr.mean() + 0.5 - (0.3 - y) / 0.6 * 32) < 1.0, cname + ' position (upright = stored flipped)')
    check(a['total'] == total, 'total')
out = {'problems': problems, 'demos': demos, 'steps': steps, 'init0': init0}
`, { root });
  assert.deepEqual(out.problems, []);
  assert.equal(out.demos, 4);
  assert.ok(out.steps.every((T) => T >= 8 && T <= 40), `demo lengths ${out.steps}`);
  // demo_0 starts from initial state 20: the same robot state; the blocks where the state puts them up to the 2 mm
  // that every reset moves them (reach_env.py PLACEMENT_JITTER, like LIBERO's re-sampled fixture placements).
  assert.equal(out.init0.length, init20.length);
  out.init0.forEach((v, i) => {
    const blockXY = i >= 9 && (i - 9) % 3 !== 2;
    assert.ok(blockXY ? Math.abs(v - init20[i]) <= 0.004 + 1e-12 : v === init20[i], `state[${i}]: ${v} vs initial state 20's ${init20[i]}`);
  });

  // The data layer reads them as the release ('original' layout: each action paired with the observation before it).
  const ds = await LiberoDataset.open({ root, suites: ['libero_object'] });
  assert.deepEqual(ds.instructions, ['pick up the blue block', 'pick up the red block']);
  assert.ok(ds.files.every((f) => f.layout === 'original' && f.height === 32 && f.demos.length === 2));
  assert.equal(ds.index.total, out.steps.reduce((a, T) => a + T - 1, 0), 'realigned: one step fewer per demo');
  ds.close();
  const inspect = spawnSync(process.execPath, [MAIN, 'data', 'inspect', root], { encoding: 'utf8' });
  assert.equal(inspect.status, 0, inspect.stderr + inspect.stdout);
  assert.match(inspect.stdout, /libero_object \(libero_object\): 2 tasks, 4 demos/);
  assert.match(inspect.stdout, /0 problems/);

  // What a recorded action means is what the evaluation executes: the stored actions, replayed open-loop in the
  // test back-end from the same initial state and placement seed as the recording, solve every task again.
  const replay = await SidecarWorker.start({ backend: 'test' });
  try {
    for (const [task, file] of [[0, 'pick_up_the_red_block_demo.hdf5'], [2, 'pick_up_the_blue_block_demo.hdf5']] as const) {
      const f = LiberoFile.open(join(root, 'libero_object', file));
      await replay.open({ suite: 'libero_object', task, resolution: 32, seed: 0, horizon: 100 });
      for (const [d, init] of [20, 21].entries()) {
        const actions = f.lowdim(`demo_${d}`).actions;
        let o = await replay.reset({ initIndex: init, seed: hash32(3, task, init) });
        const T = actions.length / 7;
        for (let t = 0; t < T; t++) {
          assert.ok(!o.done, `task ${task} init ${init}: done before step ${t} of ${T}`);
          o = await replay.step(Array.from(actions.subarray(t * 7, t * 7 + 7)));
        }
        assert.ok(o.done, `task ${task} init ${init}: the ${T} recorded actions replayed do not succeed`);
      }
      f.close();
    }
  } finally {
    await replay.close();
  }
});
