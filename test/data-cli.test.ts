// `rdt-libero data inspect|stats`: every problem listed (not just the first), statistics written.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { data } from '../src/cli/data.js';
import { UsageError } from '../src/util/errors.js';
import { writeSyntheticSuite } from '../src/data/synthetic.js';
import { runNumpy } from './helpers/python.js';
import { repoRoot } from './helpers/fixtures.js';
import { captureStdout } from './helpers/capture.js';

const tmp = mkdtempSync(join(tmpdir(), 'rdt-data-cli-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));

test('inspect lists suites, tasks, instructions, magnitudes and every problem', async () => {
  const root = join(tmp, 'root');
  const [good] = await writeSyntheticSuite({ root, suite: 'libero_goal', tasks: 2, demos: 2, meanLength: 16, size: 8 });
  await writeSyntheticSuite({ root, suite: 'libero_object', tasks: 1, demos: 1, meanLength: 16, size: 8 });
  const bytes = readFileSync(good);
  writeFileSync(join(root, 'libero_object', 'cut_short_demo.hdf5'), bytes.subarray(0, bytes.length - 1000));
  runNumpy(`
with h5py.File(inp['path'], 'w') as f:
    d = f.create_group('data/demo_0')
    d.create_dataset('actions', data=np.zeros((5, 7)))
    d.create_dataset('obs/gripper_states', data=np.zeros((6, 2)))
    d.create_dataset('obs/ee_pos', data=np.zeros((5, 3)))
    d.create_dataset('obs/agentview_rgb', data=np.zeros((5, 8, 8, 3), dtype=np.uint8))
    d.create_dataset('obs/eye_in_hand_rgb', data=np.zeros((5, 8, 8, 3), dtype=np.uint8))
`, { path: join(root, 'libero_object', 'zz_broken_demo.hdf5') });
  const { code, out } = await captureStdout(() => data(['inspect', root]));
  assert.equal(code, 1);
  assert.match(out, /libero_object \(libero_object\): 2 tasks, 1 demos/);
  assert.match(out, /libero_goal \(libero_goal\): 2 tasks, 4 demos, \d+ sample steps/);
  assert.match(out, /instruction: "open the middle drawer of the cabinet"/);
  assert.match(out, /action eef rotation 6-D \(33-38\)\s+0\.5\d\d/);
  assert.match(out, /3 problems:/);
  assert.match(out, /cut_short_demo\.hdf5: truncated/);
  assert.match(out, /zz_broken_demo\.hdf5, demo demo_0, key obs\/ee_ori: missing key/);
  assert.match(out, /zz_broken_demo\.hdf5, demo demo_0, key obs\/gripper_states: mismatched lengths/);
});

test('stats writes dataset_stat.json in the official layout, then reuses the cache', async () => {
  const root = join(tmp, 'root2');
  await writeSyntheticSuite({ root, suite: 'libero_spatial', tasks: 1, demos: 2, meanLength: 16, size: 8 });
  const outFile = join(tmp, 'out', 'dataset_stat.json');
  const cache = join(tmp, 'cache');
  const a = await captureStdout(() => data(['stats', root, '--out', outFile, '--cache', cache, '--encoding', 'eef_velocity']));
  assert.equal(a.code, 0);
  assert.match(a.out, /computed statistics over \d+ steps of 2 demos \(eef_velocity\)/);
  const st = JSON.parse(readFileSync(outFile, 'utf8'));
  assert.deepEqual(Object.keys(st), ['libero_spatial', 'libero']);
  for (const k of ['state_mean', 'state_std', 'state_min', 'state_max', 'action_q01', 'action_q99']) assert.equal(st.libero[k].length, 128);
  assert.equal(st.libero.dataset_name, 'libero');
  const b = await captureStdout(() => data(['stats', root, '--out', outFile, '--cache', cache, '--encoding', 'eef_velocity']));
  assert.match(b.out, /^cached statistics/);
  assert.ok(existsSync(outFile));
  // Usage errors are thrown for main.ts to report (exit 2), never ignored.
  await assert.rejects(() => data(['bogus', root]), (e) => e instanceof UsageError && e.exitCode === 2 && /unknown subcommand 'bogus'/.test(e.message));
  await assert.rejects(() => data(['stats', root, '--out', outFile, '--bogus']), (e) => e instanceof UsageError && /unknown option '--bogus'/.test(e.message));
});

test('inspect flags problem_info only when its words differ from the file name, not its case, spacing or final period', async () => {
  const root = join(tmp, 'root-bddl');
  const files = await writeSyntheticSuite({ root, suite: 'libero_goal', tasks: 3, demos: 1, meanLength: 16, size: 8 });
  // The released BDDL text is capitalised ("Open the top drawer ...") where the file name is not: no mismatch.
  // A different wording is one, and is the only line inspect may flag.
  const wording: Record<string, string> = {
    open_the_middle_drawer_of_the_cabinet: 'Open the middle drawer of the cabinet',
    put_the_bowl_on_the_stove: '  Put the BOWL on   the stove. ',
    pick_up_the_black_bowl_and_place_it_on_the_plate: 'Put the black bowl on the plate',
  };
  const byTask = Object.fromEntries(files.map((p) => [p.replace(/^.*\//, '').replace(/_demo\.hdf5$/, ''), p]));
  assert.deepEqual(Object.keys(byTask).sort(), Object.keys(wording).sort());
  runNumpy(`
import json
for path, text in inp['files']:
    with h5py.File(path, 'r+') as f:
        f['data'].attrs['problem_info'] = json.dumps({'problem_name': 'libero_tabletop_manipulation', 'domain_name': 'robosuite', 'language_instruction': text})
`, { files: Object.entries(wording).map(([task, text]) => [byTask[task], text]) });
  const { code, out } = await captureStdout(() => data(['inspect', root]));
  assert.equal(code, 0, out);
  const flagged = out.split('\n').filter((l) => /\(differs;/.test(l));
  assert.deepEqual(flagged, ['    problem_info:  "Put the black bowl on the plate" (differs; evaluation prompts use the file name)'], out);
  // ... under its own task.
  assert.match(out, /pick_up_the_black_bowl_and_place_it_on_the_plate\n.*\n.*\n\s+problem_info:\s+"Put the black bowl on the plate"/);
});

test('stats keeps its cache beside --out by default, never in the current folder', async () => {
  const root = join(tmp, 'root-cache');
  await writeSyntheticSuite({ root, suite: 'libero_spatial', tasks: 1, demos: 1, meanLength: 16, size: 8 });
  const cwd = join(tmp, 'cwd');
  mkdirSync(cwd);
  const outFile = join(tmp, 'stats-out', 'dataset_stat.json');
  const r = spawnSync(process.execPath, [join(repoRoot(), 'dist', 'src', 'cli', 'main.js'), 'data', 'stats', root, '--out', outFile], { cwd, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(readdirSync(cwd), [], 'data stats wrote into the current folder');
  assert.ok(existsSync(outFile));
  const cache = join(tmp, 'stats-out', '.rdt-stats-cache');
  assert.equal(readdirSync(cache).filter((n) => /^dataset_stat-[0-9a-f]{16}\.json$/.test(n)).length, 1, readdirSync(cache).join(', '));
  assert.match(r.stdout, new RegExp(`cache ${cache.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/dataset_stat-`));
  // The help says where the cache goes.
  const h = spawnSync(process.execPath, [join(repoRoot(), 'dist', 'src', 'cli', 'main.js'), 'data', 'stats', '--help'], { cwd, encoding: 'utf8' });
  assert.equal(h.status, 0);
  assert.match(h.stdout, /--cache DIR\s+statistics cache \(default: \.rdt-stats-cache beside --out\)/);
});
