// bench:infer: predictAction latency for an rdt-170m-sized model with random weights (batch 1,
// 4374 image tokens, 32 language tokens, float32, CPU), with the per-call condition cache (the
// language/image keys and values computed once) and without it (the official code path).
//   npm run bench:infer [-- --runs N --preset rdt-170m --threads N]
import { parseArgs } from 'node:util';
import { loadavg, cpus } from 'node:os';
import * as torch from '../src/engine/index.js';
import { rdtPreset, type RdtConfig } from '../src/model/config.js';
import { RDTRunner } from '../src/model/runner.js';

const { values } = parseArgs({
  options: { runs: { type: 'string', default: '3' }, preset: { type: 'string', default: 'rdt-170m' }, threads: { type: 'string' }, lang: { type: 'string', default: '32' } },
});
if (values.threads) torch.setNumThreads(Number(values.threads));
const runs = Number(values.runs);
const L = Number(values.lang);
const cfg = rdtPreset(values.preset!);

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

function inputs(gen: torch.Generator) {
  const mask = torch.zeros([1, 1, cfg.action_dim]);
  mask.slice(2, 0, 14).fill_(1);
  return {
    langTokens: torch.randn([1, L, cfg.lang_token_dim], { generator: gen }),
    langMask: torch.ones([1, L], { dtype: 'bool' }),
    imgTokens: torch.randn([1, cfg.img_cond_len, cfg.img_token_dim], { generator: gen }),
    stateTokens: torch.randn([1, 1, cfg.state_token_dim], { generator: gen }).mul(mask),
    actionMask: mask,
    ctrlFreqs: torch.tensor([20]),
  };
}

function time(fn: () => void): number {
  const t0 = performance.now();
  fn();
  return (performance.now() - t0) / 1000;
}
const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(0);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const gen = new torch.Generator(0);
let runner!: RDTRunner;
const build = time(() => (runner = new RDTRunner(cfg, { init: 'none', generator: gen })));
runner.eval();
const inp = inputs(gen);
const noise = torch.randn([1, cfg.pred_horizon, cfg.action_dim], { generator: gen });
console.log(`bench:infer  ${values.preset} (${(runner.numParameters() / 1e6).toFixed(1)}M params, random weights), float32, CPU, ` +
  `${torch.getNumThreads()} threads; batch 1, ${cfg.img_cond_len} image tokens, ${L} language tokens, ` +
  `${cfg.noise_scheduler.num_inference_timesteps} DPM-Solver++ steps; built in ${build.toFixed(1)} s, RSS ${mib(process.memoryUsage().rss)} MiB`);
const load = loadavg()[0];
if (load > cpus().length)
  console.log(`  note: the machine is busy (load ${load.toFixed(1)} on ${cpus().length} cores); with more threads than free cores, ` +
    'small ops wait for descheduled threads and timings inflate; --threads 1 gives steadier numbers');

const results: Record<string, number[]> = { cached: [], uncached: [] };
let check: number[] = [];
for (const mode of ['cached', 'uncached'] as const) {
  for (let r = 0; r <= runs; r++) {
    const dt = time(() => torch.scope(() => {
      const a = runner.predictAction(inp, { noise, cacheConditions: mode === 'cached' });
      const v = Array.from(a.slice(2, 0, 4).toFloat64());
      if (r === 0) check = mode === 'cached' ? v : check.map((x, i) => Math.abs(x - v[i]));
    }));
    if (r > 0) results[mode].push(dt); // run 0 is the warm-up
  }
}
const c = median(results.cached);
const u = median(results.uncached);
const fc = flops(cfg, L, true);
const fu = flops(cfg, L, false);
console.log(`  with cached conditions    ${c.toFixed(3)} s  (median of ${runs}; ${(fc / 1e9).toFixed(0)} GFLOP, ${(fc / c / 1e9).toFixed(1)} GFLOP/s)`);
console.log(`  without (official path)   ${u.toFixed(3)} s  (median of ${runs}; ${(fu / 1e9).toFixed(0)} GFLOP, ${(fu / u / 1e9).toFixed(1)} GFLOP/s)`);
console.log(`  speedup                   ${(u / c).toFixed(2)}x  (FLOP ratio ${(fu / fc).toFixed(2)}x)`);
console.log(`  max |cached - uncached| on the first actions: ${Math.max(...check).toExponential(2)}`);
console.log(`  peak RSS                  ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB`);
runner.dispose();
