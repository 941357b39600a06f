// RdtConfig: presets, the hub config.json (read and written byte for byte), validation errors naming the key.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { rdtPreset, parseRdtConfig, hubConfigText, toHubJson, DEFAULT_RMS_NORM } from '../src/model/config.js';
import { fixture } from './helpers/fixtures.js';

const manifest = (name: string) => JSON.parse(readFileSync(fixture(name), 'utf8'));

test('presets equal the released hub configs and the tiny fixture config', () => {
  for (const [preset, file] of [['rdt-1b', 'rdt-1b.keys.json'], ['rdt-170m', 'rdt-170m.keys.json']]) {
    const hub = manifest(file).hub_config;
    assert.deepEqual(toHubJson(rdtPreset(preset)), hub, preset);
    // json.dumps(indent=2, sort_keys=True): exactly the 919 bytes the hub shows
    assert.equal(Buffer.byteLength(hubConfigText(rdtPreset(preset))), 919, `${preset} config.json size`);
  }
  const tinyText = readFileSync(fixture('rdt', 'tiny_a.hub-bf16', 'config.json'), 'utf8');
  assert.equal(hubConfigText(rdtPreset('tiny')), tinyText, 'tiny config.json byte for byte');
  const tiny = parseRdtConfig(JSON.parse(tinyText), 'tiny config.json');
  assert.equal(tiny.rms_norm, DEFAULT_RMS_NORM);
  assert.equal(DEFAULT_RMS_NORM, 'timm103-unbiased-var', 'default = the unpatched official timm 1.0.3 path');
});

test('rms_norm is written only when it is not the default, and read back', () => {
  const c = rdtPreset('tiny', { rms_norm: 'mean-square' });
  assert.equal(c.rms_norm, 'mean-square');
  assert.equal(parseRdtConfig(JSON.parse(hubConfigText(c))).rms_norm, 'mean-square');
  assert.ok(!hubConfigText(rdtPreset('tiny')).includes('rms_norm'));
});

test('bad configs give errors naming the key', () => {
  const good = () => toHubJson(rdtPreset('tiny'));
  const bad = (patch: (o: Record<string, any>) => void, re: RegExp) => {
    const o = good() as Record<string, any>;
    patch(o);
    assert.throws(() => parseRdtConfig(o, 'x/config.json'), re);
  };
  bad((o) => delete o.img_token_dim, /x\/config.json: key 'img_token_dim' is missing/);
  bad((o) => (o.rdt.hidden_size = 130), /key 'rdt.hidden_size' \(130\) must be divisible by rdt.num_heads/);
  bad((o) => (o.rdt.hiden = 3), /key 'rdt.hiden' is not an RDT config key/);
  bad((o) => (o.lang_adapter = 'x'), /did you mean 'lang_adaptor'/);
  bad((o) => (o.state_adaptor = 'mlp3x_relu'), /key 'state_adaptor' must be 'linear' or 'mlp\{N\}x_gelu'/);
  bad((o) => (o.img_cond_len = 55), /key 'img_pos_embed_config' covers 54 tokens but img_cond_len is 55/);
  bad((o) => (o.noise_scheduler.prediction_type = 'epsilon'), /key 'noise_scheduler.prediction_type' must be one of 'sample'/);
  bad((o) => (o.rms_norm = 'rms'), /key 'rms_norm' must be one of 'timm103-unbiased-var', 'mean-square'/);
  // Accepted by the official runner but never acted on (models/rdt_runner.py passes clip_sample only to the
  // training DDPMScheduler, whose add_noise does not clip, and reads `type` nowhere): refused, not ignored.
  bad((o) => (o.noise_scheduler.type = 'ddim'), /key 'noise_scheduler.type' must be 'ddpm', got 'ddim': the official runner reads no other value/);
  bad((o) => (o.noise_scheduler.clip_sample = true), /key 'noise_scheduler.clip_sample' must be false: the official runner passes it only to the training DDPMScheduler/);
  bad((o) => (o.noise_scheduler.clip_sample = 'no'), /key 'noise_scheduler.clip_sample' must be true or false/);
  assert.throws(() => rdtPreset('rdt-1B'), /unknown RDT preset 'rdt-1B' \(did you mean 'rdt-1b'\?\)/);
  // The keys may be left out (older configs): the official defaults.
  const o = good() as Record<string, any>;
  delete o.noise_scheduler.type;
  delete o.noise_scheduler.clip_sample;
  assert.deepEqual(parseRdtConfig(o).noise_scheduler, rdtPreset('tiny').noise_scheduler);
});

test('a runner refuses a hand-built noise_scheduler the samplers do not implement', async () => {
  const { RDTRunner } = await import('../src/model/runner.js');
  for (const patch of [{ clip_sample: true }, { type: 'ddim' }, { prediction_type: 'epsilon' }]) {
    const c = rdtPreset('tiny');
    Object.assign(c.noise_scheduler, patch);
    assert.throws(() => new RDTRunner(c), /only type 'ddpm', beta_schedule 'squaredcos_cap_v2', prediction_type 'sample' and clip_sample false are implemented/);
  }
});

test('YAML configs: a preset with overrides, and the official base.yaml layout', async () => {
  const { writeFileSync, mkdtempSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { loadRdtConfigFile } = await import('../src/model/config.js');
  const dir = mkdtempSync(join(tmpdir(), 'rdt-cfg-'));
  writeFileSync(join(dir, 'a.yaml'), 'preset: rdt-170m\nrms_norm: mean-square\nnoise_scheduler:\n  num_inference_timesteps: 10\n');
  const a = loadRdtConfigFile(join(dir, 'a.yaml'));
  assert.equal(a.rdt.hidden_size, 1024);
  assert.equal(a.rms_norm, 'mean-square');
  assert.equal(a.noise_scheduler.num_inference_timesteps, 10);
  assert.equal(a.noise_scheduler.beta_schedule, 'squaredcos_cap_v2');
  writeFileSync(join(dir, 'base.yaml'), `
common:
  img_history_size: 2
  action_chunk_size: 64
  num_cameras: 3
  state_dim: 128
dataset:
  tokenizer_max_length: 1024
model:
  lang_adaptor: mlp2x_gelu
  img_adaptor: mlp2x_gelu
  state_adaptor: mlp3x_gelu
  lang_token_dim: 4096
  img_token_dim: 1152
  state_token_dim: 128
  rdt: {hidden_size: 2048, depth: 28, num_heads: 32, cond_pos_embed_type: multimodal}
  noise_scheduler: {type: ddpm, num_train_timesteps: 1000, num_inference_timesteps: 5, beta_schedule: squaredcos_cap_v2, prediction_type: sample, clip_sample: False}
  ema: {update_after_step: 0, inv_gamma: 1.0, power: 0.75, min_value: 0.0, max_value: 0.9999}
`);
  assert.deepEqual(loadRdtConfigFile(join(dir, 'base.yaml')), rdtPreset('rdt-1b'));
  writeFileSync(join(dir, 'bad.yaml'), 'preset: rdt-170m\nrdt:\n  depht: 3\n');
  assert.throws(() => loadRdtConfigFile(join(dir, 'bad.yaml')), /bad.yaml: preset rdt-170m: key 'rdt.depht' is not an RDT config key \(did you mean 'depth'\?\)/);
});
