// bench:train: training throughput on CPU, one JSON line per case.
//   tiny      the real trainer and data loader (src/train/trainer.ts) on a generated synthetic LIBERO
//             suite with the demo encoders: samples/s and the share of the time spent waiting for data.
//   rdt-170m  one training step of rdt-170m (random weights, float32, random condition tensors of the real
//             shapes: 4374 image tokens of 1152, 32 language tokens of 4096) against the PyTorch reference
//             (bench/rdt_torch.py) on the same weights and threads: equality of the loss and gradient norm is
//             checked first (the bench stops otherwise), then interleaved paired rounds; ratio = ours / PyTorch.
// Each case runs in its own process, so peak_rss_mb (the process's maximum resident set) is that case's.
//   npm run bench:train [-- --threads N --cases tiny,rdt-170m --steps-tiny 20 --rounds 5 --warmup 1 --batch-170m 1]
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as torch from '../src/engine/index.js';
import { optim } from '../src/engine/index.js';
import { setupRdtBench, checkSameOutputs } from './rdt_setup.js';
import { pairedRounds, summary, timeMs, median } from './torch_child.js';
import { writeSyntheticSuite } from '../src/data/synthetic.js';
import { loadConfig } from '../src/train/config.js';

const { values } = parseArgs({
  options: {
    case: { type: 'string' }, cases: { type: 'string', default: 'tiny,rdt-170m' }, threads: { type: 'string' },
    'steps-tiny': { type: 'string', default: '20' }, 'batch-tiny': { type: 'string', default: '16' },
    rounds: { type: 'string', default: '5' }, warmup: { type: 'string', default: '1' }, 'batch-170m': { type: 'string', default: '1' },
  },
});
const threads = Number(values.threads ?? availableParallelism());
const peakRssMb = () => Math.round(process.resourceUsage().maxRSS / 1024);

async function benchTiny(): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(join(tmpdir(), 'rdt-bench-train-'));
  try {
    await writeSyntheticSuite({ root: join(dir, 'data'), suite: 'libero_goal', tasks: 4, demos: 5, meanLength: 60, seed: 0 }); // 128x128, as the release
    const steps = Number(values['steps-tiny']);
    const batch = Number(values['batch-tiny']);
    const cfg = loadConfig({
      overrides: {
        model: 'tiny', encoders: 'demo', output_dir: join(dir, 'run'), train_batch_size: batch, gradient_accumulation_steps: 1,
        learning_rate: 1e-3, lr_warmup_steps: 2, max_train_steps: steps, mixed_precision: 'no', checkpointing_period: 1_000_000,
        sample_period: 0, report_to: ['none'], ema: { enabled: true }, data: { dataset_root: join(dir, 'data'), num_workers: 1 },
      },
    });
    const { train } = await import('../src/train/trainer.js');
    const t0 = performance.now();
    const r = await train(cfg, { verbose: false });
    const wall = (performance.now() - t0) / 1000;
    return {
      case: 'tiny', what: 'real trainer + loader, synthetic libero_goal 128x128, demo encoders, float32, EMA on',
      params: 918400, batch, steps: r.steps, threads, samples_per_s: +r.samplesPerSecond.toFixed(2),
      data_wait_share: +r.dataWaitShare.toFixed(3), compute_share: +(1 - r.dataWaitShare).toFixed(3),
      wall_s: +wall.toFixed(1), peak_rss_mb: peakRssMb(),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * One rdt-170m training step (loss with DDPM noising from fresh noise and timesteps, backward, clip to norm 1,
 * AdamW, zero_grad) against the PyTorch reference (bench/rdt_torch.py) on the same weights, inputs and thread
 * count: the loss and the gradients' norm are checked equal first, then paired interleaved rounds.
 */
async function bench170m(): Promise<Record<string, unknown>> {
  const B = Number(values['batch-170m']);
  const b = await setupRdtBench({ preset: 'rdt-170m', batch: B, lang: 32, threads });
  try {
    const { runner } = b;
    const check = await checkSameOutputs(b, { loss: true });
    process.stderr.write(`bench:train rdt-170m: same loss and gradient norm as PyTorch: ${JSON.stringify(check)}\n`);
    runner.train();
    const params = runner.parameters();
    const opt = new optim.AdamW(params, { lr: 1e-4, weightDecay: 1e-2 });
    const gen = new torch.Generator(1);
    const step = () => {
      torch.scope(() => runner.computeLoss(b.inputs, { generator: gen }).backward());
      optim.clipGradNorm_(params, 1.0);
      opt.step();
      opt.zeroGrad();
    };
    const p = await pairedRounds({
      rounds: Number(values.rounds), warmup: Number(values.warmup), label: 'rdt-170m step', ours: () => timeMs(step),
      torch: () => b.ref.time('train'), log: (l) => process.stderr.write(l + '\n'),
    });
    const mem = await b.ref.ask<{ peak_rss_mb: number }>('memory');
    opt.dispose();
    return {
      case: 'rdt-170m', what: 'random weights, random conditions (4374 image + 32 language tokens), float32, loss + backward + clip + AdamW, no EMA, vs PyTorch',
      params: runner.numParameters(), batch: B, threads, rounds: p.ratios.length, ...summary(p),
      samples_per_s: +((B * 1000) / median(p.oursMs)).toFixed(3), torch_samples_per_s: +((B * 1000) / median(p.torchMs)).toFixed(3),
      ratio: 'ours / PyTorch step time per paired round (< 1: ours faster)', check,
      peak_rss_mb: peakRssMb(), torch_peak_rss_mb: Math.round(mem.peak_rss_mb),
      load_average: +loadavg()[0].toFixed(1), allocator: process.env.RDT_CPU_ALLOCATOR ?? 'default (caching)',
    };
  } finally {
    b.cleanup();
  }
}

if (values.case) {
  torch.setNumThreads(threads);
  const r = values.case === 'tiny' ? await benchTiny() : values.case === 'rdt-170m' ? await bench170m() : null;
  if (!r) throw new Error(`unknown case '${values.case}' (tiny, rdt-170m)`);
  process.stdout.write(JSON.stringify(r) + '\n');
} else {
  const self = fileURLToPath(import.meta.url);
  const pass = process.argv.slice(2).filter((a, i, all) => !a.startsWith('--cases') && all[i - 1] !== '--cases');
  let failed = 0;
  for (const c of values.cases!.split(',')) {
    const r = spawnSync(process.execPath, [self, '--case', c, '--threads', String(threads), ...pass], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    if (r.status !== 0) {
      failed++;
      process.stdout.write(JSON.stringify({ case: c, error: `exit ${r.status ?? r.signal}` }) + '\n');
    } else process.stdout.write(r.stdout);
  }
  process.exitCode = failed ? 1 : 0;
}
