// bench:train: training throughput on CPU, one JSON line per case.
//   tiny      the real trainer and data loader (src/train/trainer.ts) on a generated synthetic LIBERO
//             suite with the demo encoders: samples/s and the share of the time spent waiting for data.
//   rdt-170m  an rdt-170m-sized model (random init, float32) trained on random condition tensors of the
//             real shapes (4374 image tokens of 1152, 32 language tokens of 4096): the demo encoders cannot
//             produce those, so the "input" share is the time to make the random tensors, and the rest is
//             split into forward+backward and the optimizer step (clipping + AdamW).
// Each case runs in its own process, so peak_rss_mb (the process's maximum resident set) is that case's.
//   npm run bench:train [-- --threads N --cases tiny,rdt-170m --steps-tiny 20 --steps-170m 3 --batch-170m 1]
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as torch from '../src/engine/index.js';
import { optim } from '../src/engine/index.js';
import { rdtPreset } from '../src/model/config.js';
import { RDTRunner } from '../src/model/runner.js';
import { writeSyntheticSuite } from '../src/data/synthetic.js';
import { loadConfig } from '../src/train/config.js';

const { values } = parseArgs({
  options: {
    case: { type: 'string' }, cases: { type: 'string', default: 'tiny,rdt-170m' }, threads: { type: 'string' },
    'steps-tiny': { type: 'string', default: '20' }, 'batch-tiny': { type: 'string', default: '16' },
    'steps-170m': { type: 'string', default: '3' }, 'batch-170m': { type: 'string', default: '1' },
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

function bench170m(): Record<string, unknown> {
  const cfg = rdtPreset('rdt-170m');
  const B = Number(values['batch-170m']);
  const steps = Number(values['steps-170m']);
  const L = 32;
  const gen = new torch.Generator(0);
  const runner = new RDTRunner(cfg, { dtype: 'float32', generator: gen });
  runner.train();
  const params = runner.parameters();
  const opt = new optim.AdamW(params, { lr: 1e-4, weightDecay: 1e-2 });
  const t = { input: 0, fwdBwd: 0, opt: 0 };
  const clock = () => performance.now() / 1000;
  const step = (record: boolean) => {
    const t0 = clock();
    const inp = torch.scope(() => {
      const mask = torch.zeros([B, 1, cfg.action_dim]);
      mask.slice(2, 0, 14).fill_(1);
      const x = {
        langTokens: torch.randn([B, L, cfg.lang_token_dim], { generator: gen }),
        langMask: torch.ones([B, L], { dtype: 'bool' }),
        imgTokens: torch.randn([B, cfg.img_cond_len, cfg.img_token_dim], { generator: gen }),
        stateTokens: torch.randn([B, 1, cfg.state_token_dim], { generator: gen }).mul(mask),
        actionMask: mask,
        ctrlFreqs: torch.full([B], 20),
        actionGt: torch.randn([B, cfg.pred_horizon, cfg.action_dim], { generator: gen }).mul(mask),
      };
      for (const v of Object.values(x)) v.keep();
      return x;
    });
    const t1 = clock();
    torch.scope(() => runner.computeLoss(inp, { generator: gen }).backward());
    const t2 = clock();
    optim.clipGradNorm_(params, 1.0);
    opt.step();
    opt.zeroGrad();
    const t3 = clock();
    for (const v of Object.values(inp)) v.dispose();
    if (record) {
      t.input += t1 - t0;
      t.fwdBwd += t2 - t1;
      t.opt += t3 - t2;
    }
  };
  step(false); // warm-up: allocates the AdamW state and the allocator's pools
  for (let i = 0; i < steps; i++) step(true);
  const total = t.input + t.fwdBwd + t.opt;
  return {
    case: 'rdt-170m', what: 'random init, random conditions (4374 image + 32 language tokens), float32, AdamW, no EMA',
    params: runner.numParameters(), batch: B, steps, threads, samples_per_s: +((steps * B) / total).toFixed(3),
    s_per_step: +(total / steps).toFixed(2), input_share: +(t.input / total).toFixed(3), fwd_bwd_share: +(t.fwdBwd / total).toFixed(3),
    optimizer_share: +(t.opt / total).toFixed(3), peak_rss_mb: peakRssMb(),
  };
}

if (values.case) {
  torch.setNumThreads(threads);
  const r = values.case === 'tiny' ? await benchTiny() : values.case === 'rdt-170m' ? bench170m() : null;
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
