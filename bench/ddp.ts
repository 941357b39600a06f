// bench:ddp: data-parallel step time, 2 ranks against 1 at the same per-rank batch, one JSON line per case.
// Each rank is its own process with `--threads` libtorch threads (default 1, so 2 ranks fit 2 cores);
// ranks join a Gloo group (NCCL when --device cuda, the GPU run of the same bench). A step is
// forward+backward on random conditions of the model's real shapes, the gradient averaging rdt-libero
// trains with (src/train/ddp.ts: 25 MB buckets, one all-reduce each, after backward), clipping and AdamW.
//   scaling    = (2-rank samples/s) / (1-rank samples/s); 2.0 is perfect
//   comm_share = share of the 2-rank step spent in the gradient all-reduce (rank 0's clock)
//   overlaps_backward: false: the all-reduce starts after backward (the engine's backward is one call)
//   npm run bench:ddp [-- --cases tiny,rdt-170m --steps-tiny 20 --batch-tiny 8 --steps-170m 2 --batch-170m 1 --threads 1]
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createServer } from 'node:net';
import { parseArgs } from 'node:util';
import * as torch from '../src/engine/index.js';
import { optim } from '../src/engine/index.js';
import { rdtPreset } from '../src/model/config.js';
import { RDTRunner } from '../src/model/runner.js';
import { initProcessGroup, envFromTorchrun } from '../src/engine/distributed.js';
import { DataParallel } from '../src/train/ddp.js';

const { values } = parseArgs({
  options: {
    worker: { type: 'string' }, cases: { type: 'string', default: 'tiny,rdt-170m' }, threads: { type: 'string', default: '1' },
    device: { type: 'string', default: 'cpu' },
    'steps-tiny': { type: 'string', default: '20' }, 'batch-tiny': { type: 'string', default: '8' },
    'steps-170m': { type: 'string', default: '2' }, 'batch-170m': { type: 'string', default: '1' },
  },
});

interface Timing {
  rank: number;
  fwdBwd: number;
  sync: number;
  opt: number;
  steps: number;
  params: number;
}

/** One rank: build the case's model, run warm-up + timed steps, print its timing. */
async function worker(name: string): Promise<void> {
  torch.setNumThreads(Number(values.threads));
  const device = values.device!;
  const env = envFromTorchrun();
  const group = env && env.worldSize > 1 ? initProcessGroup({ env, backend: device.startsWith('cuda') ? 'nccl' : 'gloo', timeoutMs: 600_000 }) : null;
  const dp = group ? new DataParallel(group) : null;
  const cfg = name === 'tiny' ? rdtPreset('tiny') : rdtPreset('rdt-170m');
  const B = Number(name === 'tiny' ? values['batch-tiny'] : values['batch-170m']);
  const steps = Number(name === 'tiny' ? values['steps-tiny'] : values['steps-170m']);
  const gen = new torch.Generator(1 + (env?.rank ?? 0));
  const runner = new RDTRunner(cfg, { dtype: 'float32', device, generator: new torch.Generator(0) });
  runner.train();
  const params = runner.parameters();
  dp?.broadcastFromMain(params);
  const opt = new optim.AdamW(params, { lr: 1e-4, weightDecay: 1e-2 });
  const sync = () => (device.startsWith('cuda') ? torch.cuda.synchronize() : undefined);
  const t: Timing = { rank: env?.rank ?? 0, fwdBwd: 0, sync: 0, opt: 0, steps, params: runner.numParameters() };
  const clock = () => performance.now() / 1000;
  const step = (record: boolean) => {
    torch.scope(() => {
      const L = Math.min(32, cfg.max_lang_cond_len);
      const inp = {
        langTokens: torch.randn([B, L, cfg.lang_token_dim], { generator: gen }), langMask: torch.ones([B, L], { dtype: 'bool' }),
        imgTokens: torch.randn([B, cfg.img_cond_len, cfg.img_token_dim], { generator: gen }),
        stateTokens: torch.randn([B, 1, cfg.state_token_dim], { generator: gen }), actionMask: torch.ones([B, 1, cfg.action_dim]),
        ctrlFreqs: torch.full([B], 20), actionGt: torch.randn([B, cfg.pred_horizon, cfg.action_dim], { generator: gen }),
      };
      const t0 = clock();
      runner.computeLoss(inp, { generator: gen }).backward();
      sync();
      const t1 = clock();
      dp?.averageGradients(params);
      sync();
      const t2 = clock();
      optim.clipGradNorm_(params, 1.0);
      opt.step();
      opt.zeroGrad();
      sync();
      const t3 = clock();
      if (record) {
        t.fwdBwd += t1 - t0;
        t.sync += t2 - t1;
        t.opt += t3 - t2;
      }
    });
  };
  step(false); // warm-up: AdamW state, allocator pools, the first Gloo connections
  for (let i = 0; i < steps; i++) step(true);
  dp?.group.barrier();
  process.stdout.write(JSON.stringify(t) + '\n');
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
async function runRanks(name: string, world: number): Promise<Timing> {
  const self = fileURLToPath(import.meta.url);
  const port = await freePort();
  const pass = process.argv.slice(2).filter((a, i, all) => !a.startsWith('--cases') && all[i - 1] !== '--cases');
  const outs = await Promise.all(Array.from({ length: world }, (_, r) => new Promise<string>((resolve, reject) => {
    const env = world > 1 ? { RANK: String(r), LOCAL_RANK: String(r), WORLD_SIZE: String(world), MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port) } : {};
    const p = spawn(process.execPath, [self, '--worker', name, ...pass], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${name} rank ${r} of ${world} exited with ${code}`))));
  })));
  return JSON.parse(outs[0].trim().split('\n').pop()!) as Timing;
}

if (values.worker) {
  await worker(values.worker);
} else {
  for (const name of values.cases!.split(',')) {
    const B = Number(name === 'tiny' ? values['batch-tiny'] : values['batch-170m']);
    const one = await runRanks(name, 1);
    const two = await runRanks(name, 2);
    const stepOne = (one.fwdBwd + one.sync + one.opt) / one.steps;
    const stepTwo = (two.fwdBwd + two.sync + two.opt) / two.steps;
    process.stdout.write(JSON.stringify({
      case: name, params: one.params, per_rank_batch: B, threads_per_rank: Number(values.threads), device: values.device,
      backend: values.device!.startsWith('cuda') ? 'nccl' : 'gloo', steps: one.steps,
      s_per_step_1rank: +stepOne.toFixed(4), s_per_step_2ranks: +stepTwo.toFixed(4),
      samples_per_s_1rank: +(B / stepOne).toFixed(2), samples_per_s_2ranks: +((2 * B) / stepTwo).toFixed(2),
      scaling: +((2 * B) / stepTwo / (B / stepOne)).toFixed(3), comm_share: +(two.sync / (two.fwdBwd + two.sync + two.opt)).toFixed(3),
      comm_s_per_step: +(two.sync / two.steps).toFixed(4), overlaps_backward: false,
    }) + '\n');
  }
}
