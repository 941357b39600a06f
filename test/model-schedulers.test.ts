// DDPM and DPM-Solver++ against the diffusers 0.27.2 tables and trajectories in
// shared/fixtures/schedulers.safetensors. Everything here is bit-identical on the reference machine
// (same libtorch, same op order as diffusers); the tolerances leave room for last-bit differences
// of float32 exp/log on other CPUs: 1e-6 relative to the scale (the bar) for float32
// tables and trajectories, one bf16 ulp for the bf16 ones.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../src/engine/index.js';
import { DDPMScheduler, scheduleTables } from '../src/model/schedulers/ddpm.js';
import { DPMSolverMultistepScheduler } from '../src/model/schedulers/dpm_solver.js';
import { fixture } from './helpers/fixtures.js';
import { maxAbsDiff } from './helpers/assert-close.js';
import { runTorch } from './helpers/torch-ref.js';

const fx = torch.loadSafetensors(fixture('schedulers.safetensors')).tensors;
const get = (k: string) => {
  const t = fx.get(k);
  if (!t) throw new Error(`fixture tensor ${k} missing`);
  return t;
};
const arr = (t: torch.Tensor) => Array.from(t.toFloat64());
const scale = (xs: ArrayLike<number>) => Math.max(1, ...Array.from(xs, Math.abs));

function assertRel(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string): number {
  const err = maxAbsDiff(actual, expected);
  const s = scale(expected);
  assert.ok(err <= tol * s, `${what}: max abs error ${err.toExponential(3)} > ${tol} x scale ${s}`);
  return err;
}

test('DDPM tables are the official float32 betas, alphas and alphas_cumprod, bit for bit', () => {
  const t = scheduleTables(1000);
  assert.deepEqual(Array.from(t.betas), arr(get('ddpm.betas')).map(Math.fround));
  assert.deepEqual(Array.from(t.alphas), arr(get('ddpm.alphas')));
  assert.deepEqual(Array.from(t.alphasCumprod), arr(get('ddpm.alphas_cumprod')));
  assert.equal(Math.fround(t.alphasCumprod[200]), Math.fround(0.89776301));
});

test('DDPM add_noise matches diffusers in float32 and in bf16 arithmetic', () => {
  const ddpm = new DDPMScheduler();
  torch.scope(() => {
    const x0 = get('add_noise.original');
    const eps = get('add_noise.noise');
    const ts = get('add_noise.timesteps');
    assertRel(arr(ddpm.addNoise(x0, eps, ts)), arr(get('add_noise.out')), 1e-6, 'add_noise float32');
    const bf = ddpm.addNoise(x0.to('bfloat16'), eps.to('bfloat16'), ts);
    assert.equal(bf.dtype, 'bfloat16');
    assertRel(arr(bf), arr(get('add_noise.bf16.out')), 2 ** -7, 'add_noise bf16 (bit-exact here; one bf16 ulp allowed)');
  });
  ddpm.dispose();
});

test('DPM-Solver++ alpha_t, sigma_t, lambda_t tables', () => {
  const dpm = new DPMSolverMultistepScheduler();
  torch.scope(() => {
    const { alphaT, sigmaT, lambdaT } = dpm.alphaSigmaLambda();
    assertRel(arr(alphaT), arr(get('dpm.alpha_t')), 1e-6, 'alpha_t');
    assertRel(arr(sigmaT), arr(get('dpm.sigma_t')), 1e-6, 'sigma_t');
    assertRel(arr(lambdaT), arr(get('dpm.lambda_t')), 1e-6, 'lambda_t');
  });
});

test('set_timesteps(n): timesteps, sigmas and solver orders for every n in the fixtures', () => {
  const dpm = new DPMSolverMultistepScheduler();
  // The official sigmas are torch's float32 ((1 - abar) / abar) ** 0.5. Its last bit depends on the machine's
  // kernels: on some CPUs (this project's CI among them) torch itself gives a value one ulp from the recorded one
  // at a few timesteps. So: bit for bit against PyTorch run here, and within one float32 ulp of the fixture.
  const here = runTorch<{ sigmas: number[] }>(`
acp = torch.tensor(inp['acp'], dtype=torch.float32)
out['sigmas'] = L(((1 - acp) / acp) ** 0.5)`, { acp: arr(get('ddpm.alphas_cumprod')) }).sigmas;
  const ulp = (x: number) => 2 ** (Math.floor(Math.log2(Math.abs(x))) - 23);
  for (const n of [1, 2, 3, 5, 10, 20, 25, 50]) {
    const s = dpm.setTimesteps(n);
    assert.deepEqual(s.timesteps, arr(get(`dpm.N${n}.timesteps`)), `N${n} timesteps`);
    assert.deepEqual(Array.from(s.sigmas), [...s.timesteps.map((t) => here[t]), 0], `N${n} sigmas (bit for bit with PyTorch here)`);
    const rec = arr(get(`dpm.N${n}.sigmas`));
    s.sigmas.forEach((x, i) => assert.ok(Math.abs(x - rec[i]) <= (rec[i] ? ulp(rec[i]) : 0), `N${n} sigma ${i}: ${x} vs recorded ${rec[i]}`));
  }
  const s5 = dpm.setTimesteps(5);
  assert.deepEqual(s5.timesteps, [999, 799, 599, 400, 200]);
  assert.deepEqual(s5.orders, [1, 2, 2, 2, 1]);
  assert.throws(() => dpm.setTimesteps(0), /inference steps/);
});

for (const [prefix, n, exact] of [['traj.N5', 5, false], ['traj.N10', 10, false], ['traj.N25', 25, false], ['traj_bf16.N5', 5, true]] as const) {
  test(`DPM-Solver++(2M) trajectory ${prefix}: every step from the recorded model outputs`, () => {
    const dpm = new DPMSolverMultistepScheduler();
    const sched = dpm.setTimesteps(n);
    assert.deepEqual(sched.orders, arr(get(`${prefix}.orders`)));
    torch.scope(() => {
      let x = get(`${prefix}.x.0`);
      let prev: torch.Tensor | null = null;
      for (let k = 0; k < n; k++) {
        const m = get(`${prefix}.model_out.${k}`);
        // Each step from the recorded input x.k, so an error cannot hide behind an earlier one.
        const out = dpm.step(sched, k, m, get(`${prefix}.x.${k}`), prev);
        const want = get(`${prefix}.x.${k + 1}`);
        assert.equal(out.dtype, want.dtype);
        // bf16: bit-exact on the reference machine; allow one bf16 ulp at the output scale, since a
        // last-bit difference in a float32 log/exp on another CPU can flip a bf16 rounding
        if (exact) assertRel(arr(out), arr(want), 2 ** -7, `${prefix} step ${k}`);
        else assertRel(arr(out), arr(want), 1e-6, `${prefix} step ${k}`);
        prev = m;
        x = out;
      }
      // the last step is first order with sigma 0: it returns the last model output exactly
      assert.equal(maxAbsDiff(arr(x), arr(get(`${prefix}.model_out.${n - 1}`))), 0);
    });
  });
}
