// bench:gpu's NCCL part (scripts/bench-gpu.sh runs it after bench/gpu.ts): what the Gloo tests cannot show.
//   1. all-reduce bandwidth: float32 all-reduces of 1 MiB to 256 MiB through our process group (host-blocking wait,
//      as the trainer's control all-reduce), algbw = bytes / time and busbw = algbw x 2(W-1)/W (nccl-tests' rule).
//   2. a stalled rank: rank 1 never joins an all-reduce; rank 0 must fail with DistributedTimeoutError, one line,
//      within the group's timeout (our deadline poll, native/process_group.h), not in NCCL's watchdog abort.
//   3. step time with the gradients reduced during backward and after it: bench/ddp.ts on rdt-170m, --device cuda.
// Ranks: one per GPU when the machine has several; with one GPU, 2 ranks on it (NCCL refuses that in most
// releases: the part then says so in one line and stops).
//   node dist/bench/nccl.js [--timeout-s 10 --sizes-mb 1,16,64,256 --iters 20]
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as torch from '../src/engine/index.js';
import { availableBackends, envFromTorchrun, initProcessGroup, DistributedError } from '../src/engine/distributed.js';

const { values } = parseArgs({
  options: {
    worker: { type: 'string' }, 'timeout-s': { type: 'string', default: '10' }, 'sizes-mb': { type: 'string', default: '1,16,64,256' },
    iters: { type: 'string', default: '20' }, done: { type: 'string' },
  },
});
const say = (l: string) => process.stderr.write(`bench:gpu nccl: ${l}\n`);

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

/** Start `world` ranks of this file's worker `part`; resolves with each rank's stdout, stderr and exit code. */
async function ranks(world: number, part: string, extra: string[] = []): Promise<{ code: number | null; out: string; err: string }[]> {
  const port = await freePort();
  const gpus = torch.cuda.deviceCount();
  return Promise.all(Array.from({ length: world }, (_, r) => new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
    const env = { ...process.env, RANK: String(r), LOCAL_RANK: String(gpus > 1 ? r : 0), WORLD_SIZE: String(world), MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port) };
    const p = spawn(process.execPath, [fileURLToPath(import.meta.url), '--worker', part, '--timeout-s', values['timeout-s']!,
      '--sizes-mb', values['sizes-mb']!, '--iters', values.iters!, ...extra], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('close', (code) => resolve({ code, out, err }));
  })));
}

async function worker(part: string): Promise<void> {
  const env = envFromTorchrun()!;
  const device = `cuda:${env.localRank}`;
  const timeoutMs = Number(values['timeout-s']) * 1000;
  const pg = initProcessGroup({ env, backend: 'nccl', timeoutMs });
  if (part === 'bandwidth') {
    const rows = [];
    for (const mb of values['sizes-mb']!.split(',').map(Number)) {
      const t = torch.ones([Math.round((mb * 2 ** 20) / 4)], { device });
      for (let i = 0; i < 3; i++) pg.allReduce(t);
      torch.cuda.synchronize();
      const iters = Number(values.iters);
      const t0 = performance.now();
      for (let i = 0; i < iters; i++) pg.allReduce(t);
      torch.cuda.synchronize();
      const s = (performance.now() - t0) / 1000 / iters;
      const bytes = mb * 2 ** 20;
      rows.push({ mib: mb, ms: +(s * 1000).toFixed(3), algbw_gbs: +(bytes / s / 1e9).toFixed(2), busbw_gbs: +((bytes / s / 1e9) * (2 * (pg.worldSize - 1)) / pg.worldSize).toFixed(2) });
      t.dispose();
    }
    if (pg.rank === 0) process.stdout.write(JSON.stringify({ part: 'allreduce', ranks: pg.worldSize, gpu: torch.cuda.deviceName(env.localRank), rows }) + '\n');
  } else if (part === 'stall') {
    // Rank 1 stays alive (its connections open) but never joins; it leaves once rank 0 has reported.
    const done = values.done!;
    if (pg.rank === 0) {
      const t0 = performance.now();
      try {
        pg.allReduce(torch.ones([1024], { device }));
        process.stdout.write(JSON.stringify({ part: 'stall', error: null }) + '\n');
      } catch (e) {
        process.stdout.write(JSON.stringify({ part: 'stall', error: (e as Error).name, named: e instanceof DistributedError, message: (e as Error).message.split('\n')[0],
          ms: Math.round(performance.now() - t0), timeout_ms: timeoutMs }) + '\n');
      }
      writeFileSync(done, '');
    } else {
      const t0 = Date.now();
      while (!existsSync(done) && Date.now() - t0 < 3 * timeoutMs + 60_000) await new Promise((r) => setTimeout(r, 100));
    }
  }
  pg.destroy();
}

if (values.worker) {
  await worker(values.worker);
  process.exit(0);
}

const why = torch.cudaUnavailableReason();
if (why || !availableBackends().includes('nccl')) {
  say(`no NCCL to run on: ${why ?? 'this build of the addon has no NCCL (it needs a CUDA torch with NCCL; run scripts/bench-gpu.sh, which rebuilds it)'}`);
  process.exit(2);
}
const gpus = torch.cuda.deviceCount();
const world = gpus > 1 ? gpus : 2;
say(`${world} ranks on ${gpus} GPU(s) (${torch.cuda.deviceName(0)})`);

// 1. bandwidth (also the check that NCCL accepts this placement of ranks)
const bw = await ranks(world, 'bandwidth');
if (bw.some((r) => r.code !== 0)) {
  const line = bw.map((r) => r.err.split('\n').find((l) => /Error|error/.test(l))).find(Boolean) ?? 'a rank failed';
  say(`NCCL could not run ${world} ranks on ${gpus} GPU(s): ${line.trim()}${gpus < 2 ? ' (most NCCL releases refuse two ranks on one GPU: the NCCL part needs 2 GPUs)' : ''}`);
  process.exit(gpus < 2 ? 0 : 1);
}
process.stdout.write(bw[0].out);

// 2. a stalled rank
const done = join(mkdtempSync(join(tmpdir(), 'rdt-nccl-')), 'done');
const t0 = performance.now();
const st = await ranks(2, 'stall', ['--done', done]);
const res = JSON.parse(st[0].out.trim().split('\n').pop() || '{}');
process.stdout.write(JSON.stringify({ ...res, wall_ms: Math.round(performance.now() - t0), exit_codes: st.map((r) => r.code) }) + '\n');
if (res.error !== 'DistributedTimeoutError') say(`the stalled rank did not end in a named timeout: ${JSON.stringify(res)}; stderr of rank 0: ${st[0].err.trim().split('\n').slice(-3).join(' | ')}`);

// 3. step time, overlap on / off (bench/ddp.ts prints its own lines)
const ddp = spawn(process.execPath, [join(fileURLToPath(new URL('.', import.meta.url)), 'ddp.js'), '--device', 'cuda', '--case', 'rdt-170m', '--ranks', `1,${world}`,
  '--batch', '8', '--steps', '10'], { stdio: 'inherit' });
const code = await new Promise<number | null>((resolve) => ddp.on('close', resolve));
process.exit(code ?? 1);
