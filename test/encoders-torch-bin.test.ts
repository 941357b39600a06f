// Loading the T5 encoder out of a full encoder-decoder pytorch_model.bin (google/t5-v1_1-xxl's layout):
// only shared.weight and encoder.* storages are read from disk (counted at the native reader), the
// decoder and lm_head never are, and the result equals the safetensors load in float32 and bf16.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import * as torch from '../src/engine/index.js';
import { N } from '../src/engine/native.js';
import { DTYPE_CODE } from '../src/engine/dtype.js';
import { loadT5Encoder } from '../src/encoders/t5_load.js';
import { listTorchBin } from '../src/encoders/torch_bin.js';
import { runPython } from './helpers/python.js';
import { enc, scratch } from './helpers/encoder-fixtures.js';

const tmp = scratch('rdt-t5bin-');
after(tmp.clean);
const full = join(tmp.dir, 'full');

// Build the checkpoint with PyTorch itself: the fixture's encoder tensors, the tied embed_tokens, and a
// decoder and lm_head (random, larger than the encoder) as T5ForConditionalGeneration saves them.
runPython(`
import sys, os, torch
src, dst = sys.argv[1], sys.argv[2]
os.makedirs(dst, exist_ok=True)
sd = torch.load(src, map_location='cpu', weights_only=True)
g = torch.Generator().manual_seed(0)
d = sd['shared.weight'].shape[1]
for i in range(2):
    sd[f'decoder.block.{i}.layer.0.SelfAttention.q.weight'] = torch.randn(8 * d, d, generator=g)
    sd[f'decoder.block.{i}.layer.1.EncDecAttention.k.weight'] = torch.randn(8 * d, d, generator=g)
sd['decoder.embed_tokens.weight'] = sd['shared.weight']
sd['lm_head.weight'] = torch.randn(sd['shared.weight'].shape, generator=g)
torch.save(sd, os.path.join(dst, 'pytorch_model.bin'))
`, enc('t5-bin', 'pytorch_model.bin'), full);
copyFileSync(enc('t5', 'config.json'), join(full, 'config.json'));

/** fn's result and the tensor bytes it read from disk (every storage here is float32). */
function countingReads<T>(fn: () => T): { result: T; bytes: number } {
  // The typed op table is read-only; the test wraps two of its entries on the addon object itself.
  const M = N as unknown as Record<'fromFile' | 'fromFileConvert', (...a: unknown[]) => unknown>;
  const [fromFile, fromFileConvert] = [M.fromFile, M.fromFileConvert];
  let bytes = 0;
  const count = (shape: number[]) => { bytes += shape.reduce((a, b) => a * b, 1) * 4; };
  M.fromFile = (...a: unknown[]) => (count(a[3] as number[]), fromFile(...a));
  M.fromFileConvert = (...a: unknown[]) => (count(a[3] as number[]), fromFileConvert(...a));
  try {
    return { result: fn(), bytes };
  } finally {
    [M.fromFile, M.fromFileConvert] = [fromFile, fromFileConvert];
  }
}

test('only the encoder\'s storages are read from an encoder-decoder pytorch_model.bin', () => {
  const keys = listTorchBin(join(full, 'pytorch_model.bin'));
  assert.ok([...keys.keys()].some((k) => k.startsWith('decoder.')) && keys.has('lm_head.weight'));
  const numel = (k: string) => keys.get(k)!.shape.reduce((a, b) => a * b, 1);
  const encoderBytes = [...keys.keys()].filter((k) => k === 'shared.weight' || (k.startsWith('encoder.') && k !== 'encoder.embed_tokens.weight'))
    .reduce((s, k) => s + numel(k) * 4, 0);
  const fileTensorBytes = [...keys.keys()].reduce((s, k) => s + numel(k) * 4, 0);
  for (const dtype of ['float32', 'bfloat16'] as const) {
    const { result: m, bytes } = countingReads(() => loadT5Encoder(full, { dtype }));
    const ref = loadT5Encoder(enc('t5'), { dtype });
    try {
      assert.equal(bytes, encoderBytes, `${dtype}: bytes read from disk`);
      assert.ok(bytes < fileTensorBytes / 2);
      const a = m.stateDict();
      const b = ref.stateDict();
      assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort());
      for (const [k, t] of a) {
        assert.equal(t.dtype, dtype);
        assert.equal(torch.scope(() => t.eq(b.get(k)!).all().item()), 1, k);
      }
    } finally {
      m.dispose();
      ref.dispose();
    }
  }
});

test('the piecewise native read-and-convert equals the engine\'s whole-tensor load and cast', () => {
  const path = enc('t5', 'model.safetensors');
  const header = torch.readSafetensorsHeader(path);
  for (const dtype of ['float32', 'bfloat16'] as const) torch.scope(() => {
    const ref = torch.loadSafetensors(path, { dtype }).tensors;
    for (const [k, info] of header.tensors) {
      const t = new torch.Tensor(N.fromFileConvert(path, info.byteOffset, DTYPE_CODE[info.dtype], info.shape, DTYPE_CODE[dtype], 'cpu'));
      assert.equal(t.dtype, dtype);
      assert.deepEqual(t.shape, info.shape);
      assert.equal(torch.scope(() => t.eq(ref.get(k)!).all().item()), 1, `${dtype} ${k}`);
    }
  });
  assert.throws(() => N.fromFileConvert(path, 1 << 30, DTYPE_CODE.float32, [4], DTYPE_CODE.bfloat16, 'cpu'), /short read/);
});

test('a pytorch_model.bin whose zip entries are deflated loads to the same weights', () => {
  const dir = join(tmp.dir, 'deflated');
  runPython(`
import sys, os, zipfile
src, dst = sys.argv[1], sys.argv[2]
os.makedirs(dst, exist_ok=True)
with zipfile.ZipFile(src) as zi, zipfile.ZipFile(os.path.join(dst, 'pytorch_model.bin'), 'w', zipfile.ZIP_DEFLATED) as zo:
    for info in zi.infolist():
        zo.writestr(info.filename, zi.read(info.filename))
`, enc('t5-bin', 'pytorch_model.bin'), dir);
  copyFileSync(enc('t5', 'config.json'), join(dir, 'config.json'));
  const a = loadT5Encoder(dir, { dtype: 'bfloat16' });
  const b = loadT5Encoder(enc('t5'), { dtype: 'bfloat16' });
  try {
    const sb = b.stateDict();
    for (const [k, t] of a.stateDict()) assert.equal(torch.scope(() => t.eq(sb.get(k)!).all().item()), 1, k);
  } finally {
    a.dispose();
    b.dispose();
  }
});
