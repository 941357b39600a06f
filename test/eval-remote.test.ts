// `rdt-libero eval --policy ws://...`: a remote policy over openpi's websocket protocol in the evaluation loop.
// The request is built as openpi's LIBERO example client builds it (checked against that client's preprocessing
// done in Python with PIL and robosuite's quat2axisangle, test/py/openpi_client_check.py). Against a server that
// behaves as openpi's upstream server does (test/py/openpi_server_double.py: every frame to policy.infer, a
// traceback text frame and close 1011 on error, no acknowledgements), whole evaluations with default flags and with
// --exec-horizon 5 record every episode and send nothing but openpi's LIBERO requests. End to end, `rdt-libero
// serve` on a tiny policy + `rdt-libero eval --sim test` executes exactly the actions the in-process policy predicts
// for the observation the simulator gave (its request's seed, the server's documented inverse computed in Python);
// through `serve --format native` the same checkpoint executes, for whole episodes, exactly the actions of a local
// evaluation. A server killed mid-run stops the eval with a clear error after bounded, counted reconnects, the
// finished episodes are kept and the same command resumes; a connection dropped mid-episode restarts the episode; a
// server's error frame is an eval error, never a silent failure.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as torch from '../src/engine/index.js';
import { obsFrameFromEnv } from '../src/data/adapter.js';
import { Rng } from '../src/data/rng.js';
import { PROTOCOLS } from '../src/eval/protocol.js';
import { readRecords } from '../src/eval/results.js';
import { requestSeed } from '../src/eval/seeding.js';
import { SidecarWorker } from '../src/eval/sidecar.js';
import { EvalError, PolicyReconnected } from '../src/eval/errors.js';
import { liberoRequest, resizeWithPad } from '../src/openpi/formats.js';
import { WsChunkPolicy } from '../src/eval/ws_policy.js';
import { openPolicy } from '../src/eval/policy_source.js';
import { type NdArray, decode, encode } from '../src/openpi/codec.js';
import { WebSocketServer } from 'ws';
import { PolicyServer, SERVE_DEFAULTS } from '../src/serve/server.js';
import { loadPolicy, type Policy } from '../src/policy/index.js';
import { repoRoot } from './helpers/fixtures.js';
import { runPythonJson, tempDir } from './helpers/python.js';
import { actionLog } from './helpers/eval.js';
import { OpenpiClient } from '../src/openpi/client.js';
import { OpenpiError } from '../src/openpi/errors.js';
import { makeTinyPolicy } from './helpers/tiny-policy.js';

const { dir: work, cleanup } = tempDir('eval-remote');
const MAIN = join(repoRoot(), 'dist', 'src', 'cli', 'main.js');
const PY_CLIENT_DIR = join(repoRoot(), 'test', 'py');
// One libtorch thread here and in the children: the same arithmetic on both sides of the wire, and no OpenMP
// spinning on a shared CPU.
const ENV = { ...process.env, OMP_NUM_THREADS: '1' };
let policyDir = '';
let policy: Policy;
const children: ChildProcess[] = [];

before(async () => {
  torch.setNumThreads(1);
  ({ policy: policyDir } = await makeTinyPolicy(work, { size: 32 }));
  policy = loadPolicy(policyDir);
});

after(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  policy?.dispose();
  cleanup();
});

/** `rdt-libero serve` on the tiny policy at a free port; resolves with its address once it listens. */
function serve(...extra: string[]): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, [MAIN, 'serve', '--checkpoint', policyDir, '--port', '0', '--threads', '1', ...extra], { env: ENV, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (d) => {
      out += d;
      const m = /on (ws:\/\/[\d.]+:\d+)/.exec(out);
      if (m) resolve({ child, url: m[1] });
    });
    child.once('exit', (code) => reject(new Error(`serve exited ${code} before listening: ${out}`)));
  });
}

/** Run the CLI without blocking this process; resolves with its exit code and output. */
function cli(args: string[], env: Record<string, string> = {}): { done: Promise<{ code: number | null; stdout: string; stderr: string }>; child: ChildProcess } {
  const child = spawn(process.execPath, [MAIN, ...args], { env: { ...ENV, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let stdout = '', stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  return { child, done: new Promise((resolve) => child.once('exit', (code) => resolve({ code, stdout, stderr }))) };
}

/** openpi's LIBERO client preprocessing and the server's documented inverse, in Python (PIL), from raw renders. */
const PY_PRELUDE = `
import numpy as np
sys.path.insert(0, ${JSON.stringify(PY_CLIENT_DIR)})
from openpi_client_check import libero_request, recovered, resize_with_pad

def quat2axisangle(quat):  # robosuite transform_utils.quat2axisangle, as openpi's LIBERO example copies it
    quat = np.array(quat, dtype=np.float64)
    if quat[3] > 1.0: quat[3] = 1.0
    elif quat[3] < -1.0: quat[3] = -1.0
    den = np.sqrt(1.0 - quat[3] * quat[3])
    if math.isclose(den, 0.0): return np.zeros(3)
    return (quat[:3] * 2.0 * math.acos(quat[3])) / den
`;

test('the request: openpi LIBERO client preprocessing (rotate 180, PIL bilinear resize_with_pad to 224, robosuite axis-angle)', () => {
  const rng = new Rng(4);
  const img = (h: number, w: number) => Uint8Array.from({ length: h * w * 3 }, () => rng.int(256));
  const agent = img(256, 256), wrist = img(256, 256), odd = img(40, 64);
  // w < 0 (no sign flip in robosuite's formula: angle > pi), w = 1 (zero rotation), the LIBERO start pose.
  const quats = [[0.9998, 0.0009, -0.0139, 0.0125], [0.1, -0.7, 0.2, -0.678], [0, 0, 0, 1]];
  const ref = runPythonJson<{ image: number[]; wrist: number[]; odd: number[]; states: number[][] }>(PY_PRELUDE, `
a = np.array(inp['agent'], np.uint8).reshape(256, 256, 3); w = np.array(inp['wrist'], np.uint8).reshape(256, 256, 3)
states = [np.concatenate((inp['pos'], quat2axisangle(q), inp['qpos'])).tolist() for q in inp['quats']]
req = libero_request(a, w, np.array(states[0]), 'p')
out = {'image': req['observation/image'].ravel().tolist(), 'wrist': req['observation/wrist_image'].ravel().tolist(), 'states': states,
       'odd': resize_with_pad(np.array(inp['odd'], np.uint8).reshape(40, 64, 3), 224, 224).ravel().tolist()}
`, { agent: Array.from(agent), wrist: Array.from(wrist), odd: Array.from(odd), quats, pos: [-0.21, -0.011, 1.174], qpos: [0.0387, -0.0387] });
  quats.forEach((q, i) => {
    const r = liberoRequest({ robot: { eefPos: [-0.21, -0.011, 1.174], eefQuat: q, gripperQpos: [0.0387, -0.0387] }, images: { agentview: agent, eyeInHand: wrist } }, 256, 'p');
    const state = r['observation/state'] as NdArray;
    assert.deepEqual([state.dtype, state.shape], ['<f8', [8]]);
    const got = Array.from(state.data as Float64Array);
    got.forEach((v, d) => assert.ok(Math.abs(v - ref.states[i][d]) < 1e-12, `quat ${i} dim ${d}: ${v} vs ${ref.states[i][d]}`));
    if (i > 0) return;
    const im = r['observation/image'] as NdArray;
    assert.deepEqual([im.dtype, im.shape], ['|u1', [224, 224, 3]]);
    assert.deepEqual(Array.from(im.data as Uint8Array), ref.image, 'agentview: rotated and resized as openpi\'s client does');
    assert.deepEqual(Array.from((r['observation/wrist_image'] as NdArray).data as Uint8Array), ref.wrist);
    assert.equal(r.prompt, 'p');
  });
  assert.deepEqual(Array.from(resizeWithPad(odd, 40, 64, 224, 224)), ref.odd, 'a non-square frame: resized to fit, zero padding centred');
});

test('rdt-libero serve + rdt-libero eval --policy ws:// with 2 workers: each episode executes the in-process policy\'s actions for its observation and seed', async () => {
  const { child, url } = await serve();
  const log = join(work, 'actions.log');
  const out = join(work, 'remote');
  const r = await cli(['eval', '--policy', url, '--sim', 'test', '--suite', 'libero_goal', '--tasks', '1', '--episodes', '2', '--max-steps', '8',
    '--exec-horizon', '4', '--seed', '11', '--workers', '2', '--videos', 'none', '--out', out], { RDT_TEST_ENV_ACTION_LOG: log }).done;
  child.kill('SIGTERM');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /openpi remote rdt-libero policy 'final' \(format libero, action horizon 64, seeded requests\).*sim test at 256px/);
  assert.match(r.stderr, /0 reconnect\(s\) to the remote policy/);
  const recs = readRecords(join(out, 'episodes.jsonl'));
  assert.equal(recs.length, 2);
  for (const x of recs) if (!x.success) assert.deepEqual(x.replans, [0, 4]);
  assert.deepEqual(recs.map((x) => x.checkpoint_step), [2, 2], 'the served folder\'s training step, from the metadata');
  const episodes = actionLog(log);
  assert.deepEqual(episodes.map((ep) => ep[0].init).sort(), [0, 1]);

  // Independently, per episode: the same episode start in a fresh sidecar at openpi's 256 px, the request and the
  // server's documented inverse (crop, rotate back, PIL bicubic to the checkpoint's 32 px) in Python, predict().
  // Each episode's first request carries its own seed (seeding.ts's rule for --seed 11, task 1, request 0), and the
  // server sees the libero format's one frame with the older slot empty.
  for (const ep of episodes) {
    const init = ep[0].init;
    const sim = await SidecarWorker.start({ backend: 'test' });
    let o;
    try {
      await sim.open({ suite: 'libero_goal', task: 1, resolution: 256, seed: 11, horizon: 100 });
      o = await sim.reset({ initIndex: init, seed: 11 });
      for (let i = 0; i < 10; i++) o = await sim.step(PROTOCOLS.openpi.waitAction);
    } finally {
      await sim.close();
    }
    const f = obsFrameFromEnv(o.obs);
    const ref = runPythonJson<{ agent: number[]; wrist: number[]; state: number[] }>(PY_PRELUDE, `
a = np.array(inp['agent'], np.uint8).reshape(256, 256, 3); w = np.array(inp['wrist'], np.uint8).reshape(256, 256, 3)
state = np.concatenate((inp['pos'], quat2axisangle(inp['quat']), inp['qpos']))
req = libero_request(a, w, state, 'p')
out = {'agent': recovered(req['observation/image'], 32, 32).ravel().tolist(), 'wrist': recovered(req['observation/wrist_image'], 32, 32).ravel().tolist(), 'state': state.tolist()}
`, { agent: Array.from(f.images.agentview!), wrist: Array.from(f.images.eyeInHand!), pos: Array.from(f.robot.eefPos), quat: Array.from(f.robot.eefQuat!), qpos: Array.from(f.robot.gripperQpos) });
    const frame = {
      robot: { eefPos: ref.state.slice(0, 3), eefAxisAngle: ref.state.slice(3, 6), gripperQpos: ref.state.slice(6, 8) },
      images: { agentview: Uint8Array.from(ref.agent), eyeInHand: Uint8Array.from(ref.wrist) },
    };
    const want = policy.predict({ history: [null, frame], instruction: recs[0].language }, { seed: requestSeed(11, 'libero_goal', 1, init, 0) }).actions;
    // Steps 0-3 execute rows 0-3 of the first reply as sent (decoded by the server against the request's pose).
    for (let k = 0; k < 4; k++) assert.deepEqual(ep[10 + k].action, Array.from(want.subarray(k * 7, k * 7 + 7)), `init ${init}, policy step ${k}`);
  }
});

test('rdt-libero eval --workers 4 against rdt-libero serve: every env\'s request goes out at once on its own connection, the server batches them (its metrics show batches of more than one)', async () => {
  const metrics = join(work, 'concurrent-serve.jsonl');
  const { child, url } = await serve('--metrics', metrics);
  // The server batches what is queued when the model is free (it never waits for more), so requests only meet when
  // the workers' episodes overlap in time: 8 requests per episode keep each worker asking for over a second, longer
  // than the workers' simulators take to start one after another on a small, busy machine (2 requests per episode
  // were served one by one there once).
  const r = await cli(['eval', '--policy', url, '--sim', 'test', '--suite', 'libero_goal', '--tasks', '0,1', '--episodes', '2', '--max-steps', '32',
    '--exec-horizon', '4', '--workers', '4', '--videos', 'none', '--out', join(work, 'concurrent')]).done;
  const exited = new Promise((res) => child.once('exit', res));
  child.kill('SIGTERM'); // the server writes its last metrics record as it stops
  await exited;
  assert.equal(r.code, 0, r.stderr);
  // The client side: no request waited for another (one per call, as many calls as requests).
  assert.match(r.stderr, /model call\(s\) \(mean batch 1\.00\)/);
  const recs = readFileSync(metrics, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const requests = recs.reduce((a, x) => a + x.requests, 0), calls = recs.reduce((a, x) => a + x.model_calls, 0);
  assert.equal(requests, readRecords(join(work, 'concurrent', 'episodes.jsonl')).reduce((a, x) => a + x.model_calls, 0), 'every chunk request reached the server');
  assert.ok(calls < requests && recs.some((x) => x.mean_batch > 1), `the server made ${calls} model calls for ${requests} requests: ${JSON.stringify(recs)}`);
});

test('a server killed mid-run: a clear error after 3 counted reconnect attempts, the finished episodes kept, the same command resumes', async () => {
  const first = await serve();
  const out = join(work, 'killed');
  const args = (url: string) => ['eval', '--policy', url, '--sim', 'test', '--suite', 'libero_goal', '--tasks', '0', '--episodes', '5', '--max-steps', '12',
    '--exec-horizon', '4', '--videos', 'none', '--out', out];
  const run = cli(args(first.url));
  const file = join(out, 'episodes.jsonl');
  const lines = () => (existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean).length : 0);
  const t0 = Date.now();
  while (lines() < 1 && Date.now() - t0 < 120_000) await new Promise((res) => setTimeout(res, 20));
  first.child.kill('SIGKILL');
  const r = await run.done;
  assert.equal(r.code, 1, r.stderr);
  const errLine = r.stderr.trim().split('\n').at(-1)!;
  assert.match(errLine, /remote policy ws:\/\/.*still after 3 reconnect attempts; the episodes already recorded are kept: restart the server and re-run the same command to resume/);
  assert.equal((r.stderr.match(/reconnecting \(attempt \d of 3\)/g) ?? []).length, 3);
  const kept = readRecords(file, true).length;
  assert.ok(kept >= 1 && kept < 5, `${kept} episodes recorded before the kill`);

  // A new server (another port: the results name the policy, not the address) and the same command: resumed.
  const second = await serve();
  const again = await cli(args(second.url)).done;
  second.child.kill('SIGTERM');
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stderr, new RegExp(`resuming .*: ${kept} episode\\(s\\) already recorded, ${5 - kept} to run`));
  const recs = readRecords(file);
  assert.deepEqual(recs.map((x) => x.episode).sort(), [0, 1, 2, 3, 4]);
});

test('in process: a connection dropped between episodes is reopened (counted); mid-episode the episode is interrupted; a server error frame is an EvalError', async () => {
  const opts = { ...SERVE_DEFAULTS, checkpoint: policyDir, port: 0, threads: 1, log: () => {} };
  let server = await PolicyServer.start(opts);
  const lines: string[] = [];
  const remote = await openPolicy({ policy: server.url, log: (l) => lines.push(l) }) as WsChunkPolicy;
  assert.ok(remote instanceof WsChunkPolicy);
  assert.equal(remote.execHorizon, 16, 'the metadata\'s exec_horizon (policy.json)');
  assert.match(remote.inputs, /^the current frame only, with the 1 older history slot\(s\) empty/);
  const sim = await SidecarWorker.start({ backend: 'test' });
  const restart = async () => {
    const port = Number(new URL(server.url).port);
    await server.close();
    server = await PolicyServer.start({ ...opts, port });
  };
  try {
    await sim.open({ suite: 'libero_goal', task: 0, resolution: 256, seed: 5, horizon: 100 });
    const f = obsFrameFromEnv((await sim.reset({ initIndex: 0, seed: 5 })).obs);
    const input = { history: [f], instruction: 'put the bowl on the plate' };
    remote.startEpisode(0);
    const [a] = await remote.predictChunks([input], [0], [5]);
    assert.equal(a.length, 64);
    // The server goes away and comes back on the same port while the episode runs: whatever it held for the
    // episode is gone, so the episode is interrupted (the run retries it from its initial state).
    await restart();
    await assert.rejects(remote.predictChunks([input], [0], [6]), (e: unknown) => e instanceof PolicyReconnected && /after 1 reply of this episode/.test((e as Error).message));
    // The retried episode's first request opens a new connection (counted) and is served.
    remote.startEpisode(0);
    const [b] = await remote.predictChunks([input], [0], [5]);
    assert.equal(remote.reconnects, 1);
    assert.equal(b.length, 64);
    assert.deepEqual(Array.from(b.action(0, f.robot)), Array.from(a.action(0, f.robot)), 'the same request and seed: the same actions');
    // Dropped between episodes: the next episode's first request reconnects (counted, logged), no interruption.
    await restart();
    remote.startEpisode(0);
    await remote.predictChunks([input], [0], [7]);
    assert.equal(remote.reconnects, 2);
    assert.match(lines.join('\n'), /connection closed .*reconnecting \(attempt 1 of 3\)/);
    // The server's error frame (a prompt over its limit): an EvalError naming the kind, not retried.
    await assert.rejects(remote.predictChunks([{ ...input, instruction: 'x'.repeat(5000) }], [0], [8]),
      (e: unknown) => e instanceof EvalError && !(e instanceof PolicyReconnected) && /answered BadRequest: 'prompt' must be a non-empty string/.test((e as Error).message));
    assert.equal(remote.reconnects, 2);
  } finally {
    await remote.close();
    await server.close();
    await sim.close();
  }
});

test('serve --format native: the same checkpoint and seed give, for whole episodes, exactly the actions of a local evaluation', async () => {
  const { child, url } = await serve('--format', 'native');
  const logs = { local: join(work, 'identity-local.log'), served: join(work, 'identity-served.log') };
  const common = ['--sim', 'test', '--suite', 'libero_goal', '--tasks', '0,1', '--episodes', '2', '--max-steps', '24', '--exec-horizon', '4', '--seed', '3', '--videos', 'none'];
  const served = await cli(['eval', '--policy', url, ...common, '--out', join(work, 'identity-served')], { RDT_TEST_ENV_ACTION_LOG: logs.served }).done;
  child.kill('SIGTERM');
  const local = await cli(['eval', '--policy', policyDir, '--threads', '1', ...common, '--out', join(work, 'identity-local')], { RDT_TEST_ENV_ACTION_LOG: logs.local }).done;
  assert.equal(served.code, 0, served.stderr);
  assert.equal(local.code, 0, local.stderr);
  assert.match(served.stderr, /format native, action horizon 64, seeded requests.*sim test at 32px/);
  const recs = (tag: 'local' | 'served') => readRecords(join(work, `identity-${tag}`, 'episodes.jsonl'));
  const outcome = (tag: 'local' | 'served') => recs(tag).map((r) => `${r.task}/${r.episode}: ${r.success} ${r.steps} [${r.replans}]`).sort();
  assert.equal(outcome('local').length, 4);
  assert.deepEqual(outcome('served'), outcome('local'));
  for (const r of recs('served')) assert.match(r.inputs, /^the current and 1 previous frame, 1 env step apart as in training \(native format at 32px/);
  for (const r of recs('local')) assert.match(r.inputs, /^the current and 1 previous frame, 1 env step apart as in training \(the simulator's frames at 32px\)/);
  // Every action of every episode, bit for bit: up to 24 policy steps = 6 chunks, each decoded step by step against
  // the pose measured before it, from frames one env step apart.
  const byEpisode = (f: string) => new Map(actionLog(f).map((ep) => [`${ep[0].task}/${ep[0].init}`, ep.map((x) => x.action)]));
  const a = byEpisode(logs.local), b = byEpisode(logs.served);
  assert.equal(a.size, 4);
  for (const r of recs('local')) {
    const k = `${r.task}/${r.init}`;
    assert.equal(a.get(k)!.length, 10 + r.steps, `${k}: wait steps + policy steps`);
    assert.ok(r.steps > 4, `${k}: more than one chunk executed`);
    assert.deepEqual(b.get(k), a.get(k), `episode ${k}`);
  }
});

test('an openpi-like server (empty metadata, 10-action float32 replies, no seed key): horizon from the reply, openpi\'s keys only, bad replies refused', async () => {
  // A stand-in for openpi's serve_policy.py: metadata {} on connect, one reply per frame, nothing else; its replies
  // are scripted per test step below.
  const seen: Record<string, unknown>[] = [];
  let reply: (req: Record<string, unknown>) => unknown = () => ({ actions: { dtype: '<f4', shape: [10, 7], data: Float32Array.from({ length: 70 }, (_, i) => i / 100) } });
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise((r) => wss.once('listening', r));
  wss.on('connection', (ws) => {
    ws.send(encode({}));
    ws.on('message', (data) => {
      const req = decode(data as Buffer) as Record<string, unknown>;
      seen.push(req);
      ws.send(encode(reply(req)));
    });
  });
  const url = `ws://127.0.0.1:${(wss.address() as { port: number }).port}`;
  const remote = await WsChunkPolicy.open(url);
  try {
    assert.equal(remote.resolution, 256);
    assert.equal(remote.execHorizon, 5, 'openpi\'s LIBERO client default replan_steps');
    assert.equal(remote.chunkSize, Number.POSITIVE_INFINITY, 'unknown until the first reply');
    assert.match(remote.describe, /^openpi remote ws:\/\/127\.0\.0\.1:\d+ \(format libero, action horizon per reply\)$/);
    const side = 256;
    const frame = { robot: { eefPos: [0, 0, 1], eefQuat: [1, 0, 0, 0], gripperQpos: [0.04, -0.04] }, images: { agentview: new Uint8Array(side * side * 3), eyeInHand: new Uint8Array(side * side * 3) } };
    remote.startEpisode(0);
    const [c] = await remote.predictChunks([{ history: [frame], instruction: 'pick up the bowl' }], [0], [1]);
    assert.equal(c.length, 10);
    assert.equal(remote.chunkSize, 10);
    assert.deepEqual(Array.from(c.action(9, frame.robot)), Array.from(Float32Array.from([63, 64, 65, 66, 67, 68, 69].map((i) => i / 100))));
    assert.equal(seen.length, 1, 'one frame per chunk, nothing else');
    assert.deepEqual(Object.keys(seen[0]).sort(), ['observation/image', 'observation/state', 'observation/wrist_image', 'prompt'], 'no seed key for a server that does not list it');
    // Replies that are not (H, 7) float actions end the evaluation with an EvalError saying what came back.
    const bad: [unknown, RegExp][] = [
      [{ action: 1 }, /the reply's 'actions' is missing \(reply keys: action\)/],
      [{ actions: { dtype: '<f8', shape: [10, 8], data: new Float64Array(80) } }, /is <f8 \[10, 8\]/],
      [{ actions: { dtype: '<f8', shape: [2, 7], data: Float64Array.from({ length: 14 }, () => NaN) } }, /holds NaN/],
    ];
    for (const [r, re] of bad) {
      reply = () => r;
      await assert.rejects(remote.predictChunks([{ history: [frame], instruction: 'x' }], [0], [2]), (e: unknown) => e instanceof EvalError && re.test((e as Error).message));
    }
  } finally {
    await remote.close();
  }
  // A server announcing a format rdt-libero cannot build is refused when the eval opens it.
  wss.removeAllListeners('connection');
  wss.on('connection', (ws) => ws.send(encode({ format: 'droid' })));
  await assert.rejects(WsChunkPolicy.open(url), /takes observations in format "droid"; rdt-libero eval sends 'libero'/);
  await new Promise((r) => wss.close(r));
});

/** test/py/openpi_server_double.py on a free port; its log gets one line per frame it received. */
function openpiDouble(log: string): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.env.PYTHON || 'python3', [join(PY_CLIENT_DIR, 'openpi_server_double.py'), log], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '', err = '';
  child.stderr!.on('data', (d) => (err += d));
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (d) => {
      out += d;
      const m = /port (\d+)/.exec(out);
      if (m) resolve({ child, url: `ws://127.0.0.1:${m[1]}` });
    });
    child.once('exit', (code) => reject(new Error(`the openpi server double exited ${code}: ${err}`)));
  });
}

test('against a server that behaves as openpi\'s upstream one: whole evaluations with default flags and --exec-horizon 5 record every episode, sending only openpi\'s LIBERO requests', async () => {
  const log = join(work, 'double.log');
  const { child, url } = await openpiDouble(log);
  try {
    // What the double does with anything but an observation, as upstream: a traceback text frame, then close 1011.
    const probe = await OpenpiClient.connect(url);
    assert.deepEqual(probe.metadata, {});
    await assert.rejects(probe.infer({ __ctrl__: 'episode_start' }), (e: unknown) => e instanceof OpenpiError && e.kind === 'InferenceFailed' && /Traceback[\s\S]*KeyError: 'observation\/image'/.test(e.message));
    await assert.rejects(probe.infer({ __ctrl__: 'episode_start' }), (e: unknown) => e instanceof OpenpiError && /closed \(code 1011, Internal server error\. Traceback included in previous frame\.\)/.test(e.message));
    await probe.close();
    writeFileSync(log, '');

    const common = ['--policy', url, '--sim', 'test', '--suite', 'libero_goal', '--tasks', '0,1', '--episodes', '2', '--max-steps', '12', '--workers', '2', '--videos', 'none'];
    for (const [tag, extra] of [['default', []], ['h5', ['--exec-horizon', '5']]] as const) {
      const out = join(work, `double-${tag}`);
      const r = await cli(['eval', ...common, ...extra, '--out', out]).done;
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /exec_horizon 5/);
      const recs = readRecords(join(out, 'episodes.jsonl'));
      assert.deepEqual(recs.map((x) => `${x.task}/${x.episode}`).sort(), ['0/0', '0/1', '1/0', '1/1'], `${tag}: every episode recorded`);
      for (const x of recs) {
        assert.equal(x.exec_horizon, 5);
        assert.equal(x.error, null);
        if (!x.success) assert.deepEqual([x.steps, x.replans], [12, [0, 5, 10]], `${tag}: replanning every 5 steps of the 10-action replies`);
        assert.match(x.inputs, /the current frame in openpi's LIBERO request \(224x224 from a 256px render/);
      }
      const frames = readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
      assert.equal(frames.length, recs.reduce((s, x) => s + x.model_calls, 0), `${tag}: one frame per chunk request, nothing else`);
      for (const f of frames)
        assert.deepEqual(f, { 'observation/image': ['|u1', [224, 224, 3]], 'observation/wrist_image': ['|u1', [224, 224, 3]], 'observation/state': ['<f8', [8]], prompt: 'str' });
      writeFileSync(log, '');
    }
  } finally {
    child.kill('SIGKILL');
  }
});
