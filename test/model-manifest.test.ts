// The module tree declares exactly the official parameter names and shapes: the rdt-1b and rdt-170m
// key manifests (built by the fixture authors from the official RDTRunner on torch's meta device)
// and the tiny fixture's state dict. The big models are built on the meta device (no memory).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { rdtPreset } from '../src/model/config.js';
import { RDTRunner } from '../src/model/runner.js';
import { fixture } from './helpers/fixtures.js';

function declared(preset: string): [string, number[]][] {
  const runner = new RDTRunner(rdtPreset(preset), { device: 'meta', dtype: 'bfloat16' });
  const out = [...runner.stateDict()].map(([k, t]) => [k, t.shape] as [string, number[]]);
  assert.ok([...runner.stateDict().values()].every((t) => t.device === 'meta'), 'built on the meta device');
  runner.dispose();
  return out;
}

for (const [preset, file, total, count] of [
  ['rdt-1b', 'rdt-1b.keys.json', 1_228_319_872, 618],
  ['rdt-170m', 'rdt-170m.keys.json', 166_229_888, 324],
] as const) {
  test(`${preset}: state-dict names and shapes equal the official manifest; ${total.toLocaleString('en')} parameters`, () => {
    const m = JSON.parse(readFileSync(fixture(file), 'utf8'));
    const want = (m.keys as [string, number[], number, string][]).map(([k, s]) => [k, s]);
    const got = declared(preset);
    assert.deepEqual(got, want, 'same keys, same shapes, same (state-dict) order');
    assert.equal(got.length, count);
    assert.equal(got.reduce((n, [, s]) => n + s.reduce((a, b) => a * b, 1), 0), total);
    assert.equal(m.total_params, total);
  });
}

test('tiny: state dict equals the fixture manifest (114 tensors, 918,400 parameters)', () => {
  const m = JSON.parse(readFileSync(fixture('rdt', 'tiny_a.manifest.json'), 'utf8'));
  const got = declared('tiny');
  assert.deepEqual(got, m.state_dict);
  assert.equal(got.reduce((n, [, s]) => n + s.reduce((a, b) => a * b, 1), 0), 918_400);
});
