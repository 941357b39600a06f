// bench:gpu (run by scripts/bench-gpu.sh after it has built the addon against the CUDA torch and run doctor):
// rdt-1b with random weights on one CUDA GPU, ours against the PyTorch reference (bench/rdt_torch.py) on the
// same GPU, weights and inputs: one bf16 mixed-precision training step (bf16 weights, float32 masters and AdamW
// state, clip 1.0: the official DeepSpeed scheme and our trainer's) and predictAction (bf16, batch 1). First the
// actions are compared (bf16 tolerance), then paired interleaved rounds. Prints samples/s, latency, peak GPU
// memory and ours / PyTorch ratios as one JSON line.
//   node dist/bench/gpu.js [--preset rdt-1b --batch 8 --rounds 3 --warmup 1]
import { parseArgs } from 'node:util';
import * as torch from '../src/engine/index.js';
import { optim } from '../src/engine/index.js';
import { MasterWeights } from '../src/train/mixed_precision.js';
import { setupRdtBench, checkSameOutputs } from './rdt_setup.js';
import { pairedRounds, summary, timeMs, median, round } from './torch_child.js';

const { values } = parseArgs({
  options: {
    preset: { type: 'string', default: 'rdt-1b' }, batch: { type: 'string', default: '8' },
    rounds: { type: 'string', default: '3' }, warmup: { type: 'string', default: '1' }, device: { type: 'string', default: 'cuda' },
  },
});
const why = torch.cudaUnavailableReason();
if (why) {
  console.error(`bench:gpu: no CUDA to run on: ${why}`);
  process.exit(2);
}
const device = values.device!;
const rounds = Number(values.rounds);
const warmup = Number(values.warmup);
const B = Number(values.batch);
const sync = () => torch.cuda.synchronize();
const gpuMs = (fn: () => void) => timeMs(() => { fn(); sync(); });
const gib = (bytes: number) => round(bytes / 2 ** 30, 2);
const gpuIndex = Number(/cuda:(\d+)/.exec(device)?.[1] ?? 0);
const log = (l: string) => process.stderr.write(l + '\n');
const out: Record<string, unknown> = { bench: 'gpu', preset: values.preset, device: torch.cuda.deviceName(gpuIndex), libtorch: torch.libtorch.version() };

// predictAction: bf16 weights, batch 1
{
  const b = await setupRdtBench({ preset: values.preset!, batch: 1, lang: 32, threads: torch.getNumThreads(), device, dtype: 'bfloat16' });
  try {
    b.runner.eval();
    // bf16 through 28 blocks with two implementations' op orders: agreement to ~1e-2 of the scale; a real bug is O(1)
    out.check = await checkSameOutputs(b, { loss: false, tol: 5e-2 });
    const gen = new torch.Generator(1);
    torch.cuda.resetPeakMemoryStats(gpuIndex);
    for (const cache of [true, false]) {
      const p = await pairedRounds({
        rounds, warmup, label: `predictAction ${cache ? 'cached' : 'uncached'}`, log,
        ours: () => gpuMs(() => torch.scope(() => { b.runner.predictAction(b.inputs, { generator: gen, cacheConditions: cache }); })),
        torch: () => b.ref.time('predict'),
      });
      out[`predict_${cache ? 'cached' : 'uncached'}`] = { ...summary(p), latency_ms: round(median(p.oursMs), 1) };
    }
    const mem = await b.ref.ask<{ peak_gpu_mb: number }>('memory');
    out.predict_peak_gpu_gib = { ours: gib(torch.cuda.memoryStats(gpuIndex).peakAllocated), torch: round(mem.peak_gpu_mb / 1024, 2) };
  } finally {
    b.cleanup();
  }
}

// one bf16 mixed-precision training step, batch B
{
  const b = await setupRdtBench({ preset: values.preset!, batch: B, lang: 32, threads: torch.getNumThreads(), device, dtype: 'bfloat16', masters: true });
  try {
    const { runner } = b;
    runner.train();
    const params = runner.parameters();
    const masters = new MasterWeights(params);
    const opt = new optim.AdamW(masters.masters, { lr: 1e-4, weightDecay: 1e-2 });
    const gen = new torch.Generator(2);
    const step = () => {
      torch.scope(() => runner.computeLoss(b.inputs, { generator: gen }).backward());
      masters.gradsToMasters();
      runner.zeroGrad();
      optim.clipGradNorm_(masters.masters, 1.0);
      opt.step();
      opt.zeroGrad();
      masters.mastersToParams();
    };
    torch.cuda.resetPeakMemoryStats(gpuIndex);
    const p = await pairedRounds({ rounds, warmup, label: 'bf16 training step', log, ours: () => gpuMs(step), torch: () => b.ref.time('train') });
    const mem = await b.ref.ask<{ peak_gpu_mb: number }>('memory');
    out.train_step = {
      batch: B, ...summary(p), samples_per_s: round((B * 1000) / median(p.oursMs), 2), torch_samples_per_s: round((B * 1000) / median(p.torchMs), 2),
      peak_gpu_gib: { ours: gib(torch.cuda.memoryStats(gpuIndex).peakAllocated), torch: round(mem.peak_gpu_mb / 1024, 2) },
    };
    opt.dispose();
    masters.dispose();
  } finally {
    b.cleanup();
  }
}
out.ratio = 'ours / PyTorch time per paired round (< 1: ours faster)';
console.log(JSON.stringify(out));
