// Batches built in worker threads with prefetch. Each worker opens the dataset itself (h5wasm per thread, lazy
// reads), builds the rows of a batch with LiberoDataset.writeSample and hands the typed arrays back without
// copying (transfer). workers: 0 builds batches on the calling thread (tests, debugging).
import { Worker } from 'node:worker_threads';
import { type Batch, type DatasetOptions, LiberoDataset, resolveDatasetOptions, type ResolvedDatasetOptions, allocBatch } from './dataset.js';
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

interface Pending {
  epoch: number;
  position: number;
  next: { epoch: number; position: number };
  promise: Promise<Batch>;
}

/** Typed arrays of a batch, to transfer across threads. */
export function batchBuffers(b: Batch): ArrayBuffer[] {
  return [b.state, b.stateMask, b.actionSlotMask, b.elemMask, b.images, b.imageMask, b.ctrlFreq, b.actions, b.actionMask, b.index].map((a) => a.buffer as ArrayBuffer);
}

export class DataLoader {
  readonly dataset: LiberoDataset;
  readonly sampler: EpochSampler;
  readonly batchSize: number;
  private readonly opts: ResolvedDatasetOptions;
  private workers: Worker[] = [];
  private waiting = new Map<number, { resolve(b: Batch): void; reject(e: Error): void }>();
  private queue: Pending[] = [];
  private cursor: { epoch: number; position: number };
  private nextId = 0;
  private rr = 0;
  private prefetch: number;
  private closed = false;

  private constructor(ds: LiberoDataset, o: LoaderOptions) {
    this.dataset = ds;
    this.opts = ds.options;
    this.batchSize = o.batchSize;
    const ranges = ds.index.suiteRanges(ds.suites.length).map(([start, end], k) => ({ name: ds.suites[k], start, end }));
    this.sampler = new EpochSampler(ranges, o.sampler);
    this.cursor = { ...(o.start ?? { epoch: 0, position: 0 }) };
    this.prefetch = Math.max(2, o.prefetch ?? 2 * (o.workers ?? 0));
  }

  static async create(o: LoaderOptions): Promise<DataLoader> {
    if (!(o.batchSize >= 1)) throw new Error(`loader: batchSize must be >= 1, got ${o.batchSize}`);
    const ds = await LiberoDataset.open(o.dataset);
    const dl = new DataLoader(ds, o);
    const n = o.workers ?? 0;
    const opts = resolveDatasetOptions(o.dataset);
    await Promise.all(
      Array.from({ length: n }, () => {
        const w = new Worker(new URL('./loader_worker.js', import.meta.url), { workerData: { options: opts } });
        dl.workers.push(w);
        return new Promise<void>((resolve, reject) => {
          w.once('error', reject);
          w.on('message', (m: { type: string; id?: number; batch?: Batch; message?: string }) => {
            if (m.type === 'ready') return resolve();
            const h = dl.waiting.get(m.id!);
            if (!h) return;
            dl.waiting.delete(m.id!);
            if (m.type === 'batch') h.resolve(m.batch!);
            else h.reject(new DataError(m.message ?? 'worker failed'));
          });
        });
      }),
    );
    for (const w of dl.workers)
      w.on('error', (e) => {
        for (const h of dl.waiting.values()) h.reject(e);
        dl.waiting.clear();
      });
    return dl;
  }

  /** Batches per epoch on this rank (the last one may straddle into the next epoch). */
  get batchesPerEpoch(): number {
    return Math.ceil(this.sampler.epochLength / this.batchSize);
  }

  private build(indices: number[]): Promise<Batch> {
    if (!this.workers.length) {
      const b = allocBatch(this.dataset.cfg, indices.length);
      try {
        indices.forEach((i, r) => this.dataset.writeSample(i, b, r));
      } catch (e) {
        return Promise.reject(e);
      }
      return Promise.resolve(b);
    }
    const id = this.nextId++;
    const w = this.workers[this.rr++ % this.workers.length];
    return new Promise<Batch>((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      w.postMessage({ type: 'batch', id, indices });
    });
  }

  private fill(): void {
    while (this.queue.length < this.prefetch) {
      const { indices, next } = this.sampler.take(this.cursor, this.batchSize);
      const p: Pending = { ...this.cursor, next, promise: this.build(indices) };
      p.promise.catch(() => undefined); // surfaced when awaited in next()
      this.queue.push(p);
      this.cursor = next;
    }
  }

  /** The next batch of the stream (endless: epochs follow each other). */
  async next(): Promise<LoadedBatch> {
    if (this.closed) throw new Error('loader is closed');
    this.fill();
    const p = this.queue.shift()!;
    const b = await p.promise;
    this.fill();
    return Object.assign(b, { epoch: p.epoch, position: p.position, next: p.next });
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.workers.map((w) => w.terminate()));
    this.workers = [];
    this.dataset.close();
  }
}
