// One rank of the process-group tests (test/distributed-engine.test.ts), started as a child process with
// the torchrun environment. argv[2] picks the scenario; the rank prints one JSON line of what it saw.
import { existsSync, writeFileSync } from 'node:fs';
import * as torch from '../../src/engine/index.js';
import { nn } from '../../src/engine/index.js';
import { initProcessGroup, DistributedError } from '../../src/engine/distributed.js';

const scenario = process.argv[2];
const timeoutMs = Number(process.env.DIST_TEST_TIMEOUT_MS ?? 20_000);
const pg = initProcessGroup({ backend: 'gloo', timeoutMs });
const r = pg.rank;
const values = (t: torch.Tensor): number[] => Array.from(t.toFloat64());

function report(o: unknown): void {
  process.stdout.write(JSON.stringify(o) + '\n');
}

if (scenario === 'collectives') {
  // Inputs are chosen from the rank so the test can write each result down.
  const a = torch.tensor([1 + r, 10 * (r + 1), -r], { dtype: 'float32' });
  const b = torch.tensor([r, r], { dtype: 'float32' });
  pg.allReduce([a, b], 'sum');
  const m = torch.tensor([r, -r], { dtype: 'float32' });
  pg.allReduce(m, 'max');
  const bc = torch.tensor([r + 100, r + 200], { dtype: 'float32' });
  pg.broadcast(bc, 1);
  const mine = torch.tensor([r, r + 0.5], { dtype: 'float32' });
  const gathered = torch.zeros([2 * pg.worldSize], { dtype: 'float32' });
  pg.allGather(gathered, mine);
  const big = torch.arange(0, 2 * pg.worldSize, 1, { dtype: 'float32' }).add(r);
  const slice = torch.zeros([2], { dtype: 'float32' });
  pg.reduceScatter(slice, big, 'sum');
  pg.barrier();
  report({ rank: r, world: pg.worldSize, sum: [values(a), values(b)], max: values(m), bcast: values(bc), gathered: values(gathered), scattered: values(slice) });
  pg.destroy();
} else if (scenario === 'die') {
  // Rank 1 leaves without a word; rank 0's all-reduce must fail by name, not hang.
  if (r === 1) process.exit(3);
  const t0 = Date.now();
  try {
    pg.allReduce(torch.ones([4]));
    report({ rank: r, error: null });
  } catch (e) {
    report({ rank: r, error: (e as Error).name, message: (e as Error).message, isDist: e instanceof DistributedError, ms: Date.now() - t0 });
    process.exit(1);
  }
} else if (scenario === 'stall') {
  // Rank 1 stays alive but never joins the collective: rank 0 times out. Rank 1 leaves only once rank 0 has
  // reported (DIST_TEST_DONE_FILE), since leaving earlier would close its connections and turn rank 0's
  // timeout into a lost peer on a machine slow enough to start rank 0's all-reduce late.
  const done = process.env.DIST_TEST_DONE_FILE!;
  if (r === 1) {
    const t0 = Date.now();
    const poll = setInterval(() => {
      // pg is used here so the group stays reachable: a collected group closes its connections.
      if (existsSync(done) || Date.now() - t0 > 60_000) { clearInterval(poll); pg.destroy(); process.exit(0); }
    }, 50);
  } else {
    const t0 = Date.now();
    try {
      pg.allReduce(torch.ones([4]));
      report({ rank: r, error: null });
    } catch (e) {
      report({ rank: r, error: (e as Error).name, message: (e as Error).message, ms: Date.now() - t0 });
    }
    writeFileSync(done, '');
    process.exit(0);
  }
} else if (scenario === 'reducer') {
  // A chain of 4 Linear layers (64 -> 64), registered in forward order; buckets of one layer each (DIST_TEST_BUCKET
  // bytes), DIST_TEST_OWNERS=1 for ZeRO-2's owners mode (owner of parameter i: i % W). Rank r's inputs are seeded by
  // r. Each case prints the local gradients (a no_sync backward: nothing is communicated) and then the reduced ones.
  const overlap = process.env.DIST_TEST_OVERLAP !== 'false';
  const zero2 = process.env.DIST_TEST_OWNERS === '1';
  const layers = Array.from({ length: 4 }, (_, k) => new nn.Linear(64, 64, { generator: new torch.Generator(10 + k) }));
  const params = layers.flatMap((l) => [l.weight, l.bias] as torch.Tensor[]);
  const owners = params.map((_, i) => i % pg.worldSize);
  const red = pg.gradReducer(params, { bucketBytes: Number(process.env.DIST_TEST_BUCKET ?? 17_000), overlap, ...(zero2 ? { owners } : {}) });
  const gen = new torch.Generator(100 + r);
  const inputs = [0, 1, 2].map(() => torch.randn([8, 64], { generator: gen }));
  const loss = (x: torch.Tensor) => torch.scope(() => {
    let h = x;
    layers.forEach((l, k) => (h = k < 3 ? l.forward(h).tanh() : l.forward(h)));
    return h.square().mean();
  });
  const grads = () => params.map((p) => { const g = p.grad; const v = g ? values(g) : null; g?.dispose(); return v; });
  const zero = () => params.forEach((p) => (p.grad = null));
  const out: Record<string, unknown> = { rank: r, owners };
  // Case 1: one micro-batch. Local gradients first (sync false), then the same backward reduced.
  red.backward(loss(inputs[0]), false);
  out.local1 = grads();
  zero();
  red.backward(loss(inputs[0]), true);
  out.step1 = red.finalize();
  out.reduced1 = grads();
  out.layout = red.layout();
  zero();
  // Case 2: two micro-batches accumulated (no_sync on the first), with the layout now fixed.
  red.backward(loss(inputs[1]), false);
  red.backward(loss(inputs[2]), false);
  out.local2 = grads();
  zero();
  red.backward(loss(inputs[1]), false);
  red.backward(loss(inputs[2]), true);
  out.step2 = red.finalize();
  out.reduced2 = grads();
  red.destroy();
  report(out);
  pg.destroy();
} else {
  throw new Error(`unknown scenario ${scenario}`);
}
