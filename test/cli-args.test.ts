// Every command parses its arguments the same way and fails the same way, run as the user runs it (the
// compiled CLI in a child process): --help exits 0 with that command's usage on stdout; an unknown flag exits 2
// with one line naming it and pointing at --help; a missing required flag exits 2; an error from a layer (an
// RdtError) exits with its code and its message only; anything else is reported as a bug in one line, with
// the stack only under RDT_DEBUG=1.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fixture, repoRoot } from './helpers/fixtures.js';
import { reportError } from '../src/cli/report.js';
import { RdtError, UsageError } from '../src/util/errors.js';
import { DataError } from '../src/data/errors.js';
import { ModelError } from '../src/model/errors.js';
import { ConfigError, TrainError } from '../src/train/errors.js';
import { EngineError } from '../src/engine/errors.js';

const tmp = mkdtempSync(join(tmpdir(), 'rdt-cli-args-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

function cli(args: string[], env: Record<string, string> = {}): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [join(repoRoot(), 'dist', 'src', 'cli', 'main.js'), ...args], {
    cwd: tmp, encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: '1', RDT_DEBUG: '', ...env }, timeout: 60_000,
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}
const lines = (s: string) => s.trimEnd().split('\n');

// Every command and subcommand, as typed.
const COMMANDS = ['demo', 'train', 'lora-merge', 'doctor', 'predict', 'data', 'data inspect', 'data stats', 'data synth', 'eval', 'eval merge', 'serve'];

test('--help and -h print the usage of that command and exit 0, whatever else is on the line', () => {
  for (const cmd of COMMANDS) {
    for (const flag of ['--help', '-h']) {
      // An unknown flag next to --help does not turn help into an error.
      const r = cli([...cmd.split(' '), flag, '--no-such-flag']);
      assert.equal(r.code, 0, `${cmd} ${flag}: ${r.stderr}`);
      assert.equal(r.stderr, '', `${cmd} ${flag}`);
      assert.ok(r.stdout.startsWith(`usage: rdt-libero ${cmd}`), `${cmd} ${flag} printed:\n${r.stdout}`);
    }
  }
  // doctor --help must not run doctor (it prints the libtorch version when it runs).
  assert.doesNotMatch(cli(['doctor', '--help']).stdout, /^libtorch\s/m);
  // The top level lists every command.
  const top = cli(['--help']);
  assert.equal(top.code, 0);
  for (const cmd of ['demo', 'train', 'lora-merge', 'doctor', 'predict', 'data', 'eval', 'serve']) assert.match(top.stdout, new RegExp(`^  ${cmd}\\s`, 'm'));
});

test('an unknown flag exits 2 with one line naming it, a suggestion when close, and a pointer to --help', () => {
  const cases: [string[], RegExp][] = [
    [['demo', '--stpes', '3'], /^rdt-libero demo: unknown option '--stpes' \(did you mean '--steps'\?\); rdt-libero demo --help lists the options\n$/],
    [['doctor', '--verbose'], /^rdt-libero doctor: unknown option '--verbose'; rdt-libero doctor --help/],
    [['predict', '--chekpoint', 'x'], /unknown option '--chekpoint' \(did you mean '--checkpoint'\?\); rdt-libero predict --help/],
    [['lora-merge', '--dtyp', 'float32'], /unknown option '--dtyp' \(did you mean '--dtype'\?\); rdt-libero lora-merge --help/],
    [['data', 'inspect', tmp, '--encodng', 'eef_velocity'], /unknown option '--encodng' \(did you mean '--encoding'\?\); rdt-libero data inspect --help/],
    [['data', 'stats', tmp, '--bogus'], /unknown option '--bogus'; rdt-libero data stats --help/],
    [['data', 'synth', join(tmp, 's'), '--task', '2'], /unknown option '--task' \(did you mean '--tasks'\?\); rdt-libero data synth --help/],
    [['data', 'stat', tmp], /unknown subcommand 'stat' \(did you mean 'stats'\?\).*rdt-libero data --help/],
    // train takes free-form overrides: an unknown one is a config error naming the key.
    [['train', 'model=tiny', '--lerning_rate', '1e-3'], /unknown key 'lerning_rate' \(did you mean 'learning_rate'\?\).*train --help/],
    [['traim'], /unknown command 'traim' \(did you mean 'train'\?\); rdt-libero --help/],
    [['eval', '--suite', 'libero_goal', '--polcy', 'p'], /^rdt-libero eval: unknown option '--polcy' \(did you mean '--policy'\?\); rdt-libero eval --help lists the options\n$/],
    [['eval', 'merge', '--out', join(tmp, 'm'), '--inn', tmp], /unknown option '--inn' \(did you mean '--in'\?\); rdt-libero eval merge --help/],
    [['serve', '--checkpoint', tmp, '--max-batchh', '2'], /^rdt-libero serve: unknown option '--max-batchh' \(did you mean '--max-batch'\?\); rdt-libero serve --help lists the options\n$/],
  ];
  for (const [args, want] of cases) {
    const r = cli(args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.equal(lines(r.stderr).length, 1, `${args.join(' ')}: not one line:\n${r.stderr}`);
    assert.match(r.stderr, want, args.join(' '));
    assert.equal(r.stdout, '', args.join(' '));
  }
});

test('missing required flags, missing values, stray arguments and bad values exit 2 in one line', () => {
  const cases: [string[], RegExp][] = [
    [['predict', '--checkpoint', 'x'], /--inputs is required \(also missing: --out\); rdt-libero predict --help/],
    [['lora-merge', '--out', 'y'], /--checkpoint is required; rdt-libero lora-merge --help/],
    [['data', 'inspect'], /missing <root>/],
    [['data'], /give a subcommand: inspect, stats, synth/],
    [['demo', '--steps'], /--steps needs a value/],
    [['demo', '--quick=yes'], /--quick is a switch and takes no value/],
    [['demo', 'extra'], /unexpected argument 'extra'/],
    [['demo', '--steps', '0'], /--steps must be a positive integer, got '0'/],
    [['train'], /give --config run\.yaml and\/or key=value overrides/],
    [['train', '--config'], /--config needs a value/],
    [['data', 'inspect', tmp, '--align', 'realing'], /--align must be one of auto, stored, realign, got 'realing' \(did you mean 'realign'\?\)/],
    [['data', 'inspect', tmp, '--suites', 'libero_gaol'], /--suites must be one of .*got 'libero_gaol' \(did you mean 'libero_goal'\?\)/],
    [['data', 'synth', join(tmp, 's'), '--layout', 'flat'], /--layout must be one of original, regenerated/],
    [['predict', '--checkpoint', 'x', '--inputs', 'y', '--out', 'z', '--dtype', 'f32'], /--dtype must be float32 or bfloat16/],
    [['eval'], /--suite is required; rdt-libero eval --help/],
    [['eval', 'merge', '--in', tmp], /--out is required; rdt-libero eval merge --help/],
    [['eval', 'merge', '--out', join(tmp, 'm')], /--in RESULTS_DIR is required \(once per folder to merge\); rdt-libero eval merge --help/],
    [['serve'], /--checkpoint is required; rdt-libero serve --help/],
    [['serve', '--checkpoint', tmp, '--port', '70000'], /--port must be an integer in 0\.\.65535, got '70000'/],
    [['serve', '--checkpoint', tmp, '--threads', '0'], /--threads must be a positive integer, got '0'/],
  ];
  for (const [args, want] of cases) {
    const r = cli(args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.equal(lines(r.stderr).length, 1, `${args.join(' ')}: not one line:\n${r.stderr}`);
    assert.match(r.stderr, want, args.join(' '));
  }
});

test('an error from a layer exits 1 with its message only; RDT_DEBUG=1 adds the stack', () => {
  const missing = resolve(tmp, 'no-such-root');
  const r = cli(['data', 'inspect', missing]);
  assert.equal(r.code, 1, r.stderr);
  // The DataError's own message (src/data/discover.ts), prefixed by the command and nothing else.
  assert.equal(r.stderr, `rdt-libero data: file ${missing}: dataset root is not a directory (pass the folder that holds libero_spatial/, libero_goal/, ...)\n`);
  const d = cli(['data', 'inspect', missing], { RDT_DEBUG: '1' });
  assert.equal(d.code, 1);
  assert.match(d.stderr, /^rdt-libero data: file .*dataset root is not a directory/);
  assert.match(d.stderr, /\n\s+at .*discover/, 'the stack under RDT_DEBUG=1');
});

test('a CUDA device on a build without CUDA is one EngineError line, not libtorch pages', (t) => {
  const doctor = cli(['doctor']);
  if (/^CUDA\s+\d+ device/m.test(doctor.stdout)) return t.skip('CUDA is available here');
  // The device is refused where the engine first meets it (the model's first parameter), before the inputs are read.
  const r = cli(['predict', '--checkpoint', fixture('rdt', 'tiny_a.hub-bf16'), '--inputs', join(tmp, 'none.safetensors'), '--out', join(tmp, 'out.safetensors'), '--device', 'cuda']);
  assert.equal(r.code, 1, r.stderr);
  assert.equal(lines(r.stderr).length, 1, r.stderr);
  assert.match(r.stderr, /^rdt-libero predict: device 'cuda' is not available: libtorch is a CPU build: install a CUDA build of torch/);
  assert.doesNotMatch(r.stderr, /Could not run|backend/);
});

test('reportError: the exit code comes from the error class; anything else is a bug in one line', () => {
  const run = (e: unknown, debug = false) => {
    const orig = process.stderr.write.bind(process.stderr);
    const saved = process.env.RDT_DEBUG;
    let err = '';
    process.stderr.write = ((s: string) => ((err += s), true)) as typeof process.stderr.write;
    if (debug) process.env.RDT_DEBUG = '1';
    else delete process.env.RDT_DEBUG;
    try {
      return { code: reportError(e, 'x'), err };
    } finally {
      process.stderr.write = orig;
      if (saved === undefined) delete process.env.RDT_DEBUG;
      else process.env.RDT_DEBUG = saved;
    }
  };
  // Runtime errors of every layer: 1, message as is.
  for (const E of [DataError, ModelError, TrainError, EngineError, RdtError]) {
    const r = run(new E('what went wrong, where, what to do'));
    assert.deepEqual(r, { code: 1, err: 'rdt-libero x: what went wrong, where, what to do\n' }, E.name);
  }
  // Usage and config errors: 2; a config error points at the list of keys.
  assert.equal(run(new UsageError('bad flag')).code, 2);
  const c = run(new ConfigError("unknown key 'lr'"));
  assert.deepEqual(c, { code: 2, err: "rdt-libero x: config error: unknown key 'lr' (rdt-libero train --help lists every key)\n" });
  // The code is the error's own, not looked up by name: a subclass that says 3 exits 3, whatever its name.
  class Odd extends RdtError {
    override name = 'DataError';
    override get exitCode(): number {
      return 3;
    }
  }
  assert.equal(run(new Odd('odd')).code, 3);
  // An Error named like a layer error is still a bug: names are not looked at.
  const fake = new Error('looks like data');
  fake.name = 'DataError';
  const f = run(fake);
  assert.equal(f.code, 1);
  assert.match(f.err, /^rdt-libero x: internal error DataError: looks like data \(a bug in rdt-libero; RDT_DEBUG=1 prints the stack\)\n$/);
  // A bug with a long message (libtorch's are pages): one line, the rest and the stack only on request.
  const bug = new TypeError('first line\nsecond\nthird');
  const b = run(bug);
  assert.equal(b.code, 1);
  assert.equal(b.err, 'rdt-libero x: internal error TypeError: first line (a bug in rdt-libero; 2 more line(s); RDT_DEBUG=1 prints the stack)\n');
  const bd = run(bug, true);
  assert.match(bd.err, /^rdt-libero x: internal error TypeError: first line .*stack below\)\nsecond\nthird\nTypeError: first line/);
  assert.match(bd.err, /\n\s+at /);
  // A thrown non-Error value.
  assert.match(run('just a string').err, /^rdt-libero x: internal error Error: just a string/);
});
