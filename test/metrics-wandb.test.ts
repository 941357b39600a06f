// The W&B sink: a clear error when the wandb package is missing, and the calls it makes when present
// (checked with a stand-in `wandb` module that records them; the real package is the user's).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WandbSink } from '../src/metrics/wandb.js';

test('missing wandb package: the run is refused at start with what to do', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rdt-wb-'));
  // An interpreter path that cannot import wandb (python with an empty isolated path).
  const fake = join(dir, 'py.sh');
  writeFileSync(fake, '#!/bin/sh\nexec python3 -I -S "$@"\n', { mode: 0o755 });
  assert.throws(() => new WandbSink({ project: 'p', dir, config: {}, python: fake }), /cannot import the wandb package\. Install it \(pip install wandb\)/);
});

test('with wandb: init gets the project and config, then one log call per step', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rdt-wb-'));
  const record = join(dir, 'calls.jsonl');
  writeFileSync(join(dir, 'wandb.py'), `
import json, os
def _rec(x):
    with open(${JSON.stringify(record)}, 'a') as f: f.write(json.dumps(x) + "\\n")
class _Run:
    def log(self, values, step=None): _rec({"log": values, "step": step})
    def finish(self): _rec({"finish": True})
def init(**kw):
    _rec({"init": {k: kw[k] for k in ("project", "name", "config")}})
    return _Run()
`);
  const py = join(dir, 'py.sh');
  writeFileSync(py, `#!/bin/sh\nPYTHONPATH=${dir} exec python3 "$@"\n`, { mode: 0o755 });
  const sink = new WandbSink({ project: 'rdt-libero', name: 'run1', dir, config: { learning_rate: 1e-4 }, python: py });
  sink.log(1, { 'train/loss': 0.5 });
  sink.log(2, { 'train/loss': 0.25, 'train/lr': 1e-4 });
  sink.close();
  assert.equal(await sink.closed(), 0);
  const calls = readFileSync(record, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(calls, [
    { init: { project: 'rdt-libero', name: 'run1', config: { learning_rate: 1e-4 } } },
    { log: { 'train/loss': 0.5 }, step: 1 },
    { log: { 'train/loss': 0.25, 'train/lr': 1e-4 }, step: 2 },
    { finish: true },
  ]);
});
