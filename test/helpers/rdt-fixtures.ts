// The tiny config-A golden fixtures of shared/fixtures/rdt and a runner loaded with their weights.
import assert from 'node:assert/strict';
import * as torch from '../../src/engine/index.js';
import { rdtPreset, type RmsNormVariant } from '../../src/model/config.js';
import { RDTRunner } from '../../src/model/runner.js';
import { loadRunnerState } from '../../src/model/checkpoint.js';
import { fixture } from './fixtures.js';
import { maxAbsDiff } from './assert-close.js';

export const IO_FILES: Record<RmsNormVariant, string> = {
  'timm103-unbiased-var': 'tiny_a.io.rmsnorm-timm103-unbiased-var.safetensors',
  'mean-square': 'tiny_a.io.rmsnorm-mean-square.safetensors',
};

/** Every tensor of an io file (kept for the whole test file). */
export function loadIo(variant: RmsNormVariant): Map<string, torch.Tensor> {
  const { tensors } = torch.loadSafetensors(fixture('rdt', IO_FILES[variant]));
  for (const t of tensors.values()) t.keep();
  return tensors;
}

/** A float32 tiny runner with the fixture weights and the given RmsNorm. */
export function tinyRunner(variant: RmsNormVariant, opts: { dtype?: torch.DType } = {}): RDTRunner {
  const runner = new RDTRunner(rdtPreset('tiny', { rms_norm: variant }), { init: 'none', dtype: opts.dtype });
  torch.scope(() => {
    const { tensors } = torch.loadSafetensors(fixture('rdt', 'tiny_a.weights.f32.safetensors'));
    loadRunnerState(runner, tensors, { source: 'tiny_a.weights.f32.safetensors' });
  });
  return runner;
}

/** Max abs error, checked against tol x max|expected| (the "relative to the output scale"). */
export function checkScaled(results: Map<string, number>, name: string, actual: torch.Tensor | ArrayLike<number>, expected: torch.Tensor, tol = 1e-4): number {
  const a = actual instanceof torch.Tensor ? actual.toFloat64() : actual;
  const e = expected.toFloat64();
  assert.equal(a.length, e.length, `${name}: ${a.length} elements, expected ${e.length}`);
  const err = maxAbsDiff(a, e);
  const scale = Math.max(...Array.from(e, Math.abs), 1e-12);
  results.set(name, err);
  assert.ok(err <= tol * scale, `${name}: max abs error ${err.toExponential(3)} exceeds ${tol} x output scale ${scale.toExponential(3)}`);
  return err;
}

export function printResults(title: string, results: Map<string, number>): void {
  const lines = [...results].map(([k, v]) => `  ${k.padEnd(58)} ${v.toExponential(2)}`);
  console.log(`# ${title}: max abs error per fixture tensor\n${lines.join('\n')}`);
}
