// The batching queue on its own, with a model stand-in whose calls the test resolves by hand: a lone request goes
// at once; requests that arrive during a call form the next one (up to maxBatch); each gets its own rows back;
// a cancelled request leaves the queue; a failed call fails only its own requests; a full queue is ServerBusy.
import { STATE_VEC_LEN } from '../src/data/state_vec.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Batcher } from '../src/serve/batcher.js';
import { ServeError } from '../src/serve/errors.js';
import type { PolicyInput } from '../src/policy/index.js';

const CHUNK = 2;

/** A model whose calls wait for the test: `calls[i]` is the i-th call's inputs, `finish(i)` answers it. */
function fakeModel() {
  const calls: { ids: number[]; resolve: (a: Float64Array) => void; reject: (e: Error) => void }[] = [];
  const predict = (inputs: PolicyInput[]) => new Promise<{ actions: Float64Array; raw: Float64Array; inferMs: number }>((resolve, reject) => {
    const ids = inputs.map((x) => Number(x.instruction));
    calls.push({ ids, resolve: (actions) => resolve({ actions, raw: new Float64Array(ids.length * CHUNK * STATE_VEC_LEN), inferMs: 1 }), reject });
  });
  // Row b of call i: every value is the request's id, so a mix-up between rows shows.
  const finish = (i: number) => calls[i].resolve(Float64Array.from(calls[i].ids.flatMap((id) => new Array(CHUNK * 7).fill(id))));
  return { calls, predict, finish };
}

const req = (id: number): PolicyInput => ({ history: [null], instruction: String(id) });
const tick = () => new Promise((r) => setImmediate(r));

test('a lone request goes at once; those arriving meanwhile form the next call, up to maxBatch', async () => {
  const m = fakeModel();
  const b = new Batcher(m.predict, { maxBatch: 3, maxQueue: 10, chunk: CHUNK });
  const first = b.submit(req(1), 0).result;
  await tick();
  assert.deepEqual(m.calls.map((c) => c.ids), [[1]]);
  const rest = [2, 3, 4, 5].map((id) => b.submit(req(id), 0).result);
  await tick();
  assert.equal(m.calls.length, 1, 'nothing else is sent while the model is busy');
  assert.equal(b.queued, 4);
  m.finish(0);
  const r1 = await first;
  assert.deepEqual([r1.batchSize, r1.actions.length, r1.actions[0]], [1, CHUNK * 7, 1]);
  await tick();
  assert.deepEqual(m.calls.map((c) => c.ids), [[1], [2, 3, 4]]);
  m.finish(1);
  await tick();
  assert.deepEqual(m.calls.map((c) => c.ids), [[1], [2, 3, 4], [5]]);
  m.finish(2);
  const rs = await Promise.all(rest);
  assert.deepEqual(rs.map((r) => [r.batchSize, ...new Set(r.actions)]), [[3, 2], [3, 3], [3, 4], [1, 5]]);
  assert.deepEqual(b.counts, { calls: 3, requests: 5, maxBatchSeen: 3 });
});

test('a cancelled request leaves the queue; a failed call fails its own requests only; a full queue is ServerBusy', async () => {
  const m = fakeModel();
  const b = new Batcher(m.predict, { maxBatch: 8, maxQueue: 2, chunk: CHUNK });
  const a = b.submit(req(1), 0).result;
  await tick();
  const x = b.submit(req(2), 0);
  const y = b.submit(req(3), 0).result;
  assert.throws(() => b.submit(req(4), 0), (e: unknown) => e instanceof ServeError && e.kind === 'ServerBusy' && /--max-queue 2/.test(e.message));
  x.cancel();
  await assert.rejects(x.result, /cancelled/);
  m.calls[0].reject(new ServeError('InferenceFailed', 'the model call failed'));
  await assert.rejects(a, (e: unknown) => e instanceof ServeError && e.kind === 'InferenceFailed');
  await tick();
  assert.deepEqual(m.calls.map((c) => c.ids), [[1], [3]], 'the cancelled request was not sent');
  m.finish(1);
  assert.equal((await y).actions[0], 3);
});
