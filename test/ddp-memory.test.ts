// `rdt-libero train --dry-run`: per-rank memory of rdt-1b's state at bf16 on 8 ranks, with and without
// ZeRO-2 and LoRA, checked against sums over the real parameter list written out here (the model built on
// the meta device, counted by this test; LoRA's adapters counted from the base weights' shapes).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RDTRunner } from '../src/model/runner.js';
import { rdtPreset } from '../src/model/config.js';
import { loadConfig } from '../src/train/config.js';
import { memoryPlan } from '../src/train/memory_plan.js';

const MAIN = join(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'cli', 'main.js');
const W = 8;

/** rdt-1b's parameters: [name, numel, shape], from the model itself on the meta device. */
function rdt1b(): [string, number, number[]][] {
  const r = new RDTRunner(rdtPreset('rdt-1b'), { dtype: 'float32', device: 'meta' });
  try {
    return [...r.namedParameters()].map(([n, p]) => [n, p.numel(), p.shape]);
  } finally {
    r.dispose();
  }
}

test('rdt-1b, bf16, 8 ranks, full fine-tuning: every row is the sum over the parameter list', () => {
  const params = rdt1b();
  const n = params.reduce((a, [, k]) => a + k, 0);
  assert.ok(n > 1.2e9 && n < 1.3e9, `rdt-1b has ${n} parameters`);
  const p = memoryPlan(loadConfig({ overrides: { model: 'rdt-1b', encoders: 'demo', mixed_precision: 'bf16' } }), W);
  assert.equal(p.parameters, n);
  assert.equal(p.trained, n);
  // bf16 weights 2 B; bf16 + float32 gradients 6 B; float32 masters 4 B; AdamW moments 8 B; float32 EMA 4 B; flat all-reduce copy 2 B.
  assert.deepEqual(p.dataParallel, { weights: 2 * n, gradients: 6 * n, masterWeights: 4 * n, optimizerState: 8 * n, ema: 4 * n, allReduceBuffers: 2 * n, total: 26 * n });
  // ZeRO-2: the float32 gradients, masters and moments split 8 ways.
  assert.deepEqual(p.zero2, { weights: 2 * n, gradients: 2 * n + (4 * n) / W, masterWeights: (4 * n) / W, optimizerState: (8 * n) / W, ema: 4 * n, allReduceBuffers: 2 * n,
    total: 2 * n + 2 * n + (16 * n) / W + 4 * n + 2 * n });
});

test('with LoRA (rank 32 on the default targets, adaptors trained) only the adapters and adaptors count as trained', () => {
  const params = rdt1b();
  const cfg = loadConfig({ overrides: { model: 'rdt-1b', encoders: 'demo', mixed_precision: 'bf16', lora: { enabled: true } } });
  const targets = cfg.lora.targets;
  // A (rank x in) + B (out x rank) per adapted Linear, from the base weight's (out, in) shape.
  const adapters = params.filter(([name]) => targets.some((t) => name.endsWith(`${t}.weight`)) && name.includes('blocks.'))
    .reduce((a, [, , [out, inp]]) => a + 32 * (out + inp), 0);
  const adaptors = params.filter(([name]) => /^(lang|img|state)_adaptor\./.test(name)).reduce((a, [, k]) => a + k, 0);
  const all = params.reduce((a, [, k]) => a + k, 0) + adapters;
  const t = adapters + adaptors;
  const p = memoryPlan(cfg, W);
  assert.equal(p.parameters, all);
  assert.equal(p.trained, t);
  assert.equal(p.dataParallel.total, 2 * all + 6 * t + 4 * t + 8 * t + 4 * all + 2 * t);
  assert.equal(p.zero2.optimizerState, (8 * t) / W);
});

test('the command prints the table for the chosen world size', () => {
  const out = execFileSync(process.execPath, [MAIN, 'train', '--dry-run', '--nproc_per_node', '4', '--nnodes', '2', 'model=rdt-1b', 'encoders=demo'], { encoding: 'utf8' });
  const n = rdt1b().reduce((a, [, k]) => a + k, 0);
  assert.match(out, new RegExp(`model rdt-1b: ${n.toLocaleString('en-US')} parameters, .*; bf16; 8 processes`));
  const total = /\n {2}total\s+([\d.]+)\s+([\d.]+)\n/.exec(out);
  assert.ok(total, out);
  assert.equal(total[1], ((26 * n) / 2 ** 30).toFixed(2));
  assert.equal(total[2], ((10 * n + (16 * n) / 8) / 2 ** 30).toFixed(2));
});
