// Devices are checked by the engine before libtorch sees them: one EngineError line naming the device and what to
// do, from every place a device enters (factories, random ops, Tensor.to, Module.to, Generator).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../src/engine/index.js';
import { nn } from '../src/engine/index.js';
import { EngineError } from '../src/engine/errors.js';
import { RdtError } from '../src/util/errors.js';

const isEngineLine = (re: RegExp) => (e: unknown) =>
  e instanceof EngineError && e instanceof RdtError && e.exitCode === 1 && !e.message.includes('\n') && re.test(e.message);

test('cpu and meta pass; an unknown device name is refused in one line', () => {
  torch.checkDevice('cpu');
  torch.checkDevice('meta');
  for (const d of ['gpu', 'cuda:x', 'CUDA', 'cuda:-1', ''])
    assert.throws(() => torch.checkDevice(d), isEngineLine(/^unknown device '.*' \(use 'cpu', 'cuda' or 'cuda:N'\)$/), d);
  assert.throws(() => torch.zeros([2], { device: 'gpu' }), isEngineLine(/unknown device 'gpu'/));
});

test('without CUDA, every way a device enters the engine gives the same one-line EngineError', (t) => {
  const why = torch.cudaUnavailableReason();
  if (!why) return t.skip('CUDA is available here');
  const want = /^device 'cuda(:\d+)?' is not available: /;
  const x = torch.ones([2]);
  const lin = new nn.Linear(2, 2);
  const live = torch.liveTensors();
  const attempts: [string, () => unknown][] = [
    ['zeros', () => torch.zeros([2], { device: 'cuda' })],
    ['tensor', () => torch.tensor([1, 2], { device: 'cuda:0' })],
    ['arange', () => torch.arange(3, undefined, 1, { device: 'cuda' })],
    ['randn', () => torch.randn([2], { device: 'cuda' })],
    ['Tensor.to', () => x.to({ device: 'cuda:1' })],
    ['Module.to', () => lin.to({ device: 'cuda' })],
    ['Generator', () => new torch.Generator(0, 'cuda')],
  ];
  for (const [what, fn] of attempts) assert.throws(fn, isEngineLine(want), what);
  assert.equal(torch.liveTensors(), live, 'a refused device creates no tensor');
  assert.equal(lin.weight.device, 'cpu');
  // The reason says what to do: on a CPU build of libtorch, a CUDA build of torch.
  if (!/USE_CUDA=(1|ON)/.test(torch.libtorch.buildConfig())) assert.match(why, /CPU build: install a CUDA build of torch/);
  x.dispose();
  lin.dispose();
});

test('with CUDA, a device index past the visible ones is refused naming how many there are', (t) => {
  if (torch.cudaUnavailableReason()) return t.skip('no CUDA here');
  const n = torch.cuda.deviceCount();
  torch.checkDevice('cuda');
  torch.checkDevice(`cuda:${n - 1}`);
  assert.throws(() => torch.zeros([1], { device: `cuda:${n}` }), isEngineLine(new RegExp(`^device 'cuda:${n}' does not exist: ${n} CUDA device\\(s\\) are visible`)));
  const y = torch.ones([2], { device: 'cuda' });
  assert.equal(y.device, 'cuda:0');
  y.dispose();
});
