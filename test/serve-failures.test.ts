// The server's two failure bounds that need a whole process or a misbehaving socket to show:
//  - the policy thread dies while a request waits on it: that request gets InferenceFailed, /healthz answers
//    503, later requests get InferenceFailed, `failed` resolves, and rdt-libero serve closes and exits 1 (server.ts);
//  - a client that sends requests one at a time and never reads its replies: `rdt-libero serve --max-unread-bytes` drops it
//    (ClientNotReading) with at most the cap plus one reply held unread, the server's memory stays flat, and a
//    client connected meanwhile keeps being served.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { connect as netConnect } from 'node:net';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Worker } from 'node:worker_threads';
import { Rng } from '../src/data/rng.js';
import { OpenpiClient, type NdArray } from '../src/openpi/client.js';
import { encode } from '../src/openpi/codec.js';
import { OpenpiError } from '../src/openpi/errors.js';
import { PolicyServer, SERVE_DEFAULTS } from '../src/serve/server.js';
import { serveUntilStopped } from '../src/cli/serve.js';
import { repoRoot } from './helpers/fixtures.js';
import { tempDir } from './helpers/python.js';
import { makeServePolicy } from './helpers/serve-policy.js';

const { dir: work, cleanup } = tempDir('serve-failures');
const MAIN = join(repoRoot(), 'dist', 'src', 'cli', 'main.js');
let policyDir = '';
const children: ChildProcess[] = [];

before(async () => {
  policyDir = await makeServePolicy(work);
});

after(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  cleanup();
});

function liberoObs(seed: number): Record<string, unknown> {
  const rng = new Rng(seed);
  const img = () => ({ dtype: '|u1', shape: [224, 224, 3], data: Uint8Array.from({ length: 224 * 224 * 3 }, () => rng.int(256)) });
  return {
    'observation/image': img(), 'observation/wrist_image': img(),
    'observation/state': { dtype: '<f8', shape: [8], data: Float64Array.from([-0.211, -0.0111, 1.174, 3.1409, -0.0028, -0.0877, 0.0387, -0.0387]) },
    prompt: 'open the top drawer of the cabinet', seed,
  };
}

const healthz = (url: string) => fetch(url.replace('ws:', 'http:') + '/healthz').then(async (h) => ({ status: h.status, text: await h.text() }));

test('the policy thread dies mid-request: InferenceFailed to the waiting client and to later ones, /healthz 503, `failed` resolves', async () => {
  const logged: string[] = [];
  const server = await PolicyServer.start({ ...SERVE_DEFAULTS, checkpoint: policyDir, port: 0, threads: 1, log: (l) => logged.push(l) });
  try {
    const c = await OpenpiClient.connect(server.url);
    await c.infer(liberoObs(1)); // served normally first
    assert.equal((await healthz(server.url)).status, 200);
    const pending = c.infer(liberoObs(2));
    const calls = server.stats.calls;
    while (server.stats.calls === calls) await new Promise((r) => setTimeout(r, 1)); // the model call has started
    // Fault injection: the thread is killed from outside, as a crash of it would end it (the only handle is private).
    await (server as unknown as { worker: { worker: Worker } }).worker.worker.terminate();
    await assert.rejects(pending, (e: unknown) => e instanceof OpenpiError && e.kind === 'InferenceFailed' && /the policy thread stopped \(exit code 1\)/.test(e.message));
    const why = await server.failed;
    assert.equal(why.kind, 'InferenceFailed');
    assert.deepEqual(await healthz(server.url), { status: 503, text: 'inference unavailable\n' });
    const later = await OpenpiClient.connect(server.url);
    await assert.rejects(later.infer(liberoObs(3)), (e: unknown) => e instanceof OpenpiError && e.kind === 'InferenceFailed');
    await later.close();
    await c.close();
    assert.ok(logged.some((l) => /^policy thread died: the policy thread stopped \(exit code 1\)/.test(l)), logged.join('\n'));
    assert.ok((server.errors.InferenceFailed ?? 0) >= 2);
    // What `rdt-libero serve` does then: close the server and fail with one line (exit 1 for a supervisor).
    const url = server.url;
    await assert.rejects(serveUntilStopped(server), (e: unknown) => e instanceof OpenpiError && e.exitCode === 1 &&
      /^the policy thread stopped \(exit code 1\); the server stopped: start it again \(or let a supervisor restart it\)/.test((e as Error).message));
    await assert.rejects(healthz(url), /fetch failed/, 'the server no longer listens');
  } finally {
    await server.close();
  }
});

/** VmRSS of a process, MiB. */
function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

test('a client that never reads: dropped with ClientNotReading at --max-unread-bytes; memory stays flat; another client keeps being served', async (t) => {
  const CAP = 65536;
  // The native format: each reply carries the raw chunk too (64 x 128 float64, about 69 kB), so unread replies fill
  // the socket buffers after a few hundred requests.
  const child = spawn(process.execPath, [MAIN, 'serve', '--checkpoint', policyDir, '--port', '0', '--threads', '1', '--format', 'native', '--max-unread-bytes', String(CAP)], {
    env: { ...process.env, OMP_NUM_THREADS: '1' }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let stdout = '', stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (d) => {
      stdout += d;
      const m = /on (ws:\/\/[\d.]+:\d+)/.exec(stdout);
      if (m) resolve(m[1]);
    });
    child.once('exit', (code) => reject(new Error(`serve exited ${code}: ${stderr}`)));
  });
  const bystander = await OpenpiClient.connect(url);
  await bystander.infer(nativeObs(1));
  const baseline = rssMiB(child.pid!);

  // The raw client: a websocket handshake by hand, then one request at a time in masked frames, and never a read,
  // so its replies pile up in the kernel's buffers, then the server's. It cannot see its replies; it sends its
  // next request after two bystander round trips, by which time the server has answered the previous one (the
  // queue is served in order), as a client that reads slowly would.
  const { port } = new URL(url);
  const sock = netConnect(Number(port), '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    sock.once('error', reject);
    sock.once('connect', () => {
      sock.write(`GET / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
    });
    let head = '';
    sock.on('data', (d) => {
      head += d.toString('latin1');
      if (head.includes('\r\n\r\n')) {
        assert.match(head, /^HTTP\/1\.1 101/);
        sock.removeAllListeners('data');
        sock.pause(); // from here on nothing is read
        resolve();
      }
    });
  });
  const payload = encode(nativeObs(2));
  assert.ok(payload.length >= 126 && payload.length < 65536);
  // FIN+binary, masked with key 0, 16-bit extended length.
  const frame = Buffer.concat([Buffer.from([0x82, 0x80 | 126, payload.length >> 8, payload.length & 255, 0, 0, 0, 0]), payload]);
  let dropped = false;
  sock.on('error', () => (dropped = true));
  sock.on('close', () => (dropped = true));
  let sent = 0, servedDuring = 0, peak = baseline;
  const t0 = Date.now();
  while (!dropped && !/ClientNotReading/.test(stderr) && Date.now() - t0 < 240_000) {
    sock.write(frame);
    sent++;
    for (let i = 0; i < 2; i++) {
      await bystander.infer(nativeObs(3 + i));
      servedDuring++;
    }
    peak = Math.max(peak, rssMiB(child.pid!));
  }
  const m = /dropped a client with (\d+) unread reply bytes \(ClientNotReading\)/.exec(stderr);
  assert.ok(m, `not dropped after ${sent} requests: ${stderr}`);
  // Checked before each request is handled, one request at a time: at most the cap plus one reply is ever held.
  const held = Number(m[1]);
  t.diagnostic(`dropped after ${Date.now() - t0} ms and ${sent} requests; ${held} reply bytes held; RSS ${baseline.toFixed(0)} -> peak ${peak.toFixed(0)} MiB; ${servedDuring} bystander replies during the flood`);
  const reply = 64 * 128 * 8 + 64 * 7 * 8;
  assert.ok(held > CAP && held <= CAP + reply + 1024, `held ${held} bytes`);
  // RSS: a sanity bound against runaway growth; the bound on what an unread client costs is the held-bytes check above.
  assert.ok(peak - baseline < 128, `RSS grew from ${baseline.toFixed(0)} to ${peak.toFixed(0)} MiB while ${sent} requests came in`);
  // The bystander was served while it happened, and still is.
  assert.ok(servedDuring >= 2, 'the other client got no reply while the flood went on');
  assert.deepEqual(((await bystander.infer(nativeObs(99))).actions as NdArray).shape, [64, 7]);
  await bystander.close();
  sock.destroy();
  const exit = new Promise<number | null>((r) => child.once('exit', r));
  child.kill('SIGTERM');
  assert.equal(await exit, 0);
  assert.match(stdout, /stopping: .*"ClientNotReading":1/);
});

/** A native-format request for the 32 px serve policy (history 2: the previous slot empty). */
function nativeObs(seed: number): Record<string, unknown> {
  const rng = new Rng(seed);
  const img = () => ({ dtype: '|u1', shape: [32, 32, 3], data: Uint8Array.from({ length: 32 * 32 * 3 }, () => rng.int(256)) });
  return {
    agentview_image: img(), robot0_eye_in_hand_image: img(),
    robot0_eef_pos: { dtype: '<f8', shape: [3], data: Float64Array.from([-0.211, -0.0111, 1.174]) },
    robot0_eef_quat: { dtype: '<f8', shape: [4], data: Float64Array.from([0.9998, 0.0009, -0.0139, 0.0125]) },
    robot0_gripper_qpos: { dtype: '<f8', shape: [2], data: Float64Array.from([0.0387, -0.0387]) },
    prompt: 'open the top drawer of the cabinet', history: [null], seed,
  };
}
