// One rank of the process-group tests (test/distributed-engine.test.ts), started as a child process with
// the torchrun environment. argv[2] picks the scenario; the rank prints one JSON line of what it saw.
import { existsSync, writeFileSync } from 'node:fs';
import * as torch from '../../src/engine/index.js';
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
} else {
  throw new Error(`unknown scenario ${scenario}`);
}
