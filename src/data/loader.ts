// Batches built in worker threads with prefetch. Each worker opens the dataset itself (h5wasm per thread, lazy
// reads) and writes the rows of a batch with LiberoDataset.writeBatch into a pool of batch buffers that travel
// between threads by transfer (ownership moves, nothing is copied or allocated per batch; plain memory, since V8
// copies into SharedArrayBuffers measurably slower). workers: 0 builds batches on the calling thread.
//
// Lifetime: a batch's typed arrays belong to the pool. They stay valid until the next call to next() (which hands
// the buffers back for refilling); copy what must outlive that (cloneBatch), or turn it into tensors first.
import { Worker } from 'node:worker_threads';
import { type Batch, type DatasetOptions, LiberoDataset, resolveDatasetOptions, allocBatch, type SampleId } from './dataset.js';
import { DataError } from './errors.js';
import { EpochSampler, type SamplerOptions } from './sampler.js';

export interface LoaderOptions {
  dataset: DatasetOptions;
  batchSize: number;
  workers?: number;
  /** Batches requested ahead (default 2 per worker, at least 2). */
  prefetch?: number;
  sampler: SamplerOptions;
  /** Resume point (default the start of epoch 0). */
  start?: { epoch: number; position: number };
}

export interface LoadedBatch extends Batch {
  epoch: number;
  position: number;
  /** Where to resume after this batch. */
  next: { epoch: number; position: number };
}

interface Meta {
  ids: SampleId[];
  instruction: string[];
  suite: string[];
  buffers?: Record<string, ArrayBuffer>;
}

const CTOR: Record<(typeof BATCH_ARRAYS)[number], new (b: ArrayBuffer) => ArrayBufferView> = {
  state: Float32Array, stateMask: Float32Array, actionSlotMask: Float32Array, elemMask: Float32Array, images: Uint8Array,
  imageMask: Uint8Array, ctrlFreq: Float32Array, actions: Float32Array, actionMask: Float32Array, index: Float64Array,
};

/** Re-wraps a batch's typed arrays over the given buffers (after they were transferred). */
export function wrapBuffers(b: Batch, buffers: Record<string, ArrayBuffer>): void {
  for (const k of BATCH_ARRAYS) (b as unknown as Record<string, unknown>)[k] = new CTOR[k](buffers[k]);
}

export function batchBuffers(b: Batch): Record<string, ArrayBuffer> {
  return Object.fromEntries(BATCH_ARRAYS.map((k) => [k, b[k].buffer as ArrayBuffer]));
}

interface Pending {
  epoch: number;
  position: number;
  next: { epoch: number; position: number };
  slot: number;
  promise: Promise<Meta>;
}

/** The typed-array fields of a Batch, in a fixed order. */
export const BATCH_ARRAYS = ['state', 'stateMask', 'actionSlotMask', 'elemMask', 'images', 'imageMask', 'ctrlFreq', 'actions', 'actionMask', 'index'] as const;

/** A deep copy of a batch that owns its memory. */
export function cloneBatch<T extends Batch>(b: T): T {
  const c = { ...b, ids: [...b.ids], instruction: [...b.instruction], suite: [...b.suite] } as T;
  for (const k of BATCH_ARRAYS) (c as unknown as Record<string, unknown>)[k] = (b[k] as Float32Array).slice();
  return c;
}

export class DataLoader {
  readonly dataset: LiberoDataset;
  readonly sampler: EpochSampler;
  readonly batchSize: number;
  private workers: Worker[] = [];
  private waiting = new Map<number, { resolve(m: Meta): void; reject(e: Error, m?: Meta): void }>();
  private queue: Pending[] = [];
  private slots: Batch[] = [];
  private free: number[] = [];
  private held: number | null = null;
  private cursor: { epoch: number; position: number };
  private nextId = 0;
  /** Requests not yet handed to a worker, and each worker's requests in flight (work goes to the least busy). */
  private backlog: { id: number; indices: number[]; buffers: Record<string, ArrayBuffer> }[] = [];
  private inflight: number[] = [];
  private prefetch: number;
  private closed = false;
  private failure: Error | null = null;

  private constructor(ds: LiberoDataset, o: LoaderOptions) {
    this.dataset = ds;
    this.batchSize = o.batchSize;
    const ranges = ds.index.suiteRanges(ds.suites.length).map(([start, end], k) => ({ name: ds.suites[k], start, end }));
    this.sampler = new EpochSampler(ranges, o.sampler);
    this.cursor = { ...(o.start ?? { epoch: 0, position: 0 }) };
    this.prefetch = Math.max(2, o.prefetch ?? 2 * (o.workers ?? 0));
    // prefetch batches in flight + the one the consumer holds
    for (let s = 0; s <= this.prefetch; s++) {
      this.slots.push(allocBatch(ds.cfg, o.batchSize));
      this.free.push(s);
    }
  }

  static async create(o: LoaderOptions): Promise<DataLoader> {
    if (!(o.batchSize >= 1)) throw new Error(`loader: batchSize must be >= 1, got ${o.batchSize}`);
    const ds = await LiberoDataset.open(o.dataset);
    const n = o.workers ?? 0;
    const dl = new DataLoader(ds, o);
    if (n === 0) ds.prepare();
    const options = resolveDatasetOptions(o.dataset);
    try {
      await Promise.all(
        Array.from({ length: n }, () => {
          const w = new Worker(new URL('./loader_worker.js', import.meta.url), { workerData: { options, batchSize: o.batchSize, total: ds.size } });
          dl.workers.push(w);
          return new Promise<void>((resolve, reject) => {
            w.once('error', reject);
            const wi = dl.workers.length - 1;
            dl.inflight.push(0);
            w.on('message', (m: { type: string; id?: number; meta?: Meta; message?: string }) => {
              if (m.type === 'ready') return resolve();
              dl.inflight[wi]--;
              dl.dispatch();
              const h = dl.waiting.get(m.id!);
              if (!h) return;
              dl.waiting.delete(m.id!);
              if (m.type === 'done') h.resolve(m.meta!);
              else h.reject(new DataError(m.message ?? 'worker failed'), m.meta);
            });
          });
        }),
      );
    } catch (e) {
      await dl.close();
      throw e;
    }
    for (const w of dl.workers)
      w.on('error', (e) => {
        dl.failure = e;
        for (const h of dl.waiting.values()) h.reject(e);
        dl.waiting.clear();
      });
    return dl;
  }

  /** Global batches per epoch (each rank's batch is one block of one; the last may straddle into the next epoch). */
  get batchesPerEpoch(): number {
    return Math.ceil(this.sampler.epochLength / (this.batchSize * this.sampler.worldSize));
  }

  private build(slot: number, indices: number[]): Promise<Meta> {
    const b = this.slots[slot];
    if (!this.workers.length)
      return this.dataset.writeBatch(indices, b).then(() => ({ ids: b.ids.slice(), instruction: b.instruction.slice(), suite: b.suite.slice() }));
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise<Meta>((resolve, reject) => {
      this.waiting.set(id, {
        resolve: (m) => {
          wrapBuffers(b, m.buffers!);
          // the string fields are derived here from the indices (nothing but buffers crosses the thread boundary)
          const metas = indices.map((i) => this.dataset.meta(i));
          resolve({ ids: metas.map((x) => x.id), instruction: metas.map((x) => x.instruction), suite: metas.map((x) => x.suite) });
        },
        reject: (e, m) => {
          if (m?.buffers) wrapBuffers(b, m.buffers);
          reject(e);
        },
      });
      this.backlog.push({ id, indices, buffers: batchBuffers(b) });
      this.dispatch();
    });
  }

  /** Hands waiting requests to the least busy workers (at most 2 in flight each). */
  private dispatch(): void {
    while (this.backlog.length) {
      let best = -1;
      for (let i = 0; i < this.workers.length; i++) if (this.inflight[i] < 2 && (best < 0 || this.inflight[i] < this.inflight[best])) best = i;
      if (best < 0) return;
      const r = this.backlog.shift()!;
      this.inflight[best]++;
      this.workers[best].postMessage({ type: 'batch', id: r.id, indices: r.indices, buffers: r.buffers }, Object.values(r.buffers));
    }
  }

  private fill(): void {
    while (this.queue.length < this.prefetch && this.free.length) {
      const slot = this.free.shift()!;
      const { indices, next } = this.sampler.take(this.cursor, this.batchSize);
      const p: Pending = { ...this.cursor, next, slot, promise: this.build(slot, indices) };
      p.promise.catch(() => undefined); // surfaced when awaited in next()
      this.queue.push(p);
      this.cursor = next;
    }
  }

  /**
   * The next batch of the stream (endless: epochs follow each other). Its arrays are valid until the next call
   * to next(); the previous batch's buffers are reused from this call on.
   */
  async next(): Promise<LoadedBatch> {
    if (this.closed) throw new Error('loader is closed');
    if (this.held !== null) {
      this.free.push(this.held);
      this.held = null;
    }
    this.fill();
    const p = this.queue.shift()!;
    const meta = await p.promise;
    this.held = p.slot;
    this.fill();
    const b = this.slots[p.slot];
    return { ...b, ids: meta.ids, instruction: meta.instruction, suite: meta.suite, epoch: p.epoch, position: p.position, next: p.next };
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.workers.map((w) => w.terminate()));
    this.workers = [];
    this.dataset.close();
  }
}
