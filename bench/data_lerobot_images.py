# Reference for the LeRobot images-in-parquet case of `npm run bench:data -- --lr-images`: what LeRobotDataset does
# for a v3.0 dataset whose camera frames are PNG bytes in the parquet (HuggingFaceVLA/libero's layout). LeRobot
# (src/lerobot/datasets/io_utils.py load_nested_dataset at 7427f31) loads the data files with
# datasets.Dataset.from_parquet, which converts them once into memory-mapped Arrow files in its cache; a sample is
# then rows of that table and PIL decodes the PNGs (the `datasets` Image feature). Here pyarrow does the same without
# the `datasets` package: each data file converted once to an Arrow IPC file (timed, like LeRobot's first load),
# memory-mapped by every process; per sample the state row, the 64-step action chunk and, for 2 cameras, the 2
# history frames decoded by PIL. Runs `workers` processes, each on its share of the same sample list.
import io, json, os, sys, time
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from py_rounds import timed, run_workers
from PIL import Image

KEYS = ['observation.images.image', 'observation.images.image2']


def convert(root, cache):
    """Each data parquet to an Arrow IPC file (uncompressed, memory-mappable), once."""
    os.makedirs(cache, exist_ok=True)
    t0 = time.perf_counter()
    for d in sorted(os.listdir(f'{root}/data')):
        for f in sorted(os.listdir(f'{root}/data/{d}')):
            out = f'{cache}/{d}-{f}.arrow'
            if os.path.exists(out):
                continue
            t = pq.read_table(f'{root}/data/{d}/{f}')
            with pa.OSFile(out + '.tmp', 'wb') as sink, pa.ipc.new_file(sink, t.schema) as w:
                w.write_table(t)
            os.replace(out + '.tmp', out)
    return time.perf_counter() - t0


def work(args):
    root, cache, samples, warm, budget = args
    eps = {r['episode_index']: r for r in pq.read_table(f'{root}/meta/episodes/chunk-000/file-000.parquet').to_pylist()}
    first = {}
    for r in eps.values():
        k = (r['data/chunk_index'], r['data/file_index'])
        first[k] = min(first.get(k, r['dataset_from_index']), r['dataset_from_index'])
    tables = {}

    def table(r):
        k = (r['data/chunk_index'], r['data/file_index'])
        if k not in tables:
            src = pa.memory_map(f'{cache}/chunk-{k[0]:03d}-file-{k[1]:03d}.parquet.arrow')
            t = pa.ipc.open_file(src).read_all()
            tables[k] = (t, t.column('observation.state'), t.column('action'), [t.column(c) for c in KEYS])
        return tables[k], r['dataset_from_index'] - first[k]

    def one(e, t, a):
        r = eps[e]
        (tab, st, ac, cams), s0 = table(r)
        n = r['length']
        state = np.asarray(st[s0 + t].as_py(), np.float32)
        chunk = np.asarray([ac[s0 + i].as_py() for i in range(a, min(a + 64, n))], np.float32)
        out = state.size + chunk.size
        for col in cams:
            for tt in (max(t - 1, 0), t):
                img = np.asarray(Image.open(io.BytesIO(col[s0 + tt]['bytes'].as_py())).convert('RGB'))
                out += img.size
        return out

    return timed(one, samples, warm, budget)


if __name__ == '__main__':
    req = json.load(open(sys.argv[1]))
    conv = convert(req['root'], req['cache'])
    W = max(1, req['workers'])
    shares = [(req['root'], req['cache'], req['samples'][i::W], req['warmup'], req['seconds']) for i in range(W)]
    run_workers(work, shares, convert_seconds=conv)
