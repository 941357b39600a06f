// Checkpoints: the hub .bin and its safetensors twin give identical parameters; DeepSpeed and EMA
// layouts; our saved checkpoints load back here and in Python; bad checkpoints fail clearly.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, copyFileSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as torch from '../src/engine/index.js';
import { rdtPreset, hubConfigText } from '../src/model/config.js';
import { RDTRunner } from '../src/model/runner.js';
import { loadRdtCheckpoint, saveRdtCheckpoint, loadRunnerState } from '../src/model/checkpoint.js';
import { fixture } from './helpers/fixtures.js';
import { runTorch } from './helpers/torch-ref.js';

const tmp = mkdtempSync(join(tmpdir(), 'rdt-ckpt-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const hubDir = fixture('rdt', 'tiny_a.hub-bf16');

/** name -> raw bytes of every parameter (bf16 bits compare exactly). */
function bits(runner: RDTRunner): Map<string, string> {
  const out = new Map<string, string>();
  for (const [k, t] of runner.stateDict()) out.set(k, Buffer.from((t.data() as Uint16Array).buffer).toString('base64'));
  return out;
}

test('pytorch_model.bin and the safetensors of the fixture checkpoint give identical parameters', () => {
  const fromBin = loadRdtCheckpoint(hubDir, { dtype: 'bfloat16' });
  assert.equal(fromBin.kind, 'bin');
  const st = join(tmp, 'st');
  mkdirSync(st);
  copyFileSync(join(hubDir, 'config.json'), join(st, 'config.json'));
  copyFileSync(fixture('rdt', 'tiny_a.weights.bf16.safetensors'), join(st, 'model.safetensors'));
  const fromSt = loadRdtCheckpoint(st, { dtype: 'bfloat16' });
  assert.equal(fromSt.kind, 'safetensors');
  assert.deepEqual(bits(fromBin.runner), bits(fromSt.runner));
  assert.equal(fromBin.runner.stateDict().size, 114);
  // bf16 weights into a float32 model: converted explicitly, equal to the float32 weights rounded to bf16
  const f32 = loadRdtCheckpoint(hubDir, { dtype: 'float32' }).runner;
  torch.scope(() => {
    const w = torch.loadSafetensors(fixture('rdt', 'tiny_a.weights.f32.safetensors')).tensors;
    for (const [k, p] of f32.stateDict()) {
      assert.equal(p.dtype, 'float32');
      assert.ok(p.allclose(w.get(k)!.to('bfloat16').float(), 0, 0), `${k} = bf16(f32 weights)`);
    }
  });
  for (const r of [fromBin.runner, fromSt.runner, f32]) r.dispose();
});

test('save -> load round trip; Python reads our model.safetensors and config.json back', () => {
  const runner = new RDTRunner(rdtPreset('tiny'), { generator: new torch.Generator(1) });
  const dir = join(tmp, 'saved');
  saveRdtCheckpoint(runner, dir);
  assert.equal(readFileSync(join(dir, 'config.json'), 'utf8'), hubConfigText(rdtPreset('tiny')));
  const back = loadRdtCheckpoint(dir).runner;
  for (const [k, t] of runner.stateDict()) assert.ok(t.allclose(back.stateDict().get(k)!, 0, 0), k);
  const py = runTorch<{ n: number; keys: string[]; sum: number; cfg: number }>(`
from safetensors.torch import load_file
sd = load_file(inp["path"])
cfg = json.load(open(inp["config"]))
out = {"n": len(sd), "keys": sorted(sd.keys()), "sum": float(sd["model.blocks.0.attn.qkv.weight"].double().sum()), "cfg": cfg["rdt"]["hidden_size"]}
`, { path: join(dir, 'model.safetensors'), config: join(dir, 'config.json') });
  assert.equal(py.n, 114);
  assert.deepEqual(py.keys, [...runner.stateDict().keys()].sort());
  const mine = runner.stateDict().get('model.blocks.0.attn.qkv.weight')!.toFloat64().reduce((a, b) => a + b, 0);
  assert.ok(Math.abs(py.sum - mine) < 1e-6);
  assert.equal(py.cfg, 128);
  // bf16 save, as the hub files
  saveRdtCheckpoint(runner, join(tmp, 'saved-bf16'), { dtype: 'bfloat16' });
  const h = torch.readSafetensorsHeader(join(tmp, 'saved-bf16', 'model.safetensors'));
  assert.ok([...h.tensors.values()].every((i) => i.dtype === 'bfloat16'));
  runner.dispose();
  back.dispose();
});

test('DeepSpeed mp_rank_00_model_states.pt ("module") and EMA ema/model.safetensors layouts', () => {
  const dir = join(tmp, 'checkpoint-10');
  mkdirSync(join(dir, 'pytorch_model'), { recursive: true });
  mkdirSync(join(dir, 'ema'), { recursive: true });
  copyFileSync(join(hubDir, 'config.json'), join(dir, 'config.json'));
  copyFileSync(fixture('rdt', 'tiny_a.weights.f32.safetensors'), join(dir, 'ema', 'model.safetensors'));
  runTorch(`
from safetensors.torch import load_file
sd = load_file(inp["src"])
import collections
# the other entries DeepSpeed 0.14 writes beside "module" (torch.Size, sets, configs)
torch.save({"module": sd, "buffer_names": [], "optimizer": None,
            "param_shapes": [collections.OrderedDict((k, v.shape) for k, v in sd.items())],
            "frozen_param_shapes": None, "shared_params": {}, "frozen_param_fragments": None,
            "lr_scheduler": None, "data_sampler": None, "random_ltd": None, "sparse_tensor_module_names": set(),
            "skipped_steps": 0, "global_steps": 10, "global_samples": 320, "dp_world_size": 1, "mp_world_size": 1,
            "ds_config": {"bf16": {"enabled": True}, "zero_optimization": {"stage": 2}}, "ds_version": "0.14.2"}, inp["dst"])
`, { src: fixture('rdt', 'tiny_a.weights.f32.safetensors'), dst: join(dir, 'pytorch_model', 'mp_rank_00_model_states.pt') });
  const ds = loadRdtCheckpoint(dir);
  assert.equal(ds.kind, 'deepspeed');
  const ema = loadRdtCheckpoint(dir, { weights: 'ema' });
  assert.equal(ema.kind, 'ema');
  for (const [k, t] of ds.runner.stateDict()) assert.ok(t.allclose(ema.runner.stateDict().get(k)!, 0, 0), k);
  ds.runner.dispose();
  ema.runner.dispose();
});

test('bad checkpoints: another architecture, config/weights mismatch, missing files', () => {
  // another architecture
  const other = join(tmp, 'other');
  mkdirSync(other);
  copyFileSync(join(hubDir, 'config.json'), join(other, 'config.json'));
  torch.scope(() => torch.saveSafetensors(join(other, 'model.safetensors'), { 'encoder.layer.0.weight': torch.zeros([4, 4]) }));
  assert.throws(() => loadRdtCheckpoint(other), /is not an RDT checkpoint: it has no 'model.blocks.\*' keys/);

  // the weights of tiny_a under a config with a different hidden size: every mis-shaped key is listed
  const mismatch = join(tmp, 'mismatch');
  mkdirSync(mismatch);
  const cfg = JSON.parse(readFileSync(join(hubDir, 'config.json'), 'utf8'));
  cfg.rdt.depth = 2;
  cfg.img_token_dim = 32;
  writeFileSync(join(mismatch, 'config.json'), JSON.stringify(cfg));
  copyFileSync(fixture('rdt', 'tiny_a.weights.f32.safetensors'), join(mismatch, 'model.safetensors'));
  assert.throws(() => loadRdtCheckpoint(mismatch), (e: Error) => {
    assert.match(e.message, /unexpected keys \(\d+\):\n\s+model\.blocks\.2\./);
    assert.match(e.message, /img_adaptor\.0\.weight: \[128,24\] in the state dict, \[128,32\] in the module/);
    assert.match(e.message, /do the weights belong to this config\?/);
    return true;
  });
  // a missing key
  const missing = join(tmp, 'missing');
  mkdirSync(missing);
  copyFileSync(join(hubDir, 'config.json'), join(missing, 'config.json'));
  torch.scope(() => {
    const w = torch.loadSafetensors(fixture('rdt', 'tiny_a.weights.f32.safetensors')).tensors;
    w.delete('model.final_layer.ffn_final.fc2.bias');
    torch.saveSafetensors(join(missing, 'model.safetensors'), w);
  });
  assert.throws(() => loadRdtCheckpoint(missing), /missing keys \(1\):\n\s+model\.final_layer\.ffn_final\.fc2\.bias/);
  assert.throws(() => loadRdtCheckpoint(join(tmp, 'nowhere')), /does not exist/);
  assert.throws(() => loadRdtCheckpoint(tmp), /no weights found/);
  // loadRunnerState directly, non-strict, tolerates the missing key
  const r = new RDTRunner(rdtPreset('tiny'), { init: 'none' });
  torch.scope(() => loadRunnerState(r, torch.loadSafetensors(join(missing, 'model.safetensors')).tensors, { source: 'x', strict: false }));
  r.dispose();
});

test('a folder with LoRA adapters beside the weights is refused with the lora-merge command, unless adapters: ignore', () => {
  const runner = new RDTRunner(rdtPreset('tiny'), { generator: new torch.Generator(2) });
  const dir = join(tmp, 'lora-ck');
  saveRdtCheckpoint(runner, dir);
  runner.dispose();
  // Its model.safetensors holds the base weights only: loading it alone would silently give the base model.
  writeFileSync(join(dir, 'adapter_model.safetensors'), '');
  const want = `${dir}: LoRA adapters (${join(dir, 'adapter_model.safetensors')}) sit beside the base weights, which alone are not the trained model; ` +
    `fold them into the weights first: rdt-libero lora-merge --checkpoint ${dir} --out ${dir}-merged, then load ${dir}-merged`;
  assert.throws(() => loadRdtCheckpoint(dir), (e: Error) => e.name === 'ModelError' && e.message === want);
  assert.throws(() => loadRdtCheckpoint(dir + '/'), /lora-merge --checkpoint .*lora-ck --out .*lora-ck-merged,/, 'a trailing slash does not end up in the command');
  assert.throws(() => loadRdtCheckpoint(join(dir, 'model.safetensors')), /LoRA adapters/, 'the weights file of the folder too');
  loadRdtCheckpoint(dir, { adapters: 'ignore' }).runner.dispose();
});
