// `npm run bench:engine`: one RDT block (RDT-170M sizes: hidden 1024, 32 heads of 32, 67 self tokens,
// 1024 condition tokens, batch 8, float32), forward and forward+backward+AdamW step, in this engine
// and in PyTorch (bench/engine_torch.py, same weights, inputs and thread count). The two sides run
// interleaved, one iteration each in turn, so load from other processes hits both alike.
// Prints ONE JSON line. Env: BENCH_ITERS (timed iterations, default 10), BENCH_WARMUP (default 2),
// BENCH_THREADS (default: libtorch's default), PYTHON.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { mkdtempSync, writeFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir, loadavg } from 'node:os';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as torch from '../src/engine/index.js';
import { F, optim } from '../src/engine/index.js';
import type { Tensor } from '../src/engine/index.js';
import { RDTBlock, expandKeyMask } from '../src/model/blocks.js';

const ITERS = Number(process.env.BENCH_ITERS ?? 10);
const WARMUP = Number(process.env.BENCH_WARMUP ?? 2);
if (process.env.BENCH_THREADS) torch.setNumThreads(Number(process.env.BENCH_THREADS));
const THREADS = torch.getNumThreads();
const CFG = { hidden: 1024, heads: 32, batch: 8, selfTokens: 67, condTokens: 1024 };

function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) dir = dirname(dir);
  return dir;
}
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;

// ---- our side ----
torch.manualSeed(0);
const { hidden: D, batch: B, selfTokens: N, condTokens: L } = CFG;
// The model's own block (src/model/blocks.ts), so the bench measures exactly what RDT runs.
const block = new RDTBlock(D, CFG.heads, { rmsNorm: 'timm103-unbiased-var' });
const gen = new torch.Generator(1);
const x = torch.randn([B, N, D], { generator: gen }).keep();
const c = torch.randn([B, L, D], { generator: gen }).keep().requiresGrad_(true);
const target = torch.randn([B, N, D], { generator: gen }).keep();
// Language-style key mask: sample b keeps its first L - 97 b tokens.
const keyMask = torch.scope(() => torch.arange(L).unsqueeze(0).lt(torch.arange(B).mul(-97).add(L).unsqueeze(1))).keep();
const mask = torch.scope(() => expandKeyMask(keyMask, N)).keep(); // (B, L) -> the block's attention-mask shape
const opt = new optim.AdamW(block.parameters(), { lr: 1e-4, weightDecay: 0.01 });

function forward(): void {
  torch.scope(() => torch.noGrad(() => void block.forward(x, c, mask)));
}
function trainStep(): void {
  // The forward runs in its own scope so that activations autograd did not save are freed before
  // backward, as Python's refcounting frees them; only the loss escapes to the outer scope.
  torch.scope(() => torch.scope(() => F.mseLoss(block.forward(x, c, mask), target)).backward());
  opt.step();
  opt.zeroGrad();
}
function timed(fn: () => void): number {
  const t = performance.now();
  fn();
  return performance.now() - t;
}

// ---- data for the PyTorch side ----
const dir = mkdtempSync(join(tmpdir(), 'rdt-bench-'));
const dump = (name: string, t: Tensor) => writeFileSync(join(dir, `${name}.bin`), new Uint8Array(t.data().buffer));
const weights = [...block.stateDict()];
for (const [k, t] of weights) dump(`w_${k}`, t);
dump('x', x);
torch.scope(() => dump('c', c.detach()));
dump('mask', keyMask);
dump('target', target);
torch.scope(() => torch.noGrad(() => dump('ours_out', block.forward(x, c, mask))));
writeFileSync(join(dir, 'manifest.json'), JSON.stringify({ weights: weights.map(([k, t]) => [k, t.shape]), x: x.shape, c: c.shape, mask: keyMask.shape }));
// Free the ~80 MB of ArrayBuffers the dumps made now, so that our peak RSS measures the block, not them
// (Python frees its file buffers by refcount as it loads them).
setFlagsFromString('--expose-gc');
(runInNewContext('gc') as () => void)();

const py = spawn(process.env.PYTHON || 'python3', [join(repoRoot(), 'bench', 'engine_torch.py'), JSON.stringify({ ...CFG, threads: THREADS, dir })],
  { stdio: ['pipe', 'pipe', 'inherit'] });
const lines = createInterface({ input: py.stdout! })[Symbol.asyncIterator]();
async function ask<T>(cmd: string): Promise<T> {
  py.stdin!.write(cmd + '\n');
  const r = await lines.next();
  if (r.done) throw new Error(`bench: the PyTorch side exited before answering '${cmd}'`);
  return JSON.parse(r.value) as T;
}

const check = await ask<{ maxAbsDiff: number; keysMatch: boolean }>('check');
const ours = { fwd: [] as number[], step: [] as number[] };
const ref = { fwd: [] as number[], step: [] as number[] };
for (let i = 0; i < WARMUP; i++) {
  forward();
  await ask('fwd 1');
  trainStep();
  await ask('step 1');
}
// Interleaved, and who goes first alternates, so slow phases of a shared machine hit both sides.
for (let i = 0; i < ITERS; i++) {
  const oursFwd = () => ours.fwd.push(timed(forward));
  const refFwd = async () => ref.fwd.push(...(await ask<{ ms: number[] }>('fwd 1')).ms);
  const oursStep = () => ours.step.push(timed(trainStep));
  const refStep = async () => ref.step.push(...(await ask<{ ms: number[] }>('step 1')).ms);
  if (i % 2 === 0) {
    oursFwd(); await refFwd(); oursStep(); await refStep();
  } else {
    await refFwd(); oursFwd(); await refStep(); oursStep();
  }
}
const torchRss = (await ask<{ peakRss: number }>('quit')).peakRss;
rmSync(dir, { recursive: true, force: true });

const stepRatio = median(ours.step.map((v, i) => v / ref.step[i]));
const res = {
  bench: 'engine',
  block: { ...CFG, headDim: D / CFG.heads, ffnRatio: 1, rmsNorm: 'timm103-unbiased-var', dtype: 'float32', params: block.numParameters() },
  threads: THREADS,
  iters: ITERS,
  warmup: WARMUP,
  oursMs: { fwd: round(median(ours.fwd)), fwdBwdStep: round(median(ours.step)) },
  torchMs: { fwd: round(median(ref.fwd)), fwdBwdStep: round(median(ref.step)) },
  // Per interleaved round, ours / PyTorch: a single ratio of two medians moved by 10% between runs on a busy
  // machine; the per-round ratios show the spread, and pass/fail is on their median.
  ratioPerRound: { fwd: ours.fwd.map((v, i) => round(v / ref.fwd[i], 3)), fwdBwdStep: ours.step.map((v, i) => round(v / ref.step[i], 3)) },
  ratioMin: { fwd: round(Math.min(...ours.fwd.map((v, i) => v / ref.fwd[i])), 3), fwdBwdStep: round(Math.min(...ours.step.map((v, i) => v / ref.step[i])), 3) },
  ratioMedian: { fwd: round(median(ours.fwd.map((v, i) => v / ref.fwd[i])), 3), fwdBwdStep: round(stepRatio, 3) },
  peakRssMB: { ours: round(process.resourceUsage().maxRSS / 1024, 1), torch: round(torchRss / 2 ** 20, 1) },
  outputMaxAbsDiff: check.maxAbsDiff,
  stateDictKeysMatch: check.keysMatch,
  target: 1.1,
  pass: stepRatio <= 1.1,
  liveTensors: torch.liveTensors(),
  loadAverage: round(loadavg()[0], 2),
};
console.log(JSON.stringify(res));
