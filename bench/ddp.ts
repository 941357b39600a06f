// bench:ddp: data-parallel step time with 1, 2 and 4 processes, gradients reduced during backward (overlap) or
// after it, one JSON line per case and a summary table. Each rank is its own process with `--threads` libtorch
// threads (default 1); ranks join a Gloo group (NCCL with --device cuda: one GPU per rank, LOCAL_RANK). A step is
// forward+backward on random conditions of the model's real shapes, the trainer's gradient reduction
// (src/train/dist/ddp.ts: DataParallel.backward + gradientSync, ddp.bucket_cap_mb buckets), clipping and AdamW.
//   efficiency = (W-rank samples/s) / (W x 1-rank samples/s); 1.0 is perfect scaling
//   comm_wait  = share of rank 0's step spent waiting for gradients after its backward (finalize + the control
//                all-reduce): the communication that did not overlap (ZeRO-0 never blocks inside backward)
// On this CPU the ranks share the cores, so W ranks at 1 thread each compete with each other and with Gloo's
// threads: the efficiency is a floor for what separate machines or GPUs give (see README, "Data parallelism").
// --bucket-mb defaults to 1 (the trainer's default is DDP's 25): the tiny model's 3.6 MB of gradients would fit
// one 25 MB bucket, which can only start after the last gradient, so nothing would overlap.
//   npm run bench:ddp [-- --case tiny --ranks 1,2,4 --steps 20 --batch 8 --threads 1 --bucket-mb 1 --device cpu]
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createServer } from 'node:net';
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import * as torch from '../src/engine/index.js';
import { optim } from '../src/engine/index.js';
import { rdtPreset } from '../src/model/config.js';
import { RDTRunner } from '../src/model/runner.js';
import { initProcessGroup, envFromTorchrun } from '../src/engine/distributed.js';
import { DataParallel } from '../src/train/dist/ddp.js';

const { values } = parseArgs({
  options: {
    worker: { type: 'boolean', default: false }, case: { type: 'string', default: 'tiny' }, ranks: { type: 'string', default: '1,2,4' },
    threads: { type: 'string', default: '1' }, device: { type: 'string', default: 'cpu' }, steps: { type: 'string', default: '20' },
    batch: { type: 'string', default: '8' }, 'bucket-mb': { type: 'string', default: '1' }, overlap: { type: 'string', default: 'true' },
  },
});

interface Timing {
  rank: number;
  steps: number;
  params: number;
  step: number;
  fwdBwd: number;
  /** After backward until the averaged gradients are ready (gradientSync). */
  sync: number;
  launchedInBackward: number;
  buckets: number;
}

/** One rank: build the case's model, run warm-up + timed steps, print its timing. */
async function worker(): Promise<void> {
  torch.setNumThreads(Number(values.threads));
  const device = values.device!.startsWith('cuda') ? `cuda:${(envFromTorchrun()?.localRank ?? 0) % torch.cuda.deviceCount()}` : 'cpu';
  const env = envFromTorchrun();
  const group = env && env.worldSize > 1 ? initProcessGroup({ env, backend: device.startsWith('cuda') ? 'nccl' : 'gloo', timeoutMs: 600_000 }) : null;
  const dp = group ? new DataParallel(group, { bucketBytes: Number(values['bucket-mb']) * 2 ** 20, overlap: values.overlap === 'true' }) : null;
  const cfg = rdtPreset(values.case!);
  const B = Number(values.batch);
  const steps = Number(values.steps);
  const gen = new torch.Generator(1 + (env?.rank ?? 0), device);
  const runner = new RDTRunner(cfg, { dtype: 'float32', device, generator: new torch.Generator(0) });
  runner.train();
  const params = runner.parameters();
  dp?.broadcastFromMain(params);
  dp?.attach(params);
  const sync = dp?.gradientSync();
  const opt = new optim.AdamW(params, { lr: 1e-4, weightDecay: 1e-2 });
  const cudaSync = () => (device.startsWith('cuda') ? torch.cuda.synchronize() : undefined);
  const t: Timing = { rank: env?.rank ?? 0, steps, params: runner.numParameters(), step: 0, fwdBwd: 0, sync: 0, launchedInBackward: 0, buckets: 0 };
  const clock = () => performance.now() / 1000;
  const step = async (i: number, record: boolean) => {
    const L = Math.min(32, cfg.max_lang_cond_len);
    const inp = torch.scope(() => ({
      langTokens: torch.randn([B, L, cfg.lang_token_dim], { generator: gen, device }).keep(), langMask: torch.ones([B, L], { dtype: 'bool', device }).keep(),
      imgTokens: torch.randn([B, cfg.img_cond_len, cfg.img_token_dim], { generator: gen, device }).keep(),
      stateTokens: torch.randn([B, 1, cfg.state_token_dim], { generator: gen, device }).keep(), actionMask: torch.ones([B, 1, cfg.action_dim], { device }).keep(),
      ctrlFreqs: torch.full([B], 20, { device }).keep(), actionGt: torch.randn([B, cfg.pred_horizon, cfg.action_dim], { generator: gen, device }).keep(),
    }));
    cudaSync();
    const t0 = clock();
    const loss = torch.scope(() => runner.computeLoss(inp, { generator: gen }));
    if (dp) dp.backward(loss, true);
    else loss.backward();
    cudaSync();
    const t1 = clock();
    if (sync) sync({ step: i, loss: loss.item(), finite: true, params });
    cudaSync();
    const t2 = clock();
    optim.clipGradNorm_(params, 1.0);
    opt.step();
    opt.zeroGrad();
    cudaSync();
    const t3 = clock();
    loss.dispose();
    for (const v of Object.values(inp)) v.dispose();
    if (!record) return;
    t.fwdBwd += t1 - t0;
    t.sync += t2 - t1;
    t.step += t3 - t0;
    t.launchedInBackward += dp?.last?.launchedInBackward ?? 0;
    t.buckets = dp?.last?.buckets ?? 0;
  };
  // Warm-up: AdamW state, allocator pools, the first Gloo connections, and the first step that fixes the buckets.
  for (let i = 0; i < 2; i++) await step(i, false);
  for (let i = 0; i < steps; i++) await step(i + 2, true);
  group?.barrier();
  process.stdout.write(JSON.stringify(t) + '\n');
  dp?.detach();
  opt.dispose();
  runner.dispose();
  group?.destroy();
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

/** Run the case with `world` rank processes; returns rank 0's timing. */
async function runRanks(world: number, overlap: boolean): Promise<Timing> {
  const self = fileURLToPath(import.meta.url);
  const port = await freePort();
  const pass = ['--case', values.case!, '--threads', values.threads!, '--device', values.device!, '--steps', values.steps!, '--batch', values.batch!,
    '--bucket-mb', values['bucket-mb']!, '--overlap', String(overlap)];
  const outs = await Promise.all(Array.from({ length: world }, (_, r) => new Promise<string>((resolve, reject) => {
    const env = world > 1 ? { RANK: String(r), LOCAL_RANK: String(r), WORLD_SIZE: String(world), MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port) } : {};
    const p = spawn(process.execPath, [self, '--worker', ...pass], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`rank ${r} of ${world} exited with ${code}`))));
  })));
  return JSON.parse(outs[0].trim().split('\n').pop()!) as Timing;
}

if (values.worker) {
  await worker();
} else {
  const B = Number(values.batch);
  const ranks = values.ranks!.split(',').map(Number);
  const load0 = loadavg()[0];
  const rows: Record<string, number | string | boolean>[] = [];
  let oneRank: number | null = null;
  for (const W of ranks) {
    for (const overlap of W === 1 ? [false] : [true, false]) {
      const t = await runRanks(W, overlap);
      const perStep = t.step / t.steps;
      const sps = (W * B) / perStep;
      if (W === 1) oneRank = sps;
      const row = {
        case: values.case!, params: t.params, ranks: W, overlap: W > 1 ? overlap : 'n/a', backend: W === 1 ? 'none' : values.device!.startsWith('cuda') ? 'nccl' : 'gloo',
        per_rank_batch: B, threads_per_rank: Number(values.threads), bucket_mb: Number(values['bucket-mb']), steps: t.steps,
        s_per_step: +perStep.toFixed(4), samples_per_s: +sps.toFixed(2),
        efficiency: oneRank ? +(sps / (W * oneRank)).toFixed(3) : 'n/a',
        comm_wait: +(t.sync / t.step).toFixed(3),
        buckets: t.buckets, launched_in_backward: +(t.launchedInBackward / t.steps).toFixed(1),
      };
      rows.push(row);
      process.stdout.write(JSON.stringify(row) + '\n');
    }
  }
  const load1 = loadavg()[0];
  process.stdout.write(`\nbench:ddp ${values.case} (${rows[0]?.params} parameters), batch ${B} per rank, ${values.threads} thread(s) per rank, ` +
    `${cpus().length} cores, load average ${load0.toFixed(2)} -> ${load1.toFixed(2)}\n`);
  process.stdout.write('  ranks  overlap  s/step   samples/s  efficiency  comm_wait  buckets (in backward)\n');
  for (const r of rows)
    process.stdout.write(`  ${String(r.ranks).padStart(5)}  ${String(r.overlap).padStart(7)}  ${String(r.s_per_step).padStart(6)}  ${String(r.samples_per_s).padStart(10)}  ` +
      `${String(r.efficiency).padStart(10)}  ${String(r.comm_wait).padStart(9)}  ${r.buckets} (${r.launched_in_backward})\n`);
}
