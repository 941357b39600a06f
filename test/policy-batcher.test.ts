// The policy layer's batching queue on its own, with a model stand-in whose calls the test resolves by hand: a lone
// request goes at once; requests that arrive during a call form the next one (up to maxBatch); each gets its own
// result back; a cancelled request leaves the queue; a failed call fails only its own requests; a full queue is
// refused (the server's ServerBusy); a readiness rule holds requests back until it agrees or maxBatch wait; with
// several calls in flight every request goes out on its own at once (the evaluation's remote policy).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Batcher } from '../src/policy/batcher.js';
import { OpenpiError } from '../src/openpi/errors.js';

const CHUNK = 2;

/** A model whose calls wait for the test: `calls[i]` is the i-th call's request ids, `finish(i)` answers it. */
function fakeModel() {
  const calls: { ids: number[]; resolve: (a: Float64Array[]) => void; reject: (e: Error) => void }[] = [];
  const predict = (ids: number[]) => new Promise<Float64Array[]>((resolve, reject) => void calls.push({ ids, resolve, reject }));
  // Request id's result: every value is the id, so a mix-up between rows shows.
  const finish = (i: number) => calls[i].resolve(calls[i].ids.map((id) => new Float64Array(CHUNK * 7).fill(id)));
  return { calls, predict, finish };
}

const req = (id: number) => id;
const busy = (n: number) => new OpenpiError('ServerBusy', `${n} requests are already queued (--max-queue 2); retry later`);
const tick = () => new Promise((r) => setImmediate(r));

test('a lone request goes at once; those arriving meanwhile form the next call, up to maxBatch', async () => {
  const m = fakeModel();
  const b = new Batcher(m.predict, { maxBatch: 3, maxQueue: 10 });
  const first = b.submit(req(1)).result;
  await tick();
  assert.deepEqual(m.calls.map((c) => c.ids), [[1]]);
  const rest = [2, 3, 4, 5].map((id) => b.submit(req(id)).result);
  await tick();
  assert.equal(m.calls.length, 1, 'nothing else is sent while the model is busy');
  assert.equal(b.queued, 4);
  m.finish(0);
  const r1 = await first;
  assert.deepEqual([r1.batchSize, r1.value.length, r1.value[0]], [1, CHUNK * 7, 1]);
  await tick();
  assert.deepEqual(m.calls.map((c) => c.ids), [[1], [2, 3, 4]]);
  m.finish(1);
  await tick();
  assert.deepEqual(m.calls.map((c) => c.ids), [[1], [2, 3, 4], [5]]);
  m.finish(2);
  const rs = await Promise.all(rest);
  assert.deepEqual(rs.map((r) => [r.batchSize, ...new Set(r.value)]), [[3, 2], [3, 3], [3, 4], [1, 5]]);
  assert.deepEqual(b.counts, { calls: 3, requests: 5, maxBatchSeen: 3 });
});

test('a cancelled request leaves the queue; a failed call fails its own requests only; a full queue is ServerBusy', async () => {
  const m = fakeModel();
  const b = new Batcher(m.predict, { maxBatch: 8, maxQueue: 2, full: busy });
  const a = b.submit(req(1)).result;
  await tick();
  const x = b.submit(req(2));
  const y = b.submit(req(3)).result;
  assert.throws(() => b.submit(req(4)), (e: unknown) => e instanceof OpenpiError && e.kind === 'ServerBusy' && /--max-queue 2/.test(e.message));
  x.cancel();
  await assert.rejects(x.result, /cancelled/);
  m.calls[0].reject(new OpenpiError('InferenceFailed', 'the model call failed'));
  await assert.rejects(a, (e: unknown) => e instanceof OpenpiError && e.kind === 'InferenceFailed');
  await tick();
  assert.deepEqual(m.calls.map((c) => c.ids), [[1], [3]], 'the cancelled request was not sent');
  m.finish(1);
  assert.equal((await y).value[0], 3);
});

test('a readiness rule holds requests back until it agrees (or maxBatch wait); several calls in flight send each request alone at once', async () => {
  const m = fakeModel();
  let open = false;
  const b = new Batcher(m.predict, { maxBatch: 3, ready: () => open });
  const r = [1, 2].map((id) => b.submit(req(id)).result);
  await tick();
  assert.equal(m.calls.length, 0, 'the rule says wait');
  open = true;
  b.poke();
  await tick();
  assert.deepEqual(m.calls.map((c) => c.ids), [[1, 2]]);
  m.finish(0);
  await Promise.all(r);
  open = false;
  const full = [3, 4, 5].map((id) => b.submit(req(id)).result);
  await tick();
  assert.deepEqual(m.calls.map((c) => c.ids), [[1, 2], [3, 4, 5]], 'maxBatch waiting: sent whatever the rule says');
  m.finish(1);
  await Promise.all(full);

  const remote = fakeModel();
  const c = new Batcher(remote.predict, { maxBatch: 1, maxInFlight: Infinity });
  const all = [6, 7, 8, 9].map((id) => c.submit(req(id)).result);
  await tick();
  assert.deepEqual(remote.calls.map((x) => x.ids), [[6], [7], [8], [9]], 'all four in flight together');
  [3, 1, 0, 2].forEach((i) => remote.finish(i));
  assert.deepEqual((await Promise.all(all)).map((x) => x.value[0]), [6, 7, 8, 9]);
  assert.deepEqual(c.counts, { calls: 4, requests: 4, maxBatchSeen: 1 });
});
