// Paths and small helpers for the encoder fixtures (shared/fixtures/encoders). Every size is read from
// the files themselves, so the held-out configuration B (other sizes, vocabulary, images) runs the same tests.
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as torch from '../../src/engine/index.js';
import type { Tensor } from '../../src/engine/index.js';
import { fixture, repoRoot } from './fixtures.js';
import { rdtPreset, type RdtConfig } from '../../src/model/config.js';

export const enc = (...p: string[]): string => fixture('encoders', ...p);

export function loadEncIo(name: string): Map<string, Tensor> {
  return torch.loadSafetensors(enc(name)).tensors;
}

export interface TokenizerCase {
  kind: string;
  text: string;
  input_ids_fast: number[];
  input_ids_slow: number[];
  slow_fast_agree: boolean;
}
export interface TokenizerCases {
  model_max_length: number;
  cases: TokenizerCase[];
  batch: { texts: string[]; input_ids: number[][]; attention_mask: number[][] };
  slow_fast_disagreements: string[];
}
export function tokenizerCases(): TokenizerCases {
  return JSON.parse(readFileSync(enc('tokenizer.cases.json'), 'utf8')) as TokenizerCases;
}

/**
 * A text longer than maxLen tokens: the fixture's long case, or (if a configuration has none) the first
 * LIBERO instruction repeated until its fast ids certainly exceed maxLen.
 */
export function longCase(cases: TokenizerCase[], maxLen: number): { text: string; ids?: number[] } {
  const long = cases.find((c) => c.input_ids_fast.length > maxLen);
  if (long) return { text: long.text, ids: long.input_ids_fast };
  const base = cases.find((c) => c.input_ids_fast.length > 2)!;
  const reps = Math.ceil((maxLen + 1) / (base.input_ids_fast.length - 1)) + 1;
  return { text: Array.from({ length: reps }, () => base.text).join(' ') };
}

export function config(folder: string): Record<string, unknown> {
  return JSON.parse(readFileSync(enc(folder, 'config.json'), 'utf8')) as Record<string, unknown>;
}

/**
 * The encoder computed by the installed PyTorch on this machine (test/py/encoders_ref.py: plain torch, written
 * from the fixture README's description of transformers' computation), on the inputs of `ioFile`, with this
 * process's thread count. The portable reference for bf16: same CPU, same kernels. Tensors are kept.
 */
export function torchReference(which: 't5' | 'siglip', folder: string, dtype: 'float32' | 'bfloat16', ioFile: string,
  threads = torch.getNumThreads()): Map<string, Tensor> {
  const dir = mkdtempSync(join(tmpdir(), 'rdt-encref-'));
  try {
    const out = join(dir, 'ref.safetensors');
    try {
      execFileSync(process.env.PYTHON || 'python3', [join(repoRoot(), 'test', 'py', 'encoders_ref.py'), which, enc(folder), dtype,
        String(threads), enc(ioFile), out], { stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (e) {
      throw new Error(`test/py/encoders_ref.py ${which} ${dtype} failed:\n${(e as { stderr?: Buffer }).stderr?.toString() ?? e}`);
    }
    const { tensors } = torch.loadSafetensors(out);
    for (const t of tensors.values()) t.keep();
    return tensors;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Largest |a - b| (float64 on the CPU). */
export function maxDiff(a: Tensor, b: Tensor): number {
  return torch.scope(() => a.to({ dtype: 'float64', device: 'cpu' }).sub(b.to({ dtype: 'float64', device: 'cpu' })).abs().max().item());
}

/** Largest |a - e| - (atol + rtol |e|): <= 0 when every element is within tolerance. */
export function worstExcess(a: Tensor, e: Tensor, atol: number, rtol: number): number {
  return torch.scope(() => {
    const x = a.to({ dtype: 'float64', device: 'cpu' });
    const y = e.to({ dtype: 'float64', device: 'cpu' });
    return x.sub(y).abs().sub(y.abs().mul(rtol).add(atol)).max().item();
  });
}

/** A scratch folder removed by the returned function; `copy` copies fixture folders into it. */
export function scratch(prefix: string): { dir: string; copy: (from: string, to: string) => string; clean: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return {
    dir,
    copy: (from, to) => {
      cpSync(enc(from), join(dir, to), { recursive: true });
      return join(dir, to);
    },
    clean: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/**
 * bf16 tolerance: one bf16 unit in the last place of the expected value (2^-7 relative, 2^-8 absolute near
 * zero), against a reference computed on this machine (`torchReference`). Never against the fixtures' bf16
 * tensors: oneDNN picks its bf16 GEMM by CPU feature (native AVX512-BF16/AMX dot products or float32
 * emulation), so a bf16 result made on another CPU differs by up to 0.0625 here (measured with
 * ONEDNN_MAX_CPU_ISA=AVX2). Real mistakes are many ulps: rounding the bias separately moves SigLIP by 0.043,
 * running in float32 moves T5 by up to 0.066 (fixture README), and the tests check that the float32 result
 * does NOT pass this tolerance.
 */
export const BF16 = { atol: 2 ** -8, rtol: 2 ** -7 };

/**
 * A tiny RDT config whose condition widths are the fixture encoders': T5 d_model, SigLIP hidden size, and
 * 2 frames x 3 cameras x floor(image_size / patch_size)^2 image tokens (read from the files: held-out sizes exist).
 */
export function fixtureEncoderRdt(over: Record<string, unknown> = {}): RdtConfig {
  const t5 = JSON.parse(readFileSync(fixture('encoders', 't5', 'config.json'), 'utf8'));
  const sig = JSON.parse(readFileSync(fixture('encoders', 'siglip', 'config.json'), 'utf8'));
  const perImage = Math.floor(sig.image_size / sig.patch_size) ** 2;
  return rdtPreset('tiny', {
    lang_token_dim: t5.d_model, img_token_dim: sig.hidden_size, img_cond_len: 2 * 3 * perImage,
    img_pos_embed_config: [['image', [2, 3, -perImage]]], ...over,
  });
}
