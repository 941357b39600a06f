// The common part of bench:infer and bench:train: a runner with random weights, the same weights and inputs
// written for the PyTorch reference (bench/rdt_torch.py), and the output-equality check that must pass before
// anything is timed (so both sides are known to compute the same math).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as torch from '../src/engine/index.js';
import type { Tensor, DType } from '../src/engine/index.js';
import { rdtPreset, toHubJson, type RdtConfig } from '../src/model/config.js';
import { RDTRunner, type Conditions } from '../src/model/runner.js';
import { startTorchChild, type TorchChild } from './torch_child.js';

/**
 * Largest |ours - PyTorch| allowed, as a fraction of max |PyTorch|. Both run float32 through 14 blocks with
 * different kernels and summation orders; measured here: ~1e-6 (actions), ~1e-6 (loss); the bar leaves room
 * for other CPUs and thread counts while staying far below any real difference (a wrong RmsNorm variant or a
 * swapped cos/sin moves the actions by > 1e-2 of their scale).
 */
export const CHECK_TOL = 1e-4;

export interface RdtBench {
  cfg: RdtConfig;
  runner: RDTRunner;
  inputs: Conditions & { actionGt: Tensor };
  noise: Tensor;
  lossNoise: Tensor;
  lossTimesteps: Tensor;
  ref: TorchChild;
  dir: string;
  cleanup(): void;
}

export class BenchCheckError extends Error {
  override name = 'BenchCheckError';
}

/**
 * rdt-170m (or `preset`) with PyTorch-default random Linear weights (not the official init: its zero final layer
 * would make every output 0 and the equality check vacuous), batch B, L language tokens, float32, CPU.
 */
export async function setupRdtBench(o: {
  preset: string; batch: number; lang: number; threads: number; seed?: number;
  /** default cpu / float32; the GPU bench: cuda, bfloat16 with float32 masters on the PyTorch side too */
  device?: string; dtype?: DType; masters?: boolean;
}): Promise<RdtBench> {
  const cfg = rdtPreset(o.preset);
  const gen = new torch.Generator(o.seed ?? 0);
  const device = o.device ?? 'cpu';
  const dtype = o.dtype ?? 'float32';
  // built and randomised on the CPU in float32 (the generator is a CPU one), then moved
  const runner = new RDTRunner(cfg, { init: 'none', generator: gen });
  const dir = mkdtempSync(join(tmpdir(), 'rdt-bench-ref-'));
  const B = o.batch;
  const made = torch.scope(() => {
    // the positional embeddings start at 0 with init 'none'; give them values so they are checked too
    torch.noGrad(() => {
      for (const p of [runner.model.x_pos_embed, runner.model.lang_cond_pos_embed, runner.model.img_cond_pos_embed]) p.copy_(torch.randn(p.shape, { generator: gen }).mul(0.02));
    });
    const mask = torch.zeros([B, 1, cfg.action_dim]);
    mask.slice(2, 0, 14).fill_(1);
    const langMask = torch.ones([B, o.lang], { dtype: 'bool' });
    if (o.lang > 4) langMask.slice(1, o.lang - 3, o.lang).fill_(0); // a padded tail, so the key mask is exercised
    const t = {
      langTokens: torch.randn([B, o.lang, cfg.lang_token_dim], { generator: gen }),
      langMask,
      imgTokens: torch.randn([B, cfg.img_cond_len, cfg.img_token_dim], { generator: gen }),
      stateTokens: torch.randn([B, 1, cfg.state_token_dim], { generator: gen }).mul(mask),
      actionMask: mask,
      ctrlFreqs: torch.full([B], 20),
      actionGt: torch.randn([B, cfg.pred_horizon, cfg.action_dim], { generator: gen }).mul(mask),
      noise: torch.randn([B, cfg.pred_horizon, cfg.action_dim], { generator: gen }),
      lossNoise: torch.randn([B, cfg.pred_horizon, cfg.action_dim], { generator: gen }),
      lossTimesteps: torch.randint(0, cfg.noise_scheduler.num_train_timesteps, [B], { generator: gen }),
    };
    for (const v of Object.values(t)) v.keep();
    return t;
  });
  if (device !== 'cpu' || dtype !== 'float32') runner.to({ device, dtype });
  const weights = join(dir, 'model.safetensors');
  torch.scope(() => torch.saveSafetensors(weights, new Map([...runner.stateDict()].map(([k, t]) => [k, t.device === 'cpu' ? t : t.to({ device: 'cpu' })]))));
  const io = join(dir, 'inputs.safetensors');
  torch.saveSafetensors(io, {
    lang_tokens: made.langTokens, lang_mask: made.langMask, img_tokens: made.imgTokens, state_tokens: made.stateTokens,
    action_mask: made.actionMask, ctrl_freqs: made.ctrlFreqs, action_gt: made.actionGt, noise: made.noise,
    loss_noise: made.lossNoise, loss_timesteps: made.lossTimesteps,
  });
  const ref = await startTorchChild('rdt_torch.py', { weights, inputs: io, config: toHubJson(cfg, { always: true }), threads: o.threads, device, dtype, masters: o.masters ?? false });
  if (device !== 'cpu')
    for (const [k, t] of Object.entries(made)) {
      (made as Record<string, Tensor>)[k] = t.to({ device }).keep();
      t.dispose();
    }
  const { noise, lossNoise, lossTimesteps, ...inputs } = made;
  return {
    cfg, runner, inputs, noise, lossNoise, lossTimesteps, ref, dir,
    cleanup: () => {
      ref.stop();
      for (const t of Object.values(made)) t.dispose();
      runner.dispose();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** max |a - b| / max |b|. */
function relErr(a: Tensor, b: Tensor): number {
  return torch.scope(() => a.sub(b).abs().max().item() / Math.max(b.abs().max().item(), 1e-30));
}

/**
 * Compare ours with PyTorch on the same weights and inputs: the actions of predictAction from the same x_T
 * (both with and without the condition cache) and, with `loss`, the loss and the gradients' global norm from the
 * same noise and timesteps. Throws BenchCheckError (the bench stops) when anything is off by more than CHECK_TOL.
 */
export async function checkSameOutputs(b: RdtBench, o: { loss: boolean; tol?: number }): Promise<Record<string, number>> {
  const tol = o.tol ?? CHECK_TOL;
  const out = join(b.dir, 'ref_out.safetensors');
  await b.ref.ask(`check ${out}${o.loss ? ' loss' : ''}`);
  const ref = torch.loadSafetensors(out).tensors;
  const errs: Record<string, number> = {};
  const scale = torch.scope(() => ref.get('action')!.abs().max().item());
  if (o.loss && b.runner.dtype !== 'float32') throw new BenchCheckError('the loss check runs in float32 only');
  if (!(scale > 0)) throw new BenchCheckError('the PyTorch reference returned all-zero actions: the equality check would prove nothing');
  try {
    for (const cache of [true, false]) torch.scope(() => {
      const a = b.runner.predictAction(b.inputs, { noise: b.noise, cacheConditions: cache });
      errs[`action_${cache ? 'cached' : 'uncached'}`] = relErr(a.to({ device: 'cpu', dtype: 'float32' }), ref.get('action')!);
    });
    if (o.loss) {
      b.runner.train();
      const loss = torch.scope(() => b.runner.computeLoss(b.inputs, { noise: b.lossNoise, timesteps: b.lossTimesteps }));
      loss.backward();
      const params = b.runner.parameters();
      const norm = torch.optim.clipGradNorm_(params, Infinity); // the total norm, nothing scaled
      b.runner.zeroGrad();
      torch.scope(() => { errs.loss = relErr(loss, ref.get('loss')!.reshape([])); });
      errs.grad_norm = Math.abs(norm - ref.get('grad_norm')!.item()) / ref.get('grad_norm')!.item();
      loss.dispose();
    }
  } finally {
    for (const t of ref.values()) t.dispose();
  }
  const bad = Object.entries(errs).filter(([, e]) => !(e <= tol));
  if (bad.length)
    throw new BenchCheckError(`ours and the PyTorch reference disagree (${bad.map(([k, e]) => `${k} off by ${e.toExponential(2)} of its scale`).join(', ')}; ` +
      `tolerance ${tol}): the timings would compare different math, so the bench stops; fix the model or bench/rdt_torch.py first`);
  return { ...Object.fromEntries(Object.entries(errs).map(([k, e]) => [k, Number(e.toExponential(2))])), action_scale: Number(scale.toPrecision(3)) };
}
