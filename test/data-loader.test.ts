// The epoch sampler (every step once, resumable, weighted, sharded) and the worker-thread loader.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EpochSampler } from '../src/data/sampler.js';
import { DataLoader } from '../src/data/loader.js';
import { LiberoDataset } from '../src/data/dataset.js';
import { writeSyntheticSuite } from '../src/data/synthetic.js';

const tmp = mkdtempSync(join(tmpdir(), 'rdt-data-loader-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));
const root = join(tmp, 'data');
const ready = Promise.all([
  writeSyntheticSuite({ root, suite: 'libero_spatial', tasks: 2, demos: 2, meanLength: 20, size: 8, seed: 3 }),
  writeSyntheticSuite({ root, suite: 'libero_goal', tasks: 1, demos: 2, meanLength: 20, size: 8, seed: 4 }),
]);

const suites = [
  { name: 'a', start: 0, end: 70 },
  { name: 'b', start: 70, end: 100 },
];

test('one epoch visits every step exactly once; epochs differ; same seed, same order', () => {
  const s = new EpochSampler(suites, { seed: 42 });
  assert.equal(s.epochLength, 100);
  const e0 = Array.from({ length: 100 }, (_, p) => s.at(0, p));
  assert.deepEqual([...e0].sort((x, y) => x - y), Array.from({ length: 100 }, (_, i) => i));
  const e1 = Array.from({ length: 100 }, (_, p) => s.at(1, p));
  assert.deepEqual([...e1].sort((x, y) => x - y), Array.from({ length: 100 }, (_, i) => i));
  assert.notDeepEqual(e0, e1);
  const again = new EpochSampler(suites, { seed: 42 });
  assert.deepEqual(Array.from({ length: 100 }, (_, p) => again.at(0, p)), e0);
  assert.notDeepEqual(Array.from({ length: 100 }, (_, p) => new EpochSampler(suites, { seed: 43 }).at(0, p)), e0);
});

test('resume from (epoch, position) continues the same stream', () => {
  const s = new EpochSampler(suites, { seed: 1 });
  const full = s.take({ epoch: 0, position: 0 }, 250);
  assert.deepEqual(full.next, { epoch: 2, position: 50 });
  const first = s.take({ epoch: 0, position: 0 }, 130);
  assert.deepEqual(first.next, { epoch: 1, position: 30 });
  const fresh = new EpochSampler(suites, { seed: 1 });
  const rest = fresh.take(first.next, 120);
  assert.deepEqual([...first.indices, ...rest.indices], full.indices);
});

test('sharding: each rank takes one block of every global batch; together they are the one-process stream', () => {
  // Written down independently of the sampler's code: the global stream is epoch 0's order, then epoch 1's.
  const one = new EpochSampler(suites, { seed: 5 });
  const stream = [...Array.from({ length: 100 }, (_, p) => one.at(0, p)), ...Array.from({ length: 100 }, (_, p) => one.at(1, p))];
  const W = 3;
  const n = 7;
  const ranks = Array.from({ length: W }, (_, r) => new EpochSampler(suites, { seed: 5, rank: r, worldSize: W }));
  let from = { epoch: 0, position: 0 };
  const seen: number[][] = Array.from({ length: W }, () => []);
  for (let b = 0; b < 5; b++) {
    const parts = ranks.map((s) => s.take(from, n));
    parts.forEach((p, r) => {
      assert.deepEqual(p.indices, stream.slice(b * W * n + r * n, b * W * n + (r + 1) * n), `batch ${b} rank ${r}`);
      assert.deepEqual(p.next, parts[0].next, 'every rank agrees where the next global batch starts');
      seen[r].push(...p.indices);
    });
    from = parts[0].next;
  }
  assert.deepEqual(from, { epoch: 1, position: 5 }); // 5 global batches of 21 = 105 = one epoch + 5
  // Epoch 0's 100 positions are split among the ranks without overlap and cover it exactly once.
  const epoch0 = seen.flatMap((s, r) => s.filter((_, i) => Math.floor(i / n) * W * n + r * n + (i % n) < 100));
  assert.deepEqual([...epoch0].sort((x, y) => x - y), Array.from({ length: 100 }, (_, i) => i));
  assert.throws(() => new EpochSampler(suites, { seed: 5, rank: 3, worldSize: 3 }), /rank 3 not in/);
});

test('weighted mixing: per-epoch counts follow the weights; suite passes continue across epochs', () => {
  const s = new EpochSampler(suites, { seed: 9, weights: { a: 1, b: 1 } });
  assert.equal(s.epochLength, 100);
  for (const e of [0, 1, 2]) {
    const list = Array.from({ length: 100 }, (_, p) => s.at(e, p));
    assert.equal(list.filter((i) => i < 70).length, 50);
    assert.equal(list.filter((i) => i >= 70).length, 50);
  }
  // suite b (30 steps) is drawn 50 times per epoch: epochs 0..2 = 150 draws = 5 full passes, each step 5 times
  const b = [0, 1, 2].flatMap((e) => Array.from({ length: 100 }, (_, p) => s.at(e, p))).filter((i) => i >= 70);
  const counts = new Map<number, number>();
  for (const i of b) counts.set(i, (counts.get(i) ?? 0) + 1);
  assert.equal(counts.size, 30);
  assert.ok([...counts.values()].every((c) => c === 5));
  // weights proportional to sizes: every step exactly once
  const p = new EpochSampler(suites, { seed: 9, weights: { a: 7, b: 3 } });
  assert.deepEqual(Array.from({ length: 100 }, (_, q) => p.at(0, q)).sort((x, y) => x - y), Array.from({ length: 100 }, (_, i) => i));
  assert.throws(() => new EpochSampler(suites, { seed: 9, weights: { c: 1 } }), /unknown suite 'c'/);
});

test('loader: worker-built batches equal in-thread ones; one epoch covers the dataset', async () => {
  await ready;
  const dataset = { root, adapter: { chunkSize: 8 } };
  const ds = await LiberoDataset.open(dataset);
  const N = ds.size;
  const dl = await DataLoader.create({ dataset, batchSize: 5, workers: 2, prefetch: 3, sampler: { seed: 7 } });
  try {
    assert.equal(dl.sampler.epochLength, N);
    const seen: number[] = [];
    let next = { epoch: 0, position: 0 };
    while (next.epoch === 0) {
      const b = await dl.next();
      assert.deepEqual({ epoch: b.epoch, position: b.position }, next);
      next = b.next;
      assert.equal(b.size, 5);
      assert.equal(b.images.length, 5 * 2 * 3 * 8 * 8 * 3);
      assert.equal(b.actions.length, 5 * 8 * 128);
      for (let r = 0; r < 5; r++) {
        if (b.epoch === 0 && b.position + r < N) seen.push(b.index[r]);
        if (r === 2) {
          const ref = ds.sample(b.index[r]);
          assert.deepEqual(b.ids[r], ref.ids[0]);
          assert.equal(b.instruction[r], ref.instruction[0]);
          assert.deepEqual(b.state.subarray(r * 128, r * 128 + 128), ref.state);
          assert.deepEqual(b.actions.subarray(r * 8 * 128, (r + 1) * 8 * 128), ref.actions);
          assert.deepEqual(b.images.subarray(r * 1152, (r + 1) * 1152), ref.images);
          assert.deepEqual(b.imageMask.subarray(r * 6, r * 6 + 6), ref.imageMask);
        }
      }
    }
    assert.deepEqual(seen.sort((x, y) => x - y), Array.from({ length: N }, (_, i) => i));
  } finally {
    await dl.close();
    ds.close();
  }
  // a resumed in-thread loader reproduces the stream
  const a = await DataLoader.create({ dataset, batchSize: 4, sampler: { seed: 3 } });
  await a.next();
  const b2 = await a.next();
  const b3 = await a.next();
  await a.close();
  const r = await DataLoader.create({ dataset, batchSize: 4, sampler: { seed: 3 }, start: b2.next });
  const r3 = await r.next();
  assert.deepEqual(Array.from(r3.index), Array.from(b3.index));
  await r.close();
});

test('loader: a bad dataset fails at create with the problems listed', async () => {
  await assert.rejects(DataLoader.create({ dataset: { root: join(tmp, 'nope') }, batchSize: 2, sampler: { seed: 1 } }), /dataset root is not a directory/);
});

test('loader: batch buffers are pooled (valid until the next call); cloneBatch owns its memory', async () => {
  await ready;
  const { cloneBatch } = await import('../src/data/loader.js');
  const dl = await DataLoader.create({ dataset: { root, adapter: { chunkSize: 4 } }, batchSize: 3, workers: 1, prefetch: 2, sampler: { seed: 2 } });
  try {
    const a = await dl.next();
    const keep = cloneBatch(a);
    const snapshot = Array.from(a.state);
    const idx = Array.from(a.index);
    for (let i = 0; i < 4; i++) await dl.next();
    assert.deepEqual(Array.from(keep.state), snapshot);
    assert.deepEqual(Array.from(keep.index), idx);
    assert.equal(keep.ids.length, 3);
  } finally {
    await dl.close();
  }
});

test('loader: a read failure inside a worker surfaces from next() naming the file, demo and key', async () => {
  const { truncateSync, statSync } = await import('node:fs');
  const r = join(tmp, 'fragile');
  const [file] = await writeSyntheticSuite({ root: r, suite: 'libero_goal', tasks: 1, demos: 2, meanLength: 20, size: 8, seed: 1 });
  const dl = await DataLoader.create({ dataset: { root: r, adapter: { chunkSize: 4 } }, batchSize: 4, workers: 1, prefetch: 2, sampler: { seed: 1 } });
  try {
    truncateSync(file, Math.floor(statSync(file).size / 3)); // images now end early; low-dim data is cached
    let err: Error | null = null;
    for (let i = 0; i < 30 && !err; i++) await dl.next().catch((e: Error) => (err = e));
    assert.ok(err, 'expected a read error');
    assert.match((err as Error).message, new RegExp(`file ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}, demo demo_\\d, key obs/(agentview|eye_in_hand)_rgb, step \\d+: short read`));
  } finally {
    await dl.close();
  }
});
