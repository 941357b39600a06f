// A loader worker: opens the dataset in this thread and fills the batch buffers it is handed (by transfer),
// then hands them back.
import { parentPort, workerData } from 'node:worker_threads';
import { type Batch, LiberoDataset, type ResolvedDatasetOptions } from './dataset.js';
import { batchBuffers, wrapBuffers } from './loader.js';

const wd = workerData as { options: ResolvedDatasetOptions; batchSize: number; total: number };
const port = parentPort!;
const ds = await LiberoDataset.open(wd.options);
if (ds.size !== wd.total)
  throw new Error(`loader worker: the dataset changed while opening (${ds.size} steps here, ${wd.total} on the main thread); restart the run`);
ds.prepare();
const B = wd.batchSize;
const shell = {
  size: B, historySize: ds.cfg.historySize, height: ds.cfg.imageHeight, width: ds.cfg.imageWidth, chunkSize: ds.cfg.chunkSize,
} as Batch;
port.on('message', async (m: { type: string; id: number; indices: number[]; buffers: Record<string, ArrayBuffer> }) => {
  if (m.type !== 'batch') return;
  const b: Batch = { ...shell, instruction: new Array<string>(B).fill(''), suite: new Array<string>(B).fill(''), ids: new Array(B) };
  wrapBuffers(b, m.buffers);
  try {
    await ds.writeBatch(m.indices, b);
    port.postMessage({ type: 'done', id: m.id, meta: { buffers: m.buffers } }, Object.values(m.buffers));
  } catch (e) {
    port.postMessage({ type: 'error', id: m.id, message: (e as Error).message, meta: { buffers: m.buffers } }, Object.values(batchBuffers(b)));
  }
});
port.postMessage({ type: 'ready' });
