// `rdt-libero serve` end to end on a trained tiny policy: a Python client written from the protocol description
// (test/py/openpi_client_check.py: websockets + msgpack + numpy, openpi's LIBERO preprocessing) gets the metadata
// and replies whose actions equal the policy's own predict() on the frames the documented inverse recovers
// (computed in Python with PIL), with the same seed; misbehaving clients get named error frames and close 1011
// while the server keeps serving; /healthz answers during inference; concurrent clients are batched; the limits
// (connections, timeout) and the native format; the CLI starts and stops cleanly.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadPolicy, type Policy, type PolicyInput } from '../src/policy/index.js';
import type { ObsFrame } from '../src/data/adapter.js';
import { Rng } from '../src/data/rng.js';
import { PolicyServer, SERVE_DEFAULTS, type ServeOptions } from '../src/serve/server.js';
import { OpenpiClient, type NdArray } from '../src/openpi/client.js';
import { OpenpiError } from '../src/openpi/errors.js';
import { RdtError } from '../src/util/errors.js';
import { tempDir } from './helpers/python.js';
import { repoRoot } from './helpers/fixtures.js';
import { makeServePolicy } from './helpers/serve-policy.js';

const { dir: work, cleanup } = tempDir('serve');
const SIZE = 32;
const PROMPT = 'open the top drawer of the cabinet';
const CLIENT = join(repoRoot(), 'test', 'py', 'openpi_client_check.py');
let policyDir: string;
let policy: Policy;
let server: PolicyServer;
const logged: string[] = [];

function start(over: Partial<ServeOptions> = {}): Promise<PolicyServer> {
  return PolicyServer.start({ ...SERVE_DEFAULTS, checkpoint: policyDir, port: 0, seed: 3, log: (l) => logged.push(l), ...over });
}

/** Python without blocking the event loop (the server under test runs in this process). */
function python(...args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(process.env.PYTHON || 'python3', args, { maxBuffer: 1 << 26 }, (err, _out, stderr) => (err ? reject(new Error(`${args[0]} failed:\n${stderr}`)) : resolve()));
  });
}

/** Raw frames as the simulator renders them, with realistic LIBERO states (libero-facts.md 3.3). */
function rawFrames(n: number, seed: number): { agentview: number[]; wrist: number[]; state: number[] }[] {
  const rng = new Rng(seed);
  const img = () => Array.from({ length: SIZE * SIZE * 3 }, () => rng.int(256));
  const base = [-0.211, -0.0111, 1.174, 3.1409, -0.0028, -0.0877, 0.0387, -0.0387];
  return Array.from({ length: n }, (_, k) => ({ agentview: img(), wrist: img(), state: base.map((v, i) => (i < 3 ? v + 0.01 * k : i < 6 ? v + 0.02 * k : v - 0.005 * k * Math.sign(v))) }));
}

before(async () => {
  policyDir = await makeServePolicy(work);
  policy = loadPolicy(policyDir);
  server = await start({ maxFrameBytes: 1 << 20 });
});

after(async () => {
  await server?.close();
  policy?.dispose();
  cleanup();
});

test('a Python openpi client: metadata, LIBERO requests, replies equal to in-process predict with the same seed', async () => {
  const frames = rawFrames(3, 1);
  const inp = join(work, 'good-in.json');
  const out = join(work, 'good-out.json');
  writeFileSync(inp, JSON.stringify({ height: SIZE, width: SIZE, prompt: PROMPT, frames }));
  await python(CLIENT, 'libero', server.url, inp, out);
  const r = JSON.parse(readFileSync(out, 'utf8'));
  const m = r.metadata;
  assert.equal(m.format, 'libero');
  assert.equal(m.action_horizon, 64);
  assert.equal(m.chunk_size, 64);
  assert.equal(m.history, 2);
  assert.match(m.history_inputs, /^the current frame only, with the 1 older history slot\(s\) empty as at an episode's first step in training/);
  assert.equal(m.exec_horizon, 16, 'policy.json action.exec_horizon (the run\'s default)');
  assert.deepEqual(m.image, { height: SIZE, width: SIZE, orientation: 'flip_v' });
  assert.equal(m.reset, undefined, 'no control messages, nothing about them');

  // The server's frames: openpi's 224 images, un-padded, rotated back and resampled (reference: PIL, in Python).
  const frameOf = (k: number): ObsFrame => ({
    robot: { eefPos: frames[k].state.slice(0, 3), eefAxisAngle: frames[k].state.slice(3, 6), gripperQpos: frames[k].state.slice(6, 8) },
    images: { agentview: Uint8Array.from(r.frames[k].agentview), eyeInHand: Uint8Array.from(r.frames[k].wrist) },
  });
  // The libero format carries one frame: every request is served with the older slot empty, as at an episode's
  // first step in training (never with the previous request's frame, several env steps old or from another episode).
  const histories = [[null, frameOf(0)], [null, frameOf(1)], [null, frameOf(2)]];
  const seeds = [11, 12, 13];
  r.replies.forEach((reply: { dtype: string; shape: number[]; actions: number[]; seed: number; keys: string[]; server_timing: Record<string, number>; policy_timing: Record<string, number> }, k: number) => {
    assert.equal(reply.dtype, '<f8');
    assert.deepEqual(reply.shape, [64, 7]);
    assert.equal(reply.seed, seeds[k]);
    assert.deepEqual(reply.keys, ['actions', 'policy_timing', 'seed', 'server_timing']);
    assert.ok(reply.policy_timing.infer_ms > 0 && reply.server_timing.infer_ms >= reply.policy_timing.infer_ms);
    assert.equal('prev_total_ms' in reply.server_timing, k > 0, 'prev_total_ms from the 2nd request on');
    const want = policy.predict({ history: histories[k], instruction: PROMPT }, { seed: seeds[k] });
    assert.deepEqual(reply.actions, Array.from(want.actions), `request ${k}: the server's actions differ from predict()`);
  });
  // The older slot matters (request 1 with request 0's frame there would give other actions), so the check above
  // tests that the server kept no state between the requests.
  const stateful = policy.predict({ history: [frameOf(0), frameOf(1)], instruction: PROMPT }, { seed: 12 });
  assert.notDeepEqual(r.replies[1].actions, Array.from(stateful.actions));
});

test('bad input gets a named one-line error frame and close 1011; the server keeps serving', async () => {
  const out = join(work, 'bad-out.json');
  const before = { ...server.errors };
  const bystander = await OpenpiClient.connect(server.url); // connected throughout, served before and after
  assert.deepEqual((await bystander.infer(liberoObs(400))).seed, 400);
  await python(CLIENT, 'bad', server.url, out);
  assert.deepEqual(((await bystander.infer(liberoObs(401))).actions as NdArray).shape, [64, 7]);
  await bystander.close();
  const r = JSON.parse(readFileSync(out, 'utf8'));
  const want: Record<string, [string, RegExp]> = {
    malformed: ['MalformedMsgpack', /not valid msgpack/],
    not_a_map: ['BadRequest', /must be a map/],
    unknown_keys: ['BadRequest', /unknown key 'observation\/joint_position'/],
    missing_key: ['BadRequest', /missing 'prompt'/],
    wrong_dtype: ['BadRequest', /'observation\/image' must be \(h, w, 3\) uint8.*<f4/],
    wrong_shape: ['BadRequest', /'observation\/state' must be a float32 or float64 array of shape \(8,\), got <f8 \[7\]/],
    nan_state: ['BadRequest', /'observation\/state' holds NaN/],
    bad_data_length: ['BadRequest', /3 bytes.*needs 64/],
    complex_dtype: ['BadRequest', /dtype "<c8" is not supported/],
    text_frame: ['ProtocolError', /binary frames/],
    oversized: ['FrameTooLarge', /over 1048576 bytes/],
  };
  for (const [name, [kind, re]] of Object.entries(want)) {
    const { text, code } = r[name];
    assert.ok(typeof text === 'string' && text.startsWith(`${kind}: `), `${name}: got ${JSON.stringify(text)}`);
    assert.match(text, re, name);
    assert.ok(!text.includes('\n') && text.length < 400 && !/\bat .*\.js:\d+/.test(text), `${name}: not a short one-line message: ${text}`);
    assert.equal(code, 1011, `${name}: close code`);
  }
  assert.deepEqual(r.after.shape, [64, 7]);
  for (const kind of ['MalformedMsgpack', 'BadRequest', 'ProtocolError', 'FrameTooLarge'])
    assert.ok((server.errors[kind] ?? 0) > (before[kind] ?? 0), kind);
  const health = await fetch(server.url.replace('ws:', 'http:') + '/healthz');
  assert.equal(health.status, 200);
  assert.equal(await health.text(), 'OK\n');
});

/** A LIBERO request as the TS client sends it (any 224 image; the state as in libero-facts 3.3). */
function liberoObs(seed?: number): Record<string, unknown> {
  const rng = new Rng(seed ?? 0);
  const img = () => ({ dtype: '|u1', shape: [224, 224, 3], data: Uint8Array.from({ length: 224 * 224 * 3 }, () => rng.int(256)) });
  return {
    'observation/image': img(), 'observation/wrist_image': img(),
    'observation/state': { dtype: '<f8', shape: [8], data: Float64Array.from([-0.211, -0.0111, 1.174, 3.1409, -0.0028, -0.0877, 0.0387, -0.0387]) },
    prompt: PROMPT, ...(seed !== undefined ? { seed } : {}),
  };
}

test('/healthz answers while requests are in inference (the model runs off the event loop)', async () => {
  const healthz = () => fetch(server.url.replace('ws:', 'http:') + '/healthz').then((h) => h.status);
  await healthz(); // the HTTP client's first use is slow; not what is measured
  const clients = await Promise.all(Array.from({ length: 6 }, () => OpenpiClient.connect(server.url)));
  const calls = server.stats.calls;
  let replies = 0;
  const all = Promise.all(clients.map((c, i) => c.infer(liberoObs(200 + i)).then(() => replies++)));
  while (server.stats.calls === calls) await new Promise((r) => setTimeout(r, 1)); // a model call has started
  assert.equal(await healthz(), 200);
  // Six requests make two model calls (one, then the five that queued behind it); had the model run on the event
  // loop, /healthz would have waited for both.
  assert.ok(replies < clients.length, `all ${replies} replies came before /healthz`);
  await all;
  await Promise.all(clients.map((c) => c.close()));
});

test('concurrent clients are batched into one model call; each reply is its own request\'s actions', async () => {
  const clients = await Promise.all(Array.from({ length: 5 }, () => OpenpiClient.connect(server.url)));
  const replies = await Promise.all(clients.map((c, i) => c.infer(liberoObs(100 + i))));
  const sizes = replies.map((r) => (r.server_timing as Record<string, number>).batch_size);
  assert.ok(Math.max(...sizes) > 1, `batch sizes ${sizes}`);
  // Each equals the same request served alone (seeded noise per row): batching changes no request's actions
  // beyond float32 summation order in the batched matmuls.
  const alone = await OpenpiClient.connect(server.url);
  for (let i = 0; i < clients.length; i++) {
    const solo = await alone.infer(liberoObs(100 + i));
    const a = (replies[i].actions as NdArray).data as Float64Array;
    const b = (solo.actions as NdArray).data as Float64Array;
    assert.equal((solo.server_timing as Record<string, number>).batch_size, 1);
    let worst = 0;
    for (let j = 0; j < a.length; j++) worst = Math.max(worst, Math.abs(a[j] - b[j]));
    assert.ok(worst < 1e-4, `client ${i}: batched vs alone differ by ${worst}`);
  }
  await Promise.all([...clients, alone].map((c) => c.close()));
});

test('the text encoder runs once per distinct instruction: 6 requests over 2 prompts, 2 encoder calls (the policy thread\'s cache)', async () => {
  const s = await start();
  try {
    const clients = await Promise.all(Array.from({ length: 3 }, () => OpenpiClient.connect(s.url)));
    for (const prompt of [PROMPT, 'put the bowl on the plate'])
      await Promise.all(clients.map((c, i) => c.infer({ ...liberoObs(500 + i), prompt })));
    assert.equal(s.stats.requests, 6);
    assert.equal(s.stats.textEncodes, 2);
    await Promise.all(clients.map((c) => c.close()));
  } finally {
    await s.close();
  }
});

test('the TypeScript client: metadata, replies as NdArray, server errors as OpenpiError of the named kind', async () => {
  const c = await OpenpiClient.connect(server.url);
  assert.equal(c.metadata.format, 'libero');
  const r = await c.infer(liberoObs(7));
  const a = r.actions as NdArray;
  assert.deepEqual([a.dtype, a.shape], ['<f8', [64, 7]]);
  assert.ok(a.data instanceof Float64Array);
  assert.equal(r.seed, 7);
  // A control message (which no openpi client sends) is a request like any other: refused by name, close 1011.
  await assert.rejects(c.infer({ __ctrl__: 'episode_start' }), (e: unknown) => e instanceof OpenpiError && e.kind === 'BadRequest' && /unknown key '__ctrl__'/.test(e.message));
  const c2 = await OpenpiClient.connect(server.url);
  await assert.rejects(c2.infer({ ...liberoObs(), prompt: 42 }), (e: unknown) => e instanceof OpenpiError && e.kind === 'BadRequest' && /'prompt'/.test(e.message));
  await assert.rejects(c2.infer(liberoObs()), (e: unknown) => e instanceof OpenpiError && /closed \(code 1011/.test(e.message));
  await Promise.all([c.close(), c2.close()]);
});

test('limits: --max-connections, --max-queue and --request-timeout-ms each get their named error; a load failure is the policy\'s error', async () => {
  const limited = await start({ maxConnections: 3, maxQueue: 1, maxBatch: 1 });
  try {
    const clients = await Promise.all([0, 1, 2].map(() => OpenpiClient.connect(limited.url)));
    await assert.rejects(OpenpiClient.connect(limited.url), (e: unknown) => e instanceof OpenpiError && e.kind === 'TooManyConnections' && /--max-connections 3/.test(e.message));
    // Three at once, one model call at a time and room for one waiting: the third is refused.
    const results = await Promise.allSettled(clients.map((c, i) => c.infer(liberoObs(300 + i))));
    const kinds = results.map((r) => (r.status === 'fulfilled' ? 'ok' : (r.reason as OpenpiError).kind)).sort();
    assert.deepEqual(kinds, ['ServerBusy', 'ok', 'ok']);
    assert.equal(limited.errors.ServerBusy, 1);
    assert.equal(limited.errors.TooManyConnections, 1);
    await Promise.all(clients.map((c) => c.close()));
  } finally {
    await limited.close();
  }
  // A folder the policy thread cannot load: its error, as the policy layer words it, from start().
  await assert.rejects(start({ checkpoint: join(work, 'missing') }), (e: unknown) => e instanceof RdtError && /policy folder .*missing does not exist/.test((e as Error).message));
  const slow = await start({ requestTimeoutMs: 1 });
  try {
    const a = await OpenpiClient.connect(slow.url);
    await assert.rejects(a.infer(liberoObs(1)), (e: unknown) => e instanceof OpenpiError && e.kind === 'Timeout' && /--request-timeout-ms/.test(e.message));
    await a.close();
    assert.equal(slow.errors.Timeout, 1);
    const h = await fetch(slow.url.replace('ws:', 'http:') + '/healthz');
    assert.equal(h.status, 200);
  } finally {
    await slow.close();
  }
});

test('the native format: the simulator\'s own keys at the checkpoint resolution and the previous frame in \'history\'; actions and raw chunk equal predict() on obsFrameFromEnv', async () => {
  const native = await start({ format: 'native', actionHorizon: 10 });
  try {
    const c = await OpenpiClient.connect(native.url);
    assert.equal(c.metadata.format, 'native');
    assert.equal(c.metadata.action_horizon, 10);
    assert.equal(c.metadata.exec_horizon, 10, 'policy.json\'s 16, at most the served horizon');
    assert.match(String(c.metadata.history_inputs), /the 1 previous frame\(s\) the request carries in 'history', one env step apart as in training/);
    const [f, g] = rawFrames(2, 9);
    const quat = [0.9998, 0.0009, -0.0139, 0.0125]; // x, y, z, w, near the LIBERO start pose
    const keys = (x: typeof f) => ({
      agentview_image: { dtype: '|u1', shape: [SIZE, SIZE, 3], data: Uint8Array.from(x.agentview) },
      robot0_eye_in_hand_image: { dtype: '|u1', shape: [SIZE, SIZE, 3], data: Uint8Array.from(x.wrist) },
      robot0_eef_pos: { dtype: '<f8', shape: [3], data: Float64Array.from(x.state.slice(0, 3)) },
      robot0_eef_quat: { dtype: '<f4', shape: [4], data: Float32Array.from(quat) },
      robot0_gripper_qpos: { dtype: '<f8', shape: [2], data: Float64Array.from(x.state.slice(6, 8)) },
    });
    const frameOf = (x: typeof f) => ({ robot: { eefPos: x.state.slice(0, 3), eefQuat: Array.from(Float32Array.from(quat)), gripperQpos: x.state.slice(6, 8) }, images: { agentview: Uint8Array.from(x.agentview), eyeInHand: Uint8Array.from(x.wrist) } });
    // The episode's first step (nothing before it), then the next step with the first as its previous frame.
    for (const [history, previous, seed] of [[[null], null, 21], [[keys(f)], frameOf(f), 22]] as const) {
      const r = await c.infer({ ...keys(previous ? g : f), prompt: PROMPT, history, seed });
      const a = r.actions as NdArray;
      const raw = r.chunk as NdArray;
      assert.deepEqual([a.shape, raw.dtype, raw.shape], [[10, 7], '<f8', [10, 128]]);
      const input: PolicyInput = { history: [previous, frameOf(previous ? g : f)], instruction: PROMPT };
      const want = policy.predict(input, { seed, raw: true });
      assert.deepEqual(Array.from(a.data as Float64Array), Array.from(want.actions.subarray(0, 70)));
      assert.deepEqual(Array.from(raw.data as Float64Array), Array.from(want.raw!.subarray(0, 10 * 128)), 'the raw chunk the actions were decoded from');
    }
    const obs = { ...keys(f), prompt: PROMPT, history: [null] };
    const refused: [Record<string, unknown>, RegExp][] = [
      [{ ...obs, agentview_image: { dtype: '|u1', shape: [224, 224, 3], data: new Uint8Array(224 * 224 * 3) } }, /'agentview_image' is 224x224; this checkpoint takes 32x32/],
      [{ ...keys(f), prompt: PROMPT }, /'history' must be a list of the 1 previous frame\(s\), oldest first/],
      [{ ...obs, history: [null, null] }, /'history' must be a list of the 1 previous frame.*got 2/],
      [{ ...obs, history: [{ ...keys(f), robot0_eef_pos: { dtype: '<f8', shape: [2], data: new Float64Array(2) } }] }, /'history\[0\]\.robot0_eef_pos' must be a float32 or float64 array of shape \(3,\)/],
      [{ ...obs, history: [{ ...keys(f), prompt: 'x' }] }, /'history\[0\]' has unknown key\(s\) 'prompt'/],
    ];
    for (const [bad, re] of refused) {
      const cc = await OpenpiClient.connect(native.url);
      await assert.rejects(cc.infer(bad), (e: unknown) => e instanceof OpenpiError && e.kind === 'BadRequest' && re.test(e.message), String(re));
      await cc.close();
    }
    await c.close();
  } finally {
    await native.close();
  }
});

test('rdt-libero serve: prints its address, answers /healthz, serves, writes --metrics JSONL, stops on SIGTERM; bad flags exit 2, a taken port 1', async () => {
  const main = join(repoRoot(), 'dist', 'src', 'cli', 'main.js');
  const metrics = join(work, 'serve-metrics.jsonl');
  const child = spawn(process.execPath, [main, 'serve', '--checkpoint', policyDir, '--port', '0', '--max-batch', '4', '--metrics', metrics], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout.on('data', (d) => {
      stdout += d;
      const m = /on (ws:\/\/[\d.]+:\d+)/.exec(stdout);
      if (m) resolve(m[1]);
    });
    child.once('exit', (code) => reject(new Error(`serve exited ${code} before listening: ${stdout}`)));
  });
  const h = await fetch(url.replace('ws:', 'http:') + '/healthz');
  assert.equal(h.status, 200);
  const c = await OpenpiClient.connect(url);
  await c.infer(liberoObs(9));
  await assert.rejects(c.infer({ prompt: 'x' }), (e: unknown) => e instanceof OpenpiError && e.kind === 'BadRequest');
  const exit = new Promise<number | null>((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  assert.equal(await exit, 0);
  // The last report is written at shutdown: one request, one model call, one BadRequest.
  const records = readFileSync(metrics, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const total = (k: string) => records.reduce((a, r) => a + r[k], 0);
  assert.equal(total('requests'), 1);
  assert.equal(total('model_calls'), 1);
  assert.equal(total('errors'), 1);
  assert.equal(records.at(-1).errors_total_BadRequest, 1);
  assert.ok(records.every((r) => r.p50_ms >= 0 && r.rss_mib > 0 && typeof r.time === 'string'));

  const bad = await new Promise<{ code: number | null; err: string }>((resolve) => {
    const p = spawn(process.execPath, [main, 'serve', '--checkpoint', policyDir, '--format', 'openpi'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d) => (err += d));
    p.once('exit', (code) => resolve({ code, err }));
  });
  assert.equal(bad.code, 2);
  assert.match(bad.err, /--format must be one of libero, native, got 'openpi'/);

  const port = new URL(server.url).port; // taken by this file's server
  const busy = await new Promise<{ code: number | null; err: string }>((resolve) => {
    const p = spawn(process.execPath, [main, 'serve', '--checkpoint', policyDir, '--port', port], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d) => (err += d));
    p.once('exit', (code) => resolve({ code, err }));
  });
  assert.equal(busy.code, 1);
  assert.equal(busy.err.trim(), `rdt-libero serve: cannot listen on 127.0.0.1:${port} (EADDRINUSE); pick another --port or --host`);
});
