// Random ops: a torch.Generator seeded s must give exactly PyTorch's CPU numbers for the same call
// sequence (torch.Generator().manual_seed(s)), and the global generator must follow torch.manual_seed.
// Both sides run the same libtorch kernels, so the comparison is exact (atol 0, rtol 0).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../src/engine/index.js';
import { runTorch } from './helpers/torch-ref.js';
import { assertClose } from './helpers/assert-close.js';

const exact = { atol: 0, rtol: 0 };

// Each entry: [name, our call, the PyTorch statement(s) producing `r`]; all run in order on one generator.
type Step = [string, (g: torch.Generator) => torch.Tensor, string];
const steps: Step[] = [
  ['randn', (g) => torch.randn([3, 4], { generator: g }), 'r = torch.randn(3, 4, generator=g)'],
  ['randnLong', (g) => torch.randn([37], { generator: g }), 'r = torch.randn(37, generator=g)'],
  ['randn64', (g) => torch.randn([5], { generator: g, dtype: 'float64' }), 'r = torch.randn(5, generator=g, dtype=torch.float64)'],
  ['randnBf16', (g) => torch.randn([6], { generator: g, dtype: 'bfloat16' }), 'r = torch.randn(6, generator=g, dtype=torch.bfloat16)'],
  ['rand', (g) => torch.rand([2, 5], { generator: g }), 'r = torch.rand(2, 5, generator=g)'],
  ['randLong', (g) => torch.rand([40], { generator: g }), 'r = torch.rand(40, generator=g)'],
  ['randint', (g) => torch.randint(-3, 10, [7], { generator: g }), 'r = torch.randint(-3, 10, (7,), generator=g)'],
  ['randint32', (g) => torch.randint(0, 1000, [2, 3], { generator: g, dtype: 'int32' }),
    'r = torch.randint(0, 1000, (2, 3), generator=g, dtype=torch.int32)'],
  ['normal', (g) => torch.normal(2, 0.5, [4, 5], { generator: g }), 'r = torch.normal(2.0, 0.5, (4, 5), generator=g)'],
  ['bernoulli', (g) => torch.bernoulli(torch.linspace(0, 1, 9), { generator: g }),
    'r = torch.bernoulli(torch.linspace(0, 1, 9), generator=g)'],
  ['randperm', (g) => torch.randperm(10, { generator: g }), 'r = torch.randperm(10, generator=g)'],
  ['randpermLong', (g) => torch.randperm(300, { generator: g }), 'r = torch.randperm(300, generator=g)'],
  ['uniform_', (g) => torch.empty([3, 3]).uniform_(-1, 2, g), 'r = torch.empty(3, 3).uniform_(-1, 2, generator=g)'],
  ['normal_', (g) => torch.empty([20]).normal_(1, 2, g), 'r = torch.empty(20).normal_(1, 2, generator=g)'],
  ['bernoulli_', (g) => torch.empty([12]).bernoulli_(0.3, g), 'r = torch.empty(12).bernoulli_(0.3, generator=g)'],
  ['bernoulli_t', (g) => torch.empty([6]).bernoulli_(torch.linspace(0.1, 0.9, 6), g),
    'r = torch.empty(6).bernoulli_(torch.linspace(0.1, 0.9, 6), generator=g)'],
];

test('seeded generators reproduce PyTorch CPU random numbers exactly', () => {
  const ours = torch.scope(() => {
    const out: Record<string, { shape: number[]; dtype: string; v: number[] }> = {};
    for (const seed of [0, 1234]) {
      const g = new torch.Generator(seed);
      for (const [name, fn] of steps) {
        const t = fn(g);
        out[`${seed}/${name}`] = { shape: t.shape, dtype: t.dtype, v: Array.from(t.toFloat64()) };
      }
    }
    return out;
  });
  const ref = runTorch<Record<string, { shape: number[]; dtype: string; v: number[] }>>(`
steps = inp['steps']
for seed in (0, 1234):
    g = torch.Generator().manual_seed(seed)
    for name, code in steps:
        loc = {'g': g, 'torch': torch}
        exec(code, loc)
        r = loc['r']
        out[f'{seed}/{name}'] = {'shape': list(r.shape), 'dtype': str(r.dtype).replace('torch.', ''), 'v': L(r.reshape(-1))}
`, { steps: steps.map(([n, , py]) => [n, py]) });
  assert.equal(Object.keys(ours).length, 2 * steps.length);
  for (const [key, want] of Object.entries(ref)) {
    const got = ours[key];
    assert.deepEqual(got.shape, want.shape, `${key}: shape`);
    assert.equal(got.dtype, want.dtype, `${key}: dtype`);
    assertClose(got.v, want.v, { ...exact, what: key });
  }
  // Different seeds give different streams; a permutation is a permutation.
  assert.notDeepEqual(ours['0/randn'].v, ours['1234/randn'].v);
  assert.deepEqual([...ours['0/randpermLong'].v].sort((a, b) => a - b), Array.from({ length: 300 }, (_, i) => i));
});

test('the global generator follows torch.manualSeed like PyTorch', () => {
  const ours = torch.scope(() => {
    torch.manualSeed(7);
    const a = torch.randn([6]).tolist();
    const b = torch.rand([4]).tolist();
    const c = torch.randint(0, 5, [5]).tolist();
    const d = torch.randperm(8).tolist();
    torch.manualSeed(7);
    const again = torch.randn([6]).tolist();
    return { a, b, c, d, again };
  });
  const ref = runTorch<{ a: number[]; b: number[]; c: number[]; d: number[] }>(`
torch.manual_seed(7)
out = {'a': L(torch.randn(6)), 'b': L(torch.rand(4)), 'c': L(torch.randint(0, 5, (5,))), 'd': L(torch.randperm(8))}
`);
  assertClose(ours.a, ref.a, { ...exact, what: 'randn' });
  assertClose(ours.b, ref.b, { ...exact, what: 'rand' });
  assertClose(ours.c, ref.c, { ...exact, what: 'randint' });
  assertClose(ours.d, ref.d, { ...exact, what: 'randperm' });
  assert.deepEqual(ours.again, ours.a, 'reseeding replays the stream');
});

test('generator state save/restore replays the same numbers; an explicit generator leaves the global one alone', () => {
  torch.scope(() => {
    const g = new torch.Generator(99);
    torch.randn([3], { generator: g });
    const state = g.getState();
    const first = torch.rand([5], { generator: g }).tolist();
    g.setState(state);
    assert.deepEqual(torch.rand([5], { generator: g }).tolist(), first);
    g.manualSeed(99);
    const fresh = new torch.Generator(99);
    assert.deepEqual(torch.randn([4], { generator: g }).tolist(), torch.randn([4], { generator: fresh }).tolist());

    torch.manualSeed(5);
    const plain = torch.randn([4]).tolist();
    torch.manualSeed(5);
    torch.randn([100], { generator: new torch.Generator(1) });
    assert.deepEqual(torch.randn([4]).tolist(), plain, 'the global stream is untouched by an explicit generator');

    const u = torch.rand([1000], { generator: g });
    assert.ok(u.min().item() >= 0 && u.max().item() < 1, 'rand lies in [0, 1)');
    const ri = torch.randint(3, 6, [1000], { generator: g });
    assert.equal(ri.dtype, 'int64');
    assert.deepEqual([ri.min().item(), ri.max().item()], [3, 5]);
  });
});

test('random ops reject bad arguments with the op name', () => {
  torch.scope(() => {
    const g = new torch.Generator(0);
    assert.throws(() => torch.randperm(-2, { generator: g }), /^Error: randperm: .*negative dimension -2/);
    assert.throws(() => torch.randn([2], { dtype: 'int64' }), /^Error: randn: .*"normal_kernel_cpu" not implemented for 'Long'/);
    assert.throws(() => torch.bernoulli(torch.tensor([1.5])), /^Error: bernoulli: Expected p_in >= 0 && p_in <= 1/);
    assert.throws(() => torch.empty([2]).uniform_(2, 1), /^Error: uniform_: .*uniform_ expects to return a \[from, to\) range/);
    assert.throws(() => torch.empty([2]).normal_(0, -1), /^Error: normal_: .*normal expects std >= 0.0/);
    assert.throws(() => torch.randn([2], { generator: { g: 42 } as never }), /randn: argument 1 must be a Generator/);
  });
});
