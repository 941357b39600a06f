// A loader worker: opens the dataset in this thread and builds the batches it is asked for.
import { parentPort, workerData } from 'node:worker_threads';
import { LiberoDataset, allocBatch, type ResolvedDatasetOptions } from './dataset.js';
import { batchBuffers } from './loader.js';

const port = parentPort!;
const ds = await LiberoDataset.open((workerData as { options: ResolvedDatasetOptions }).options);
port.on('message', (m: { type: string; id: number; indices: number[] }) => {
  if (m.type !== 'batch') return;
  try {
    const b = allocBatch(ds.cfg, m.indices.length);
    m.indices.forEach((i, r) => ds.writeSample(i, b, r));
    port.postMessage({ type: 'batch', id: m.id, batch: b }, batchBuffers(b));
  } catch (e) {
    port.postMessage({ type: 'error', id: m.id, message: (e as Error).message });
  }
});
port.postMessage({ type: 'ready' });
