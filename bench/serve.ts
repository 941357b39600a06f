// bench:serve: `rdt-libero serve` under load, on a trained tiny policy (128x128 frames, demo encoders, CPU), with
// openpi LIBERO-format requests (224x224 images, 8-D state) sent by the TypeScript client:
//   1. one client, N requests in turn: latency through the server vs Policy.predict in this process on the same
//      observation (target: within 10%);
//   2. C concurrent clients x R requests each, batching on (--max-batch C) and off (--max-batch 1): requests/s,
//      p50/p99 latency, the server's peak RSS, and the on/off throughput ratio;
//   3. C clients that stop reading replies and keep sending (one request per 1.5 x the p99 latency of 2): the
//      server's RSS stays bounded.
// The server runs as its own process (the CLI), so its RSS is its own.
//   npm run bench:serve [-- --clients 64 --requests 4 --single 10 --size 128 --stall-rounds 3]
import { parseArgs } from 'node:util';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir, cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WebSocket } from 'ws';
import { loadPolicy } from '../src/policy/index.js';
import { Rng } from '../src/data/rng.js';
import { OpenpiClient } from '../src/openpi/client.js';
import { decode, encode } from '../src/openpi/codec.js';
import { parseRequest } from '../src/openpi/formats.js';

const { values } = parseArgs({
  options: {
    clients: { type: 'string', default: '64' }, requests: { type: 'string', default: '4' }, single: { type: 'string', default: '10' },
    size: { type: 'string', default: '128' }, 'stall-rounds': { type: 'string', default: '3' },
  },
});
const C = Number(values.clients), R = Number(values.requests), N = Number(values.single), SIZE = Number(values.size);
const PROMPT = 'put the black bowl in the bottom drawer of the cabinet and close it';
const MAIN = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

function obs(seed: number): Record<string, unknown> {
  const rng = new Rng(seed);
  const img = () => ({ dtype: '|u1', shape: [224, 224, 3], data: Uint8Array.from({ length: 224 * 224 * 3 }, () => rng.int(256)) });
  return {
    'observation/image': img(), 'observation/wrist_image': img(),
    'observation/state': { dtype: '<f8', shape: [8], data: Float64Array.from([-0.211, -0.0111, 1.174, 3.1409, -0.0028, -0.0877, 0.0387, -0.0387]) },
    prompt: PROMPT, seed,
  };
}

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];
const median = (xs: number[]) => pct(xs, 50);
const mib = (kb: number) => (kb / 1024).toFixed(0);

/** VmRSS / VmHWM (peak) of a process, kB. */
function memKb(pid: number): { rss: number; peak: number } {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(s)?.[1] ?? NaN);
  return { rss: kb('VmRSS'), peak: kb('VmHWM') };
}

async function startServer(dir: string, extra: string[]): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, [MAIN, 'serve', '--checkpoint', dir, '--port', '0', '--seed', '1', '--max-connections', String(C + 8), '--request-timeout-ms', '3600000', ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
  // The server's own progress lines are not the bench's; anything else it says (an error) is shown.
  child.stderr!.on('data', (d: Buffer) => d.toString().split('\n').filter((l) => l && !l.startsWith('serve: ')).forEach((l) => process.stderr.write(`server: ${l}\n`)));
  let out = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (d) => {
      out += d;
      const m = /on (ws:\/\/[\d.]+:\d+)/.exec(out);
      if (m) resolve(m[1]);
    });
    child.once('exit', (code) => reject(new Error(`serve exited ${code}: ${out}`)));
  });
  return { child, url };
}

async function stopServer(child: ChildProcess): Promise<void> {
  const done = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await done;
}

/** C clients, R requests each, all at once; latencies in ms and wall time. */
async function load(url: string): Promise<{ lat: number[]; wallS: number; batches: number[]; healthz: number[] }> {
  const clients = await Promise.all(Array.from({ length: C }, () => OpenpiClient.connect(url, { timeoutMs: 600_000 })));
  const requests = clients.map((_, i) => obs(1000 + i));
  const lat: number[] = [];
  const batches: number[] = [];
  const t0 = performance.now();
  let running = true;
  // GET /healthz every 200 ms meanwhile: its latency shows whether the server's event loop stays free.
  const healthz: number[] = [];
  const probe = (async () => {
    const hz = url.replace('ws:', 'http:') + '/healthz';
    while (running) {
      const t = performance.now();
      await fetch(hz).then((r) => r.text());
      healthz.push(performance.now() - t);
      await new Promise((r) => setTimeout(r, 200));
    }
  })();
  await Promise.all(clients.map(async (c, i) => {
    for (let k = 0; k < R; k++) {
      const t = performance.now();
      const r = await c.infer(requests[i]);
      lat.push(performance.now() - t);
      batches.push((r.server_timing as Record<string, number>).batch_size);
    }
  }));
  const wallS = (performance.now() - t0) / 1000;
  running = false;
  await probe;
  await Promise.all(clients.map((c) => c.close()));
  return { lat, wallS, batches, healthz: healthz.slice(1) }; // the first includes the HTTP client's start-up
}

/** Clients that read nothing after the metadata and send a request every `everyMs`, `rounds` times: the server's RSS. */
async function stall(url: string, pid: number, rounds: number, everyMs: number): Promise<{ baseKb: number; maxKb: number; sent: number; open: number }> {
  const frame = encode(obs(7));
  const base = memKb(pid).rss;
  const sockets = await Promise.all(Array.from({ length: C }, () => new Promise<WebSocket>((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    ws.once('message', () => {
      ws.pause(); // stop reading: replies stay in the kernel buffers, then in the server's
      resolve(ws);
    });
    ws.once('error', reject);
  })));
  let sent = 0, maxKb = base;
  for (let r = 0; r < rounds; r++) {
    for (const ws of sockets) if (ws.readyState === WebSocket.OPEN) {
      ws.send(frame);
      sent++;
    }
    const end = performance.now() + everyMs;
    while (performance.now() < end) {
      await new Promise((res) => setTimeout(res, 250));
      maxKb = Math.max(maxKb, memKb(pid).rss);
    }
  }
  const open = sockets.filter((ws) => ws.readyState === WebSocket.OPEN).length;
  sockets.forEach((ws) => ws.terminate());
  return { baseKb: base, maxKb, sent, open };
}

/** The tiny policy, trained in a child process: a process that has trained runs predict() slower afterwards. */
async function trainPolicy(work: string): Promise<string> {
  const helper = new URL('../test/helpers/serve-policy.js', import.meta.url).href;
  const code = `const { makeServePolicy } = await import(${JSON.stringify(helper)}); process.stdout.write(await makeServePolicy(${JSON.stringify(work)}, { size: ${SIZE} }));`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  const code_ = await new Promise((r) => child.once('exit', r));
  if (code_ !== 0) throw new Error(`training the bench policy failed (exit ${code_})`);
  return out.trim();
}

const work = mkdtempSync(join(tmpdir(), 'rdt-bench-serve-'));
try {
  console.log(`bench:serve  ${cpus().length} CPUs, load ${loadavg()[0].toFixed(2)}; tiny RDT, demo encoders, ${SIZE}x${SIZE} frames, float32, CPU`);
  const dir = await trainPolicy(work);

  // 1. One client vs in-process, same observation (history: the frame twice, as the server's 2nd request on).
  // Interleaved, one of each per round, so that load from other processes falls on both alike.
  const policy = loadPolicy(dir);
  const request = obs(42);
  const on = await startServer(dir, ['--max-batch', String(C)]);
  const one = await OpenpiClient.connect(on.url);
  const inproc: number[] = [];
  const served: number[] = [];
  const WARM = 3; // the first libtorch calls of a process are slower
  const settle = () => new Promise((r) => setTimeout(r, 300)); // let the other side's idle OpenMP threads stop spinning
  const decoded = decode(encode(request)); // what the server has after its msgpack decode
  const predictOnly: number[] = [];
  for (let i = 0; i < WARM + N; i++) {
    await settle();
    // In-process on the same (openpi-format) observation: its conversion to the checkpoint's frame, then predict.
    let t = performance.now();
    const frame = parseRequest('libero', decoded, policy.adapter).frame;
    const t1 = performance.now();
    policy.predict({ history: [frame, frame], instruction: PROMPT }, { seed: 42 });
    if (i >= WARM) {
      inproc.push(performance.now() - t);
      predictOnly.push(performance.now() - t1);
    }
    await settle();
    t = performance.now();
    await one.infer(request);
    if (i >= WARM) served.push(performance.now() - t);
  }
  await one.close();
  policy.dispose();
  const ratio = median(served) / median(inproc);
  console.log(`single client, ${N} requests: in-process (openpi image conversion + predict) ${median(inproc).toFixed(1)} ms, through the server ${median(served).toFixed(1)} ms ` +
    `-> ${ratio.toFixed(3)}x (target <= 1.10: ${ratio <= 1.1 ? 'met' : 'NOT met'}); predict alone ${median(predictOnly).toFixed(1)} ms (server / predict alone ${(median(served) / median(predictOnly)).toFixed(3)}x)`);

  // 2. C clients, batching on, then off.
  const rows: { mode: string; rps: number }[] = [];
  for (const [mode, srv] of [['batching on', on], ['batching off', null]] as const) {
    const s = srv ?? (await startServer(dir, ['--max-batch', '1']));
    const r = await load(s.url);
    const mem = memKb(s.child.pid!);
    const rps = (C * R) / r.wallS;
    rows.push({ mode, rps });
    console.log(`${mode.padEnd(12)} ${C} clients x ${R} requests: ${rps.toFixed(2)} requests/s, p50 ${pct(r.lat, 50).toFixed(0)} ms, p99 ${pct(r.lat, 99).toFixed(0)} ms, ` +
      `mean batch ${(r.batches.reduce((a, b) => a + b, 0) / r.batches.length).toFixed(1)}, server peak RSS ${mib(mem.peak)} MiB, ` +
      `/healthz meanwhile p50 ${pct(r.healthz, 50).toFixed(0)} ms, max ${Math.max(...r.healthz).toFixed(0)} ms (${r.healthz.length} probes)`);
    if (mode === 'batching on') {
      // 3. Clients that stop reading, on the same server.
      // One request per client per 1.5 x the p99 above, so each is answered (unread) before the next comes.
      const everyMs = Math.round(pct(r.lat, 99) * 1.5);
      const st = await stall(s.url, s.child.pid!, Number(values['stall-rounds']), everyMs);
      console.log(`stalled readers: ${C} clients sent ${st.sent} requests (one each per ${(everyMs / 1000).toFixed(0)} s) without reading a reply; server RSS ${mib(st.baseKb)} -> max ${mib(st.maxKb)} MiB ` +
        `(+${mib(st.maxKb - st.baseKb)} MiB; the server's caps: one request in flight and --max-frame-bytes per connection, unread replies <= --max-unread-bytes); ${st.open} still connected`);
    }
    await stopServer(s.child);
  }
  console.log(`batching on / off: ${(rows[0].rps / rows[1].rps).toFixed(2)}x requests/s`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
