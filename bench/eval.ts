// bench:eval: evaluation throughput, episodes per hour, with N simulator workers sharing batched model calls
// against one worker run sequentially (one observation per model call), same back-end (the sidecar's test
// geometry), same model (a tiny rdt-libero policy trained for 2 steps on a synthetic suite), same episodes.
//   npm run bench:eval [-- --workers 4 --episodes 8 --max-steps 60 --exec-horizon 8 --size 64 --threads 1]
// --threads: libtorch intra-op threads (default 1: the sidecars need the other cores, and OpenMP threads that
// spin on an oversubscribed machine made one tiny-model call 28x slower here: 1763 ms against 63 ms).
//
// --text-cache: instead, eval's per-call policy latency (Policy.predict, batch 1, the tiny policy) with the per-process
// instruction cache (the instruction already encoded: what every call of an episode after the first costs) against
// without it (a new instruction every call, so the text encoder runs on each call, as every call did before the
// cache), in interleaved rounds; first with the fixture (demo) encoders, then what the official T5-XXL would add to
// each uncached call: one forward of T5-XXL-shaped layers (d_model 4096, 64 heads of 64, d_ff 10240 gated-gelu,
// random weights) on a LIBERO-length instruction (--t5-tokens, default 20), timed on --t5-layers layers (default 1;
// the full 24 layers are ~19 GB in float32, more than this machine can spare) and scaled to 24, since every layer
// costs the same.
//   npm run bench:eval -- --text-cache [--rounds 20 --t5-layers 1 --t5-tokens 20]
import { parseArgs } from 'node:util';
import { cpus, loadavg } from 'node:os';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openPolicy } from '../src/eval/policy_source.js';
import { PROTOCOLS } from '../src/eval/protocol.js';
import { runEval } from '../src/eval/run.js';
import { makeTinyPolicy } from '../test/helpers/tiny-policy.js';
import * as torch from '../src/engine/index.js';
import { loadPolicy } from '../src/policy/policy.js';
import { parseT5Config } from '../src/encoders/t5_config.js';
import { T5EncoderModel } from '../src/encoders/t5.js';
import { WeightSource } from '../src/encoders/weight_source.js';

const { values } = parseArgs({
  options: {
    workers: { type: 'string', default: '4' }, episodes: { type: 'string', default: '8' }, 'max-steps': { type: 'string', default: '60' },
    'exec-horizon': { type: 'string', default: '8' }, size: { type: 'string', default: '64' }, threads: { type: 'string', default: '1' },
    'text-cache': { type: 'boolean' }, rounds: { type: 'string', default: '20' }, 't5-layers': { type: 'string', default: '1' }, 't5-tokens': { type: 'string', default: '20' },
  },
});
const N = Number(values.workers);
const work = mkdtempSync(join(tmpdir(), 'rdt-bench-eval-'));
const log = (s: string) => process.stdout.write(s + '\n');
/** Median of a list of times. */
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function textCacheBench(): Promise<void> {
  torch.setNumThreads(Number(values.threads));
  log(`bench:eval --text-cache: ${cpus().length} cores, load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}, ${values.threads} libtorch thread(s); training the tiny policy ...`);
  const { policy: dir } = await makeTinyPolicy(work, { size: 32 });
  const policy = loadPolicy(dir);
  const R = Number(values.rounds);
  const frame = { robot: { eefPos: [0, 0, 1], eefAxisAngle: [0, 0, 0], gripperQpos: [0.04, -0.04] }, images: { agentview: new Uint8Array(32 * 32 * 3), eyeInHand: new Uint8Array(32 * 32 * 3) } };
  const instruction = 'put the black bowl on the plate';
  const call = (text: string) => {
    const t0 = performance.now();
    policy.predict({ history: Array.from({ length: policy.historySize }, (_, i) => (i === policy.historySize - 1 ? frame : null)), instruction: text }, { seed: 1 });
    return performance.now() - t0;
  };
  call(instruction); // warm-up, and the instruction goes into the cache
  const cached: number[] = [], uncached: number[] = [];
  for (let r = 0; r < R; r++) {
    const miss = () => uncached.push(call(`${instruction} ${r}`)); // a text never seen: encoded on this call
    if (r % 2) (miss(), cached.push(call(instruction)));
    else (cached.push(call(instruction)), miss());
  }
  policy.dispose();
  const hit = median(cached), miss = median(uncached);
  log(`fixture encoders: per call ${miss.toFixed(2)} ms without the cache (text encoded each call), ${hit.toFixed(2)} ms with it; ratio without/with ${(miss / hit).toFixed(2)}x (median of ${R})`);

  // T5-XXL's encoder (google/t5-v1_1-xxl config.json): d_model 4096, d_kv 64, 64 heads, d_ff 10240, 24 layers, gated-gelu.
  const layers = Number(values['t5-layers']), L = Number(values['t5-tokens']);
  const cfg = parseT5Config({ model_type: 't5', vocab_size: 32128, d_model: 4096, d_kv: 64, d_ff: 10240, num_layers: layers, num_heads: 64, feed_forward_proj: 'gated-gelu' }, 'T5-XXL shape');
  const gen = new torch.Generator(0);
  const w = new Map<string, torch.Tensor>();
  const rand = (k: string, shape: number[], std: number) => w.set(k, torch.scope(() => torch.randn(shape, { generator: gen }).mul(std)).keep());
  rand('shared.weight', [cfg.vocabSize, cfg.dModel], 1);
  w.set('encoder.final_layer_norm.weight', torch.ones([cfg.dModel]).keep());
  for (let i = 0; i < layers; i++) {
    const p = `encoder.block.${i}.layer`, hk = cfg.numHeads * cfg.dKv;
    for (const x of ['q', 'k', 'v']) rand(`${p}.0.SelfAttention.${x}.weight`, [hk, cfg.dModel], cfg.dModel ** -0.5);
    rand(`${p}.0.SelfAttention.o.weight`, [cfg.dModel, hk], hk ** -0.5);
    if (i === 0) rand(`${p}.0.SelfAttention.relative_attention_bias.weight`, [cfg.numBuckets, cfg.numHeads], 1);
    w.set(`${p}.0.layer_norm.weight`, torch.ones([cfg.dModel]).keep());
    for (const x of ['wi_0', 'wi_1']) rand(`${p}.1.DenseReluDense.${x}.weight`, [cfg.dFf, cfg.dModel], cfg.dModel ** -0.5);
    rand(`${p}.1.DenseReluDense.wo.weight`, [cfg.dModel, cfg.dFf], cfg.dFf ** -0.5);
    w.set(`${p}.1.layer_norm.weight`, torch.ones([cfg.dModel]).keep());
  }
  const src = new WeightSource('T5-XXL shape (random)', w, 'float32', 'cpu');
  const t5 = src.finishFor(new T5EncoderModel(src, cfg, 'float32', 'cpu'));
  const ids = torch.randint(3, cfg.vocabSize, [1, L], { generator: gen }).keep();
  const times: number[] = [];
  for (let r = 0; r < Math.max(3, Math.min(R, 5)) + 1; r++) {
    const t0 = performance.now();
    torch.scope(() => void t5.forward(ids, null));
    if (r > 0) times.push(performance.now() - t0); // the first is a warm-up
  }
  t5.dispose();
  ids.dispose();
  const t5Call = (median(times) * 24) / layers;
  log(`T5-XXL shape: ${layers} layer(s) x ${L} tokens ${median(times).toFixed(1)} ms -> 24 layers ~${t5Call.toFixed(0)} ms per uncached call (float32, CPU)`);
  log(`with T5-XXL: per call ${(hit + t5Call).toFixed(1)} ms without the cache, ${hit.toFixed(2)} ms with it (the tiny policy's model); ratio without/with ${((hit + t5Call) / hit).toFixed(1)}x; ` +
    `load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
}

async function throughputBench(): Promise<void> {
  log(`bench:eval: ${cpus().length} cores, load average ${loadavg()[0].toFixed(1)}, ${values.threads} libtorch thread(s); training the tiny policy (${values.size}px) ...`);
  const { policy: dir } = await makeTinyPolicy(work, { size: Number(values.size) });
  const run = async (workers: number, tag: string) => {
    const policy = await openPolicy({ policy: dir, threads: Number(values.threads) });
    try {
      const r = await runEval(policy, {
        out: join(work, tag), suites: ['libero_goal'], tasks: [0], episodesPerTask: Number(values.episodes), protocol: PROTOCOLS.openpi,
        maxSteps: Number(values['max-steps']), execHorizon: Number(values['exec-horizon']), temporalEnsemble: null, workers, maxBatch: workers,
        seed: 7, shard: null, videos: 'none', maxRetries: 0, sidecar: { backend: 'test' }, log: () => {},
      });
      const perH = (r.ran / r.wallS) * 3600;
      const mean = r.batchSizes.reduce((a, b) => a + b, 0) / r.batchSizes.length;
      log(`${tag.padEnd(28)} ${r.ran} episodes in ${r.wallS.toFixed(1)} s = ${perH.toFixed(0)} episodes/h; ${r.modelCalls} model calls, mean batch ${mean.toFixed(2)}`);
      return perH;
    } finally {
      await policy.close();
    }
  };
  const seq = await run(1, '1 worker, sequential');
  const par = await run(N, `${N} workers, batched`);
  log(`ratio (${N} workers + batching / 1 worker): ${(par / seq).toFixed(2)}x`);
}

try {
  if (values['text-cache']) await textCacheBench();
  else await throughputBench();
} finally {
  rmSync(work, { recursive: true, force: true });
}
