// c10d process groups from TypeScript (src/engine/distributed.ts): two real processes on Gloo, results written
// down from the inputs each rank contributes; a Python torch.distributed rank in the same group; and the
// two failures that must not hang: a rank that exits, a rank that stops answering.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { envFromTorchrun, availableBackends, DistributedError } from '../src/engine/distributed.js';
import { freePort } from './helpers/ports.js';

const worker = join(dirname(fileURLToPath(import.meta.url)), 'helpers', 'dist-worker.js');

interface Done {
  code: number | null;
  out: string;
  err: string;
  ms: number;
}

function start(cmd: string, args: string[], env: Record<string, string>): Promise<Done> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('close', (code) => resolve({ code, out, err, ms: Date.now() - t0 }));
  });
}

function rankEnv(rank: number, world: number, port: number, extra: Record<string, string> = {}): Record<string, string> {
  return { RANK: String(rank), LOCAL_RANK: String(rank), WORLD_SIZE: String(world), MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port), ...extra };
}

const lastJson = (d: Done): Record<string, unknown> => {
  const line = d.out.trim().split('\n').filter((l) => l.startsWith('{')).pop();
  assert.ok(line, `no result line; stderr:\n${d.err}`);
  // + 0 turns Python's -0.0 (max(0., -0.)) into 0: the sign of zero is not what is tested.
  return JSON.parse(line, (_k, v) => (typeof v === 'number' ? v + 0 : v)) as Record<string, unknown>;
};

// What every rank must see for the 'collectives' scenario, from each rank r's inputs (see dist-worker.ts):
// a=[1+r, 10(r+1), -r], b=[r, r] summed; [r, -r] max; rank 1's [r+100, r+200] broadcast; [r, r+.5] gathered;
// arange(2W)+r reduce-scattered.
function expected(rank: number) {
  return {
    rank, world: 2,
    sum: [[3, 30, -1], [1, 1]],
    max: [1, 0],
    bcast: [101, 201],
    gathered: [0, 0.5, 1, 1.5],
    scattered: rank === 0 ? [0 + 1, 1 + 2] : [2 + 3, 3 + 4],
  };
}

test('this build has the Gloo backend', () => {
  assert.ok(availableBackends().includes('gloo'));
});

test('two processes: all-reduce, broadcast, all-gather, reduce-scatter and barrier give the written-down results', async () => {
  const port = await freePort();
  const runs = await Promise.all([0, 1].map((r) => start('node', [worker, 'collectives'], rankEnv(r, 2, port))));
  for (const [r, d] of runs.entries()) {
    assert.equal(d.code, 0, d.err);
    assert.deepEqual(lastJson(d), expected(r));
  }
});

test('a Python torch.distributed rank and ours form one Gloo group', async () => {
  const port = await freePort();
  // The same sequence of collectives as dist-worker.ts's 'collectives', written with torch.distributed.
  const py = `
import json, torch, torch.distributed as dist
dist.init_process_group('gloo')
r = dist.get_rank(); W = dist.get_world_size()
a = torch.tensor([1. + r, 10. * (r + 1), -r]); b = torch.tensor([float(r), float(r)])
dist.all_reduce(a); dist.all_reduce(b)
m = torch.tensor([float(r), -float(r)]); dist.all_reduce(m, op=dist.ReduceOp.MAX)
bc = torch.tensor([r + 100., r + 200.]); dist.broadcast(bc, 1)
g = torch.zeros(2 * W); dist.all_gather_into_tensor(g, torch.tensor([float(r), r + .5]))
s = torch.zeros(2); dist.reduce_scatter_tensor(s, torch.arange(2. * W) + r)
dist.barrier()
print(json.dumps({'rank': r, 'world': W, 'sum': [a.tolist(), b.tolist()], 'max': m.tolist(), 'bcast': bc.tolist(), 'gathered': g.tolist(), 'scattered': s.tolist()}))
dist.destroy_process_group()
`;
  const [ours, theirs] = await Promise.all([
    start('node', [worker, 'collectives'], rankEnv(0, 2, port)),
    start(process.env.PYTHON || 'python3', ['-c', py], rankEnv(1, 2, port)),
  ]);
  assert.equal(ours.code, 0, ours.err);
  assert.equal(theirs.code, 0, theirs.err);
  assert.deepEqual(lastJson(ours), expected(0));
  assert.deepEqual(lastJson(theirs), expected(1));
});

test('a rank that exits mid-job makes the other fail by name at once, not hang', async () => {
  const port = await freePort();
  const env = { DIST_TEST_TIMEOUT_MS: '20000' };
  const [r0, r1] = await Promise.all([0, 1].map((r) => start('node', [worker, 'die'], rankEnv(r, 2, port, env))));
  assert.equal(r1.code, 3);
  assert.equal(r0.code, 1);
  const res = lastJson(r0);
  assert.equal(res.error, 'PeerLostError');
  assert.equal(res.isDist, true);
  assert.match(String(res.message), /all_reduce on rank 0 of 2 \(gloo\): another rank closed its connection/);
  assert.ok(Number(res.ms) < 20_000, `failed after ${res.ms} ms, the timeout is 20000`);
});

test('a rank that stops answering makes the other time out with DistributedTimeoutError', async () => {
  const port = await freePort();
  const env = { DIST_TEST_TIMEOUT_MS: '1500', DIST_TEST_DONE_FILE: join(mkdtempSync(join(tmpdir(), 'rdt-dist-')), 'done') };
  const [r0] = await Promise.all([0, 1].map((r) => start('node', [worker, 'stall'], rankEnv(r, 2, port, env))));
  const res = lastJson(r0);
  assert.equal(res.error, 'DistributedTimeoutError');
  assert.match(String(res.message), /no answer from the other ranks within 1500 ms/);
  assert.ok(Number(res.ms) >= 1400 && Number(res.ms) < 15_000, `timed out after ${res.ms} ms`);
});

// The gradient reducer (PyTorch DDP's Reducer, native/grad_reducer.cc), with 2 real processes. Expected values are
// written from each rank's local gradients as float32 does it: (a + b) rounded, times 1/2 rounded.
const f32 = Math.fround;
const mean2 = (a: number[], b: number[]) => a.map((x, i) => f32(f32(x + b[i]) * 0.5));
type Grads = (number[] | null)[];

async function reducerRun(env: Record<string, string> = {}) {
  const port = await freePort();
  const runs = await Promise.all([0, 1].map((r) => start('node', [worker, 'reducer'], rankEnv(r, 2, port, env))));
  for (const d of runs) assert.equal(d.code, 0, d.err);
  return runs.map((d) => lastJson(d) as { owners: number[]; local1: Grads; local2: Grads; reduced1: Grads; reduced2: Grads; layout: number[][];
    step1: { launchedInBackward: number; buckets: number; defined: boolean[] }; step2: { launchedInBackward: number; buckets: number } });
}

test('gradient reducer: hooks fire in reverse order during backward, buckets are averaged, no_sync accumulates locally', async () => {
  const [a, b] = await reducerRun();
  // The layout is the order gradients became ready, the reverse of the registration order (weight i = 2k, bias 2k+1
  // of layer k), cut into buckets of at most 17000 bytes: 256-byte biases, 16384-byte weights.
  assert.deepEqual(a.layout.flat(), [7, 6, 5, 4, 3, 2, 1, 0]);
  assert.deepEqual(a.layout, [[7, 6, 5], [4, 3], [2, 1], [0]]);
  assert.deepEqual(b.layout, a.layout);
  // First step: a bucket launches when the next one's first gradient arrives, so 3 of 4 go during backward; the
  // layout is then fixed and a bucket launches as soon as it is complete: all 4 during backward.
  assert.equal(a.step1.buckets, 4);
  assert.equal(a.step1.launchedInBackward, 3);
  assert.equal(a.step2.launchedInBackward, 4);
  assert.deepEqual(a.step1.defined, Array(8).fill(true));
  for (const [rank, res] of [a, b].entries())
    for (let i = 0; i < 8; i++) {
      assert.notDeepEqual(a.local1[i], b.local1[i], 'the ranks saw different inputs');
      assert.deepEqual(res.reduced1[i], mean2(a.local1[i]!, b.local1[i]!), `rank ${rank} parameter ${i}, one micro-batch`);
      // Two micro-batches: the local sum (accumulated by backward, no communication), averaged once.
      assert.deepEqual(res.reduced2[i], mean2(a.local2[i]!, b.local2[i]!), `rank ${rank} parameter ${i}, accumulated`);
    }
});

test('gradient reducer without overlap: the same layout and the same bits, every bucket launched after backward', async () => {
  const [on] = await reducerRun();
  const [off, offB] = await reducerRun({ DIST_TEST_OVERLAP: 'false' });
  assert.equal(off.step1.launchedInBackward, 0);
  assert.equal(off.step2.launchedInBackward, 0);
  assert.deepEqual(off.layout, on.layout);
  assert.deepEqual(off.reduced1, on.reduced1);
  assert.deepEqual(off.reduced2, on.reduced2);
  assert.deepEqual(offB.reduced2, on.reduced2);
});

test('gradient reducer, ZeRO-2 owners: each bucket is reduced to its owners; the others drop their gradients', async () => {
  const [a, b] = await reducerRun({ DIST_TEST_OWNERS: '1' });
  assert.deepEqual(a.owners, [0, 1, 0, 1, 0, 1, 0, 1]);
  for (const [rank, res] of [a, b].entries())
    for (let i = 0; i < 8; i++) {
      if (res.owners[i] !== rank) {
        assert.equal(res.reduced1[i], null, `rank ${rank} does not own parameter ${i}: no gradient left`);
        assert.equal(res.reduced2[i], null);
        continue;
      }
      assert.deepEqual(res.reduced1[i], mean2(a.local1[i]!, b.local1[i]!), `owner ${rank}, parameter ${i}`);
      assert.deepEqual(res.reduced2[i], mean2(a.local2[i]!, b.local2[i]!), `owner ${rank}, parameter ${i}, accumulated`);
    }
});

test('the torchrun environment is read, and a partial one is refused by name', () => {
  assert.equal(envFromTorchrun({}), null);
  assert.deepEqual(envFromTorchrun({ RANK: '3', WORLD_SIZE: '8', LOCAL_RANK: '1', MASTER_ADDR: 'node0', MASTER_PORT: '29400', TORCHELASTIC_USE_AGENT_STORE: 'True' }),
    { rank: 3, worldSize: 8, localRank: 1, masterAddr: 'node0', masterPort: 29400, agentStore: true });
  assert.throws(() => envFromTorchrun({ WORLD_SIZE: '2', MASTER_ADDR: 'h', MASTER_PORT: '1' }), (e: Error) => e instanceof DistributedError && /RANK=""/.test(e.message));
  assert.throws(() => envFromTorchrun({ WORLD_SIZE: '2', RANK: '2', MASTER_ADDR: 'h', MASTER_PORT: '1' }), /RANK=2 must be below WORLD_SIZE=2/);
  assert.throws(() => envFromTorchrun({ WORLD_SIZE: '2', RANK: '0', MASTER_PORT: '1' }), /MASTER_ADDR is not set/);
  assert.throws(() => envFromTorchrun({ WORLD_SIZE: '2', RANK: '0', MASTER_ADDR: 'h', MASTER_PORT: 'x' }), /MASTER_PORT="x"/);
});
