// `npm run bench:encoders`: T5 encoding and SigLIP images/s in this engine against transformers on the
// same machine, shapes, weights and inputs (bench/encoders_torch.py; skipped when transformers is not
// installed), timed in interleaved rounds (bench/torch_child.ts) and printed as per-round ratios with min and
// median (ours / transformers, as every bench prints them: <= 1.0 means at least as fast); and the memory
// taken by loading the encoder half of a float32 T5 pytorch_model.bin into bf16 (peak RSS during the load
// minus RSS before it, in a fresh process), against the file size (target <= 0.30).
// SigLIP runs at the real so400m-patch14-384 architecture (random weights, batch 6); T5 at a reduced width.
// Env: BENCH_DEVICE (cpu), BENCH_DTYPE (float32 on cpu, bfloat16 on cuda), BENCH_ITERS (5 rounds), BENCH_WARMUP (1),
// BENCH_SMALL=1 (tiny sizes, a smoke run), BENCH_PARTS (speed,mem), BENCH_MODELS (t5,siglip), BENCH_BIN_LAYERS (24), PYTHON.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as torch from '../src/engine/index.js';
import type { DType, Tensor } from '../src/engine/index.js';
import { loadSiglipVision } from '../src/encoders/siglip_load.js';
import { loadT5Encoder } from '../src/encoders/t5_load.js';
import { preprocessImages } from '../src/encoders/image_preprocess.js';
import { benchRoot as root, median, pairedRounds, round, startTorchChild, summary } from './torch_child.js';

const SMALL = process.env.BENCH_SMALL === '1';
const DEVICE = process.env.BENCH_DEVICE ?? 'cpu';
const DTYPE = (process.env.BENCH_DTYPE ?? (DEVICE.startsWith('cuda') ? 'bfloat16' : 'float32')) as DType;
const ITERS = Number(process.env.BENCH_ITERS ?? 5);
const WARMUP = Number(process.env.BENCH_WARMUP ?? 1);
const PY = process.env.PYTHON ?? 'python3';
const T5 = SMALL
  ? { vocab_size: 512, d_model: 64, d_kv: 16, d_ff: 160, num_layers: 2, num_heads: 4 }
  : { vocab_size: 32128, d_model: 1024, d_kv: 64, d_ff: 2816, num_layers: 24, num_heads: 16 };
const T5_BATCH = { b: 8, l: 32 };
const SIGLIP = SMALL
  ? { hidden_size: 48, intermediate_size: 112, num_hidden_layers: 2, num_attention_heads: 4, image_size: 56, patch_size: 14 }
  : { hidden_size: 1152, intermediate_size: 4304, num_hidden_layers: 27, num_attention_heads: 16, image_size: 384, patch_size: 14 };
const IMAGES = 6;
// ~3.1 GB float32 file at full size (24 layers); BENCH_BIN_LAYERS sets another depth.
const BIN = { ...T5, num_layers: Number(process.env.BENCH_BIN_LAYERS ?? (SMALL ? 2 : 24)) };
const PARTS = new Set((process.env.BENCH_PARTS ?? 'speed,mem').split(','));
const MODELS = (process.env.BENCH_MODELS ?? 't5,siglip').split(',');

const tmp = mkdtempSync(join(tmpdir(), 'rdt-bench-enc-'));
const gen = new torch.Generator(0);
const rand = (shape: number[], std = 0.02) => torch.randn(shape, { generator: gen }).mul(std);

function writeHub(dir: string, config: object, tensors: Record<string, Tensor>): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  torch.saveSafetensors(join(dir, 'model.safetensors'), tensors);
}

function t5Weights(): Record<string, Tensor> {
  const { d_model: d, d_kv: kv, d_ff: ff, num_heads: h, num_layers: n, vocab_size: v } = T5;
  const w: Record<string, Tensor> = { 'shared.weight': rand([v, d], 1), 'encoder.final_layer_norm.weight': torch.ones([d]) };
  for (let i = 0; i < n; i++) {
    const p = `encoder.block.${i}.layer`;
    for (const x of ['q', 'k', 'v']) w[`${p}.0.SelfAttention.${x}.weight`] = rand([h * kv, d], d ** -0.5);
    w[`${p}.0.SelfAttention.o.weight`] = rand([d, h * kv], (h * kv) ** -0.5);
    if (i === 0) w[`${p}.0.SelfAttention.relative_attention_bias.weight`] = rand([32, h], 1);
    w[`${p}.0.layer_norm.weight`] = torch.ones([d]);
    w[`${p}.1.DenseReluDense.wi_0.weight`] = rand([ff, d], d ** -0.5);
    w[`${p}.1.DenseReluDense.wi_1.weight`] = rand([ff, d], d ** -0.5);
    w[`${p}.1.DenseReluDense.wo.weight`] = rand([d, ff], ff ** -0.5);
    w[`${p}.1.layer_norm.weight`] = torch.ones([d]);
  }
  return w;
}

function siglipWeights(): Record<string, Tensor> {
  const { hidden_size: d, intermediate_size: m, num_hidden_layers: n, image_size: s, patch_size: p } = SIGLIP;
  const v = 'vision_model';
  const w: Record<string, Tensor> = {
    [`${v}.embeddings.patch_embedding.weight`]: rand([d, 3, p, p], (3 * p * p) ** -0.5),
    [`${v}.embeddings.patch_embedding.bias`]: rand([d]),
    [`${v}.embeddings.position_embedding.weight`]: rand([Math.floor(s / p) ** 2, d], 0.5), // 384 / 14 -> 27 x 27 = 729 patches
    [`${v}.post_layernorm.weight`]: torch.ones([d]), [`${v}.post_layernorm.bias`]: torch.zeros([d]),
  };
  for (let i = 0; i < n; i++) {
    const q = `${v}.encoder.layers.${i}`;
    for (const ln of ['layer_norm1', 'layer_norm2']) { w[`${q}.${ln}.weight`] = torch.ones([d]); w[`${q}.${ln}.bias`] = torch.zeros([d]); }
    for (const x of ['q_proj', 'k_proj', 'v_proj', 'out_proj']) { w[`${q}.self_attn.${x}.weight`] = rand([d, d], d ** -0.5); w[`${q}.self_attn.${x}.bias`] = rand([d]); }
    w[`${q}.mlp.fc1.weight`] = rand([m, d], d ** -0.5); w[`${q}.mlp.fc1.bias`] = rand([m]);
    w[`${q}.mlp.fc2.weight`] = rand([d, m], m ** -0.5); w[`${q}.mlp.fc2.bias`] = rand([d]);
  }
  return w;
}

function timeOnce(fn: () => void): number {
  if (DEVICE.startsWith('cuda')) torch.cuda.synchronize();
  const t0 = performance.now();
  fn();
  if (DEVICE.startsWith('cuda')) torch.cuda.synchronize();
  return performance.now() - t0;
}

/** Peak RSS of a fresh process while it loads the bf16 encoder out of the bin, minus its RSS just before. */
function loadMemory(): Record<string, number | string> {
  const dir = join(tmp, 't5-bin');
  const size = Number(execFileSync(PY, [join(root, 'bench', 'encoders_bin.py'), dir,
    JSON.stringify({ ...BIN, relative_attention_num_buckets: 32, relative_attention_max_distance: 128 })], { encoding: 'utf8' }).trim());
  const child = `
    import { readFileSync } from 'node:fs';
    const { loadT5Encoder } = await import(${JSON.stringify(join(root, 'dist', 'src', 'encoders', 't5_load.js'))});
    const kb = (k) => parseInt(readFileSync('/proc/self/status', 'utf8').split('\\n').find((l) => l.startsWith(k + ':')).slice(k.length + 1)) * 1024;
    const before = kb('VmRSS');
    const m = loadT5Encoder(${JSON.stringify(dir)}, { dtype: 'bfloat16' });
    const params = m.parameters().reduce((s, p) => s + p.numel() * 2, 0);
    console.log(JSON.stringify({ before, peak: kb('VmHWM'), params }));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', child], { encoding: 'utf8' });
  if (r.status !== 0) return { error: r.stderr.trim().split('\n').filter((x) => /Error/.test(x))[0] ?? 'child failed' };
  const { before, peak, params } = JSON.parse(r.stdout.trim());
  return { file_bytes: size, encoder_bf16_bytes: params, load_peak_minus_before: peak - before,
    ratio_to_file: round((peak - before) / size), encoder_ratio_to_file: round(params / size), target: 0.3 };
}

async function speed(): Promise<Record<string, unknown>> {
  const t5Dir = join(tmp, 't5');
  const sigDir = join(tmp, 'siglip');
  torch.scope(() => writeHub(t5Dir, { model_type: 't5', feed_forward_proj: 'gated-gelu', ...T5 }, t5Weights()));
  torch.scope(() => writeHub(sigDir, { model_type: 'siglip_vision_model', hidden_act: 'gelu_pytorch_tanh', ...SIGLIP }, siglipWeights()));
  const { b, l } = T5_BATCH;
  const inputs = torch.scope(() => {
    const ids = torch.randint(3, T5.vocab_size, [b, l], { generator: gen });
    const mask = torch.arange(l).unsqueeze(0).lt(torch.arange(b).mul(-3).add(l).unsqueeze(1)).to('int64'); // lengths l, l-3, ...
    const imgs = new Uint8Array(IMAGES * 200 * 256 * 3).map((_, i) => (i * 2654435761) >>> 24);
    const s = SIGLIP.image_size;
    const px = torch.tensor(preprocessImages(imgs, IMAGES, 200, 256, s), { shape: [IMAGES, 3, s, s] });
    torch.saveSafetensors(join(tmp, 'inputs.safetensors'), { input_ids: ids.mul(mask), attention_mask: mask, pixel_values: px });
    return { ids: ids.mul(mask), mask, px };
  });
  const t5 = loadT5Encoder(t5Dir, { dtype: DTYPE, device: DEVICE });
  const ids = inputs.ids.to({ device: DEVICE });
  const mask = inputs.mask.to({ device: DEVICE });
  // transformers runs SigLIP with its default attention, sdpa (it reports which): ours runs the same kernel.
  const sig = loadSiglipVision(sigDir, { dtype: DTYPE, device: DEVICE, attention: 'sdpa' });
  const px = inputs.px.to({ device: DEVICE });
  const ours: Record<string, () => void> = {
    t5: () => torch.scope(() => { t5.forward(ids, mask); }),
    siglip: () => torch.scope(() => { sig.forward(px); }),
  };
  // transformers in one child process (bench/encoders_torch.py), timed call by call so the rounds interleave.
  const ref = await startTorchChild('encoders_torch.py', { t5_dir: t5Dir, siglip_dir: sigDir, inputs: join(tmp, 'inputs.safetensors'),
    dtype: DTYPE, device: DEVICE, threads: torch.getNumThreads() });
  const skipped = typeof ref.first.skipped === 'string';
  const out: Record<string, Record<string, unknown>> = {};
  for (const which of MODELS) {
    if (skipped) {
      const ms = Array.from({ length: WARMUP + ITERS }, () => timeOnce(ours[which])).slice(WARMUP);
      out[which] = { ours_ms_median: round(median(ms), 1) };
      continue;
    }
    const p = await pairedRounds({ rounds: ITERS, warmup: WARMUP, label: which, ours: () => timeOnce(ours[which]), torch: () => ref.time(which),
      log: (line) => process.stderr.write(`bench:encoders ${line.trim()}\n`) });
    out[which] = summary(p);
  }
  ref.stop();
  t5.dispose();
  sig.dispose();
  const result: Record<string, unknown> = {
    ...(out.t5 ? { t5: { ...T5, batch: b, length: l, ...out.t5 } } : {}),
    ...(out.siglip ? { siglip: { ...SIGLIP, images: IMAGES, attention: 'sdpa',
      images_per_s: round((IMAGES * 1000) / (out.siglip.ours_ms_median as number), 2), ...out.siglip } } : {}),
    transformers: skipped ? ref.first : ref.first.ready,
    rounds: ITERS,
    ratio: 'ours / transformers per interleaved round (torch_ms = transformers): <= 1.0 means at least as fast (target)',
  };
  return result;
}

try {
  const result: Record<string, unknown> = { bench: 'encoders', device: DEVICE, dtype: DTYPE, threads: torch.getNumThreads(), small: SMALL };
  if (PARTS.has('speed')) Object.assign(result, await speed());
  if (PARTS.has('mem')) result.t5_bin_load_memory = loadMemory();
  console.log(JSON.stringify(result));
} finally {
  rmSync(tmp, { recursive: true, force: true });
}

