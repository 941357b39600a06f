// One rank of test/ddp-memory.test.ts, started with the torchrun environment: trains each run of argv[2] (a JSON list
// of config overrides) for 2 optimizer steps in one process group and prints, per run, the CPU allocator's peak of
// large blocks in use (native/cpu_allocator.cc) during it, and what was in use before it.
import * as torch from '../../src/engine/index.js';
import { initProcessGroup } from '../../src/engine/distributed.js';
import { loadConfig } from '../../src/train/config.js';
import { train } from '../../src/train/trainer.js';

const runs = JSON.parse(process.argv[2]) as Record<string, string | number>[];
const pg = initProcessGroup({ backend: 'gloo', timeoutMs: 300_000 });
const out: { before: number; peak: number; after: number }[] = [];
for (const over of runs) {
  const cfg = loadConfig({ overrides: Object.entries(over).map(([k, v]) => `${k}=${v}`) });
  torch.cpuMemory.emptyCache();
  const before = torch.cpuMemory.stats().inUse;
  torch.cpuMemory.resetPeak();
  // Two steps: the first fixes the gradient buckets and creates the AdamW state; the second runs with both.
  await train(cfg, { group: pg, verbose: false, haltAfterStep: 2 });
  const s = torch.cpuMemory.stats();
  out.push({ before, peak: s.peakInUse, after: s.inUse });
}
process.stdout.write(JSON.stringify({ rank: pg.rank, runs: out }) + '\n');
pg.destroy();
