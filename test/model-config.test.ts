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
  assert.throws(() => rdtPreset('rdt-1B'), /unknown RDT preset 'rdt-1B' \(did you mean 'rdt-1b'\?\)/);
});
