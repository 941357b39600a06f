// The CPU caching allocator (native/cpu_allocator.cc). glibc's heap fragments in this process when large
// tensor blocks interleave with small long-lived allocations, and RSS grows with every forward (the SigLIP
// so400m tower was OOM-killed at 24 GB); the allocator maps large blocks once and reuses them. Checked here:
// results are bit-identical to libtorch's own allocator (RDT_CPU_ALLOCATOR=system, a fresh process), RSS stays
// flat over repeated forwards, freed blocks are reused, and the cache respects its limit and empties.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as torch from '../src/engine/index.js';

const engine = fileURLToPath(new URL('../src/engine/index.js', import.meta.url));

// Transformer-shaped layers in scopes, with large intermediates (MLP 4 MB, attention scores 16 MB) freed at
// each layer's end; prints the RSS and the blocks mapped so far after each of 8 forwards, a hash of the output's bytes, and the stats.
const workload = `
  import { readFileSync } from 'node:fs';
  import { createHash } from 'node:crypto';
  const torch = await import(${JSON.stringify(engine)});
  const { F } = torch;
  const rss = () => parseInt(readFileSync('/proc/self/status', 'utf8').split('\\n').find((l) => l.startsWith('VmRSS:')).slice(6)) / 1024;
  torch.setNumThreads(1);
  const g = new torch.Generator(0);
  const d = 256, N = 1024;
  const W = torch.scope(() => Array.from({ length: 4 }, () =>
    [torch.randn([d, 4 * d], { generator: g }).mul(0.05).keep(), torch.randn([4 * d, d], { generator: g }).mul(0.05).keep()]));
  const x0 = torch.randn([N, d], { generator: g }).keep();
  const rssAfter = [];
  const missesAfter = [];
  let y = null;
  for (let it = 0; it < 8; it++) {
    y?.dispose();
    y = torch.noGrad(() => torch.scope(() => {
      let x = x0;
      for (const [a, b] of W) x = torch.scope(() => {
        const q = F.layerNorm(x, [d]).matmul(a);
        const heads = q.reshape([N, 4, d]);
        const p = F.softmax(heads.transpose(0, 1).matmul(heads.permute([1, 2, 0])).mul(0.01), -1);
        return x.add(F.gelu(q).matmul(b)).add(p.sum([0]).matmul(x).mul(1e-3));
      });
      return x;
    }));
    rssAfter.push(rss());
    missesAfter.push(torch.cpuMemory.stats().misses);
  }
  const out = createHash('sha256').update(y.toFloat64()).digest('hex');
  if (process.env.EMPTY) torch.cpuMemory.emptyCache();
  console.log(JSON.stringify({ stats: torch.cpuMemory.stats(), rssAfter, missesAfter, out }));`;

function run(env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', workload], { encoding: 'utf8', env: { ...process.env, ...env } });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.trim()) as { stats: torch.CpuAllocatorStats; rssAfter: number[]; missesAfter: number[]; out: string };
}

test('the caching allocator gives the same results as libtorch\'s own, with flat RSS and reused blocks', () => {
  const ours = run();
  const system = run({ RDT_CPU_ALLOCATOR: 'system' });
  assert.equal(ours.stats.enabled, true);
  assert.equal(system.stats.enabled, false);
  assert.equal(system.stats.misses, 0, 'with RDT_CPU_ALLOCATOR=system nothing goes through the cache');
  assert.equal(ours.out, system.out, 'outputs differ between the two allocators');
  // From the second forward on, every large block is a reuse: nothing new is mapped.
  assert.equal(ours.missesAfter[7], ours.missesAfter[1], `blocks mapped after each forward: ${ours.missesAfter}`);
  assert.ok(ours.stats.hits >= 6 * 4 * 10, `hits ${ours.stats.hits}`);
  assert.ok(ours.stats.inUse > 0 && ours.stats.inUse < ours.stats.peakInUse);
  assert.ok(ours.stats.cached <= ours.stats.peakInUse, 'the cache never holds more than the peak in use');
  const growth = ours.rssAfter[7] - ours.rssAfter[1];
  assert.ok(growth < 8, `RSS grew ${growth.toFixed(1)} MB from forward 2 to 8: ${ours.rssAfter.map(Math.round)}`);
});

test('RDT_CPU_CACHE_MB caps the cache, and emptyCache unmaps it', () => {
  const capped = run({ RDT_CPU_CACHE_MB: '16' });
  assert.equal(capped.stats.limit, 16 << 20);
  assert.ok(capped.stats.cached <= 16 << 20, `cached ${capped.stats.cached}`);
  const emptied = run({ EMPTY: '1' });
  assert.equal(emptied.stats.cached, 0);
});

test('blocks freed in this process are reused for the next tensor of the same size, with fresh contents', () => {
  const before = torch.cpuMemory.stats();
  const a = torch.full([1 << 20], 3); // 4 MB: a cached block
  const s1 = torch.cpuMemory.stats();
  assert.ok(s1.inUse - before.inUse >= 4 << 20);
  a.dispose();
  const b = torch.zeros([1 << 20]);
  const s2 = torch.cpuMemory.stats();
  assert.equal(s2.hits, s1.hits + 1, 'the freed block was not reused');
  assert.equal(b.sum().item(), 0);
  b.dispose();
});
