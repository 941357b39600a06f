// bench:infer: predictAction latency of rdt-170m (random weights, batch 1, 4374 image tokens, 32 language tokens,
// float32, CPU), with the per-call condition cache (language/image keys and values computed once) and without it
// (our uncached path: the same computation as the official predict_action), against the PyTorch reference
// (bench/rdt_torch.py, written from rdt-spec.md, the official runner's algorithm) on the same weights, inputs and
// thread count. First both must produce the same actions from the same x_T (else the bench stops); then each mode
// is timed in interleaved paired rounds (who goes first alternates). Ratio = ours / PyTorch: < 1 means faster.
//   npm run bench:infer [-- --rounds 5 --warmup 1 --threads N --preset rdt-170m --lang 32 --modes cached,uncached]
import { parseArgs } from 'node:util';
import { loadavg, cpus } from 'node:os';
import * as torch from '../src/engine/index.js';
import type { RdtConfig } from '../src/model/config.js';
import { setupRdtBench, checkSameOutputs } from './rdt_setup.js';
import { pairedRounds, summary, timeMs, round } from './torch_child.js';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' }, warmup: { type: 'string', default: '1' }, preset: { type: 'string', default: 'rdt-170m' },
    threads: { type: 'string' }, lang: { type: 'string', default: '32' }, modes: { type: 'string', default: 'cached,uncached' },
  },
});
if (values.threads) torch.setNumThreads(Number(values.threads));
const threads = torch.getNumThreads();
const L = Number(values.lang);

/** Multiply-adds x 2 of one predictAction call (linear layers and attention products). */
function flops(c: RdtConfig, langLen: number, cached: boolean): number {
  const D = c.rdt.hidden_size;
  const A = c.action_dim;
  const N = c.pred_horizon + 3;
  const Li = c.img_cond_len;
  const steps = c.noise_scheduler.num_inference_timesteps;
  const lin = (tokens: number, i: number, o: number) => 2 * tokens * i * o;
  const adaptors = lin(langLen, c.lang_token_dim, D) + lin(langLen, D, D) + lin(Li, c.img_token_dim, D) + lin(Li, D, D)
    + lin(1, 2 * A, D) + 2 * lin(1, D, D);
  let kv = 0;
  let perStep = lin(c.pred_horizon, 2 * A, D) + 2 * lin(c.pred_horizon, D, D) + 2 * (lin(1, 256, D) + lin(1, D, D)) + lin(N, D, D) + lin(N, D, A);
  for (let i = 0; i < c.rdt.depth; i++) {
    const Lc = i % 2 === 0 ? langLen : Li;
    kv += lin(Lc, D, 2 * D);
    perStep += lin(N, D, 3 * D) + 2 * 2 * N * N * D + lin(N, D, D) // self-attention
      + lin(N, D, D) + 2 * 2 * N * Lc * D + lin(N, D, D) // cross-attention without K/V
      + 2 * lin(N, D, D); // FFN
  }
  return adaptors + steps * perStep + (cached ? kv : steps * kv);
}

const load0 = loadavg()[0];
const b = await setupRdtBench({ preset: values.preset!, batch: 1, lang: L, threads });
try {
  const { cfg, runner } = b;
  runner.eval();
  console.log(`bench:infer  ${values.preset} (${(runner.numParameters() / 1e6).toFixed(1)}M params, random weights), float32, CPU, ${threads} threads (PyTorch too); ` +
    `batch 1, ${cfg.img_cond_len} image tokens, ${L} language tokens, ${cfg.noise_scheduler.num_inference_timesteps} DPM-Solver++ steps; ` +
    `load average ${load0.toFixed(1)} on ${cpus().length} cores; PyTorch ${(b.ref.first.ready as Record<string, unknown>).torch}`);
  const check = await checkSameOutputs(b, { loss: false });
  console.log(`  same outputs: max |ours - PyTorch| / max |PyTorch| = ${JSON.stringify(check)} (actions from the same x_T)`);
  const gen = new torch.Generator(1);
  const rounds = Number(values.rounds);
  const warmup = Number(values.warmup);
  const log = (l: string) => console.log(l);
  const modes: Record<string, unknown> = {};
  for (const cache of values.modes!.split(',').map((m) => m === 'cached')) {
    const label = cache ? 'cached conditions' : 'uncached (official algorithm)';
    const p = await pairedRounds({
      rounds, warmup, label, log,
      ours: () => timeMs(() => torch.scope(() => { runner.predictAction(b.inputs, { generator: gen, cacheConditions: cache }); })),
      torch: () => b.ref.time('predict'),
    });
    const f = flops(cfg, L, cache);
    modes[cache ? 'cached' : 'uncached'] = { ...summary(p), gflop: round(f / 1e9, 0) };
  }
  const mem = await b.ref.ask<{ peak_rss_mb: number }>('memory');
  console.log(JSON.stringify({
    bench: 'infer', preset: values.preset, threads, rounds, warmup, ...modes,
    ratio: 'ours / PyTorch time per paired round (< 1: ours faster); PyTorch runs the official uncached algorithm',
    peak_rss_mb: { ours: Math.round(process.resourceUsage().maxRSS / 1024), torch: Math.round(mem.peak_rss_mb) },
    load_average: { start: round(load0, 1), end: round(loadavg()[0], 1) },
    allocator: process.env.RDT_CPU_ALLOCATOR ?? 'default (caching)', malloc_mmap_threshold: process.env.MALLOC_MMAP_THRESHOLD_ ?? null,
  }));
} finally {
  b.cleanup();
}
