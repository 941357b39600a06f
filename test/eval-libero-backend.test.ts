// The sidecar's LIBERO back-end (sidecar/libero_env.py) against stand-ins of LIBERO, robosuite and MuJoCo
// written here from LIBERO's documented API (libero-facts.md 4.1; LIBERO's libero/libero/__init__.py,
// benchmark/__init__.py and envs/env_wrapper.py), since CI cannot install LIBERO. The stand-ins keep what the
// back-end must get right: the config file LIBERO prompts for on import when it is missing (here: the import
// fails instead of reading the protocol's stdin), init states saved with torch.save (torch >= 2.6 loads them only
// with weights_only=False), robosuite's horizon, seeding before every reset, set_init_state's observation, the
// env's done flag, and robosuite's version.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runEval } from '../src/eval/run.js';
import { readRecords } from '../src/eval/results.js';
import { SidecarWorker } from '../src/eval/sidecar.js';
import { checkSim } from '../src/eval/doctor_sim.js';
import { scriptedPolicy } from '../src/eval/scripted_policy.js';
import { runPython, tempDir } from './helpers/python.js';
import { testEvalOptions } from './helpers/eval.js';

const { dir: work, cleanup } = tempDir('eval-libero');
after(cleanup);

const files: Record<string, string> = {
  'libero/libero/__init__.py': `
import os
libero_config_path = os.environ.get("LIBERO_CONFIG_PATH", os.path.expanduser("~/.libero"))
config_file = os.path.join(libero_config_path, "config.yaml")
if not os.path.exists(config_file):
    raise RuntimeError("LIBERO would prompt on stdin for a dataset folder here")
def get_libero_path(key):
    cfg = dict(l.split(": ", 1) for l in open(config_file).read().splitlines())
    return cfg[key]
`,
  'libero/libero/benchmark/__init__.py': `
from typing import NamedTuple
class Task(NamedTuple):
    name: str
    language: str
    problem: str
    problem_folder: str
    bddl_file: str
    init_states_file: str
class _Suite:
    n_tasks = 10
    def __init__(self, name):
        self.name = name
    def get_task(self, i):
        return Task(f"TASK_{i}", f"pick up the red block {i}", "p", self.name, f"TASK_{i}.bddl", f"TASK_{i}.pruned_init")
def get_benchmark_dict():
    return {s: (lambda s=s: _Suite(s)) for s in ("libero_goal", "libero_spatial")}
`,
  'libero/libero/envs/__init__.py': `
import json, os
import numpy as np
LOG = os.environ["FAKE_LIBERO_LOG"]
def log(**kw):
    with open(LOG, "a") as f: f.write(json.dumps(kw) + "\\n")
class OffScreenRenderEnv:
    def __init__(self, **kw):
        assert os.path.exists(kw["bddl_file_name"]), kw["bddl_file_name"]
        self.kw = kw; self.n = 0
        log(op="init", **{k: v for k, v in kw.items()})
    def seed(self, s): log(op="seed", seed=s)
    def reset(self): log(op="reset")
    def set_init_state(self, s):
        self.state = np.asarray(s); self.n = 0
        log(op="set_init_state", state=self.state.tolist())
        return self.obs()
    def get_sim_state(self):  # ControlEnv: self.env.sim.get_state().flatten(), the state set_init_state set
        return self.state.copy()
    def obs(self):
        r = self.kw["camera_heights"]
        img = np.zeros((r, r, 3), np.uint8); img[0, 0] = 255
        return {"robot0_eef_pos": np.array([0.1, 0.0, 1.1]), "robot0_eef_quat": np.array([1.0, 0, 0, 0]),
                "robot0_gripper_qpos": np.array([0.03, -0.03]), "robot0_joint_pos": np.zeros(7),
                "agentview_image": img, "robot0_eye_in_hand_image": img}
    def step(self, a):
        if os.environ.get("FAKE_LIBERO_STEP_ERROR"):  # robosuite 1.4.1's controller under MuJoCo 3.14
            raise AttributeError("'mujoco._structs.MjData' object has no attribute 'qM'")
        self.n += 1
        # done (success) at policy step 3 when the initial state says so (its first value is 1)
        return self.obs(), 0.0, bool(self.state[0] == 1 and self.n >= self.wait + 3), {}
    wait = 10
    def close(self): log(op="close")
`,
  'robosuite/__init__.py': '__version__ = "1.4.1"\n',
  'mujoco/__init__.py': '__version__ = "3.2.3"\n',
};

function fakeInstall(root: string, robosuiteVersion = '1.4.1', mujocoVersion = '3.2.3'): void {
  for (const [p, text] of Object.entries(files)) {
    mkdirSync(join(root, p, '..'), { recursive: true });
    writeFileSync(join(root, p), p === 'robosuite/__init__.py' ? `__version__ = "${robosuiteVersion}"\n` : p === 'mujoco/__init__.py' ? `__version__ = "${mujocoVersion}"\n` : text);
  }
  const pkg = join(root, 'libero', 'libero');
  for (const suite of ['libero_goal', 'libero_spatial']) {
    mkdirSync(join(pkg, 'bddl_files', suite), { recursive: true });
    mkdirSync(join(pkg, 'init_files', suite), { recursive: true });
    for (let t = 0; t < 10; t++) writeFileSync(join(pkg, 'bddl_files', suite, `TASK_${t}.bddl`), '(define)');
    // 50 init states of 79 values, saved the way LIBERO's are (torch.save of a numpy array); row k starts with k.
    runPython(`
import sys, numpy as np, torch
a = np.zeros((50, 79)); a[:, 0] = np.arange(50); a[:, 1] = 0.5
for t in range(10): torch.save(a, f"{sys.argv[1]}/TASK_{t}.pruned_init")
`, join(pkg, 'init_files', suite));
  }
}

test('LIBERO back-end: config written so the import never prompts, init states via weights_only=False, horizon, seeding per episode or per task (openpi\'s call order), done = success', async () => {
  const root = join(work, 'site');
  fakeInstall(root);
  const cfgDir = join(work, 'cfg');
  const log = join(work, 'env.log');
  const env = { PYTHONPATH: root, LIBERO_CONFIG_PATH: cfgDir, FAKE_LIBERO_LOG: log, MUJOCO_GL: '', DISPLAY: '' };
  const r = await runEval(scriptedPolicy('reach-unflipped'), testEvalOptions(join(work, 'out'), {
    tasks: [4], episodesPerTask: 3, maxSteps: 20, sidecar: { backend: 'libero', env },
  }));
  const cfg = readFileSync(join(cfgDir, 'config.yaml'), 'utf8');
  for (const k of ['benchmark_root', 'bddl_files', 'init_states', 'datasets', 'assets']) assert.match(cfg, new RegExp(`^${k}: ${root}/libero/libero`, 'm'));
  const recs = readRecords(join(work, 'out', 'episodes.jsonl'));
  assert.deepEqual(recs.map((x) => [x.init, x.success, x.steps, x.language, x.task_name]), [
    [0, false, 20, 'pick up the red block 4', 'TASK_4'], [1, true, 3, 'pick up the red block 4', 'TASK_4'], [2, false, 20, 'pick up the red block 4', 'TASK_4']]);
  assert.equal(r.summary.suites.libero_goal.successes, 1);
  const calls = readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const init = calls.find((c) => c.op === 'init');
  assert.equal(init.camera_heights, 64);
  assert.equal(init.camera_widths, 64);
  assert.equal(init.horizon, 20 + 10 + 50);
  assert.match(init.bddl_file_name, /bddl_files\/libero_goal\/TASK_4\.bddl$/);
  // The env seeded once made (as openpi's _get_libero_env), then each episode: seed(7), reset, set_init_state(row k).
  const seq = () => readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((c) => c.op !== 'init')
    .map((c) => (c.op === 'set_init_state' ? `set:${c.state[0]}:${c.state.length}` : c.op === 'seed' ? `seed:${c.seed}` : c.op));
  assert.deepEqual(seq(), ['seed:7', 'seed:7', 'reset', 'set:0:79', 'seed:7', 'reset', 'set:1:79', 'seed:7', 'reset', 'set:2:79', 'close']);
  // --seeding per-task: openpi examples/libero/main.py's calls exactly: env made, env.seed(7), then per episode
  // env.reset() and env.set_init_state(initial_states[k]).
  writeFileSync(log, '');
  await runEval(scriptedPolicy('reach-unflipped'), testEvalOptions(join(work, 'out-pt'), {
    tasks: [4], episodesPerTask: 3, maxSteps: 20, seeding: 'per-task', sidecar: { backend: 'libero', env },
  }));
  assert.deepEqual(seq(), ['seed:7', 'reset', 'set:0:79', 'reset', 'set:1:79', 'reset', 'set:2:79', 'close']);
});

test('doctor --sim names a robosuite/MuJoCo pair outside the known-good ones with the fix, and repeats it when a stage fails', async () => {
  const lines = (root: string, extra: Record<string, string> = {}) => {
    const out: string[] = [];
    const env = { PYTHONPATH: root, LIBERO_CONFIG_PATH: join(work, 'cfg-doc'), FAKE_LIBERO_LOG: join(work, 'doc.log'), MUJOCO_GL: '', DISPLAY: '', ...extra };
    return { out, run: checkSim({ backend: 'libero', env }, (l) => out.push(l), 32) };
  };
  const good = join(work, 'site-3.2.3');
  fakeInstall(good);
  const a = lines(good);
  await a.run;
  assert.ok(a.out.some((l) => /^sim versions +ok \(robosuite 1\.4\.1 \+ mujoco 3\.2\.3: a pair known to work\)/.test(l)), a.out.join('\n'));
  const newest = join(work, 'site-3.14');
  fakeInstall(newest, '1.4.1', '3.14.0');
  const b = lines(newest);
  await b.run;
  const warning = /robosuite 1\.4\.1 with MuJoCo 3\.14\.0 is not a pair known to work for LIBERO \(known: robosuite 1\.4\.1 \+ mujoco 3\.2\.3 \(openpi's examples\/libero\/requirements\.txt at 15a9616\)\); robosuite 1\.4\.x fails with MuJoCo 3\.14 unless patched .*fix: pip install mujoco==3\.2\.3/;
  assert.ok(b.out.some((l) => /^sim versions +warning: /.test(l) && warning.test(l)), b.out.join('\n'));
  assert.ok(b.out.some((l) => /^sim render +ok/.test(l)), 'a patched install passes every stage, with the warning');
  // Unpatched: the step fails in robosuite's controller; the error carries the pair and the fix.
  const c = lines(newest, { FAKE_LIBERO_STEP_ERROR: '1' });
  await assert.rejects(c.run, (e) => /sidecar step failed \(env\): AttributeError: .*no attribute 'qM'/.test((e as Error).message) && warning.test((e as Error).message));
});

test('LIBERO back-end: MUJOCO_GL defaults to egl without a display; robosuite 1.5 and a missing LIBERO are one message with the fix', async () => {
  const root = join(work, 'site15');
  fakeInstall(root, '1.5.2');
  const base = { LIBERO_CONFIG_PATH: join(work, 'cfg15'), FAKE_LIBERO_LOG: join(work, 'x.log'), MUJOCO_GL: '', DISPLAY: '' };
  await assert.rejects(SidecarWorker.start({ backend: 'libero', env: { ...base, PYTHONPATH: root } }),
    /robosuite 1\.5\.2 is installed; LIBERO needs robosuite 1\.4\.x \(1\.5 removed SingleArmEnv\); fix: pip install robosuite==1\.4\.1/);
  await assert.rejects(SidecarWorker.start({ backend: 'libero', env: { ...base, PYTHONPATH: join(work, 'empty') } }),
    /the 'libero' package is not installed in this Python; fix: install LIBERO/);
  const good = join(work, 'site14');
  fakeInstall(good);
  const ok = await SidecarWorker.start({ backend: 'libero', env: { ...base, PYTHONPATH: good } });
  const hello = await ok.ready;
  await ok.close();
  assert.equal((hello.versions as Record<string, string>).MUJOCO_GL, 'egl');
  assert.equal((hello.versions as Record<string, string>).robosuite, '1.4.1');
});
