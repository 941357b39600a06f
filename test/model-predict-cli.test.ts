// `rdt-libero predict` end to end on the tiny fixture checkpoint: the actions equal the official
// predict_action output (sample.action, 1e-4 x output scale), and bad inputs fail with errors
// naming the tensor and the expected shape.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, copyFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as torch from '../src/engine/index.js';
import { fixture, repoRoot } from './helpers/fixtures.js';
import { loadIo, checkScaled, printResults } from './helpers/rdt-fixtures.js';

const tmp = mkdtempSync(join(tmpdir(), 'rdt-predict-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const ckpt = join(tmp, 'ckpt');
mkdirSync(ckpt);
copyFileSync(fixture('rdt', 'tiny_a.hub-bf16', 'config.json'), join(ckpt, 'config.json'));
copyFileSync(fixture('rdt', 'tiny_a.weights.f32.safetensors'), join(ckpt, 'model.safetensors'));
const io = loadIo('timm103-unbiased-var');
const inputs = (): Record<string, torch.Tensor> => ({
  lang_tokens: io.get('in.lang_tokens')!,
  lang_mask: io.get('in.lang_attn_mask')!,
  img_tokens: io.get('in.img_tokens')!,
  state: io.get('in.state_tokens')!,
  state_mask: io.get('in.action_mask')!.squeeze(1),
  ctrl_freq: io.get('in.ctrl_freqs')!,
  noise: io.get('in.sample_init_noise')!,
});

function cli(args: string[]): { code: number; stderr: string } {
  try {
    execFileSync(process.execPath, [join(repoRoot(), 'dist', 'src', 'cli', 'main.js'), 'predict', ...args], { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
    return { code: 0, stderr: '' };
  } catch (e) {
    const err = e as { status: number; stderr: string };
    return { code: err.status, stderr: err.stderr };
  }
}

test('predict writes the official actions for the fixture inputs', () => {
  const inPath = join(tmp, 'in.safetensors');
  const outPath = join(tmp, 'out.safetensors');
  torch.scope(() => torch.saveSafetensors(inPath, inputs()));
  const r = cli(['--checkpoint', ckpt, '--inputs', inPath, '--out', outPath]);
  assert.equal(r.code, 0, r.stderr);
  const results = new Map<string, number>();
  torch.scope(() => {
    const out = torch.loadSafetensors(outPath).tensors;
    assert.deepEqual([...out.keys()], ['actions']);
    assert.deepEqual(out.get('actions')!.shape, [2, 64, 128]);
    checkScaled(results, 'predict CLI actions vs sample.action', out.get('actions')!, io.get('sample.action')!);
  });
  // bf16 end to end (the hub checkpoint's dtype): close to the float32 reference, not equal
  const r16 = cli(['--checkpoint', fixture('rdt', 'tiny_a.hub-bf16'), '--inputs', inPath, '--out', outPath, '--dtype', 'bfloat16']);
  assert.equal(r16.code, 0, r16.stderr);
  torch.scope(() => {
    const a = torch.loadSafetensors(outPath).tensors.get('actions')!;
    assert.equal(a.dtype, 'float32');
    const err = checkScaled(results, 'predict CLI bf16 actions vs sample.action (tolerance 0.05)', a, io.get('sample.action')!, 0.05);
    assert.ok(err > 0, 'bf16 arithmetic differs from float32');
  });
  printResults('predict CLI', results);
});

test('predict: missing tensors and wrong shapes are named', () => {
  const bad = (patch: (o: Record<string, torch.Tensor>) => void, re: RegExp) => {
    const p = join(tmp, 'bad.safetensors');
    torch.scope(() => {
      const o = inputs();
      patch(o);
      torch.saveSafetensors(p, o);
    });
    const r = cli(['--checkpoint', ckpt, '--inputs', p, '--out', join(tmp, 'x.safetensors')]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, re);
  };
  bad((o) => delete o.img_tokens, /missing tensors 'img_tokens' \(B, img_cond_len, img_token_dim\)/);
  bad((o) => (o.img_tokens = torch.zeros([2, 54, 25])), /'img_tokens' has shape \[2,54,25\], expected \[2,54,24\]/);
  bad((o) => (o.state_mask = torch.zeros([2, 1, 128])), /'state_mask' has shape \[2,1,128\], expected \[2,128\]/);
  bad((o) => (o.imgs = torch.zeros([1])), /unexpected tensors 'imgs'/);
  const r = cli(['--inputs', 'x']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--checkpoint is required/);
});
