# pyarrow + PyAV reference for the LeRobot case of `npm run bench:data`: per sample, what LeRobotDataset does with the
# PyAV backend (src/lerobot/datasets/dataset_reader.py and video_utils.decode_video_frames_pyav at 7427f31): the
# low-dim rows from the parquet data (loaded once per process, as the memory-mapped HF dataset serves them), the
# 64-step action chunk, and for each of 2 cameras the 2 history frames decoded by seeking to the keyframe before
# the first timestamp and decoding forward, nearest frame within tolerance_s. Runs `workers` processes, like
# LeRobot's DataLoader workers, each on its share of the same sample list. With one_thread in the request, each
# process decodes and converts with one thread (stream.thread_count = 1, to_ndarray threads=1), as our workers do;
# without it PyAV uses its defaults (thread_count 0: as many threads as libdav1d and swscale pick for the cores).
import json, sys
import av
import numpy as np
import pyarrow.parquet as pq
from py_rounds import timed, run_workers

def work(args):
    root, samples, warm, budget, one_thread = args
    eps = {r['episode_index']: r for r in pq.read_table(f'{root}/meta/episodes/chunk-000/file-000.parquet').to_pylist()}
    info = json.load(open(f'{root}/meta/info.json'))
    data = {}
    keys = ['observation.images.image', 'observation.images.image2']
    def rows(e):
        r = eps[e]
        p = f"{root}/" + info['data_path'].format(chunk_index=r['data/chunk_index'], file_index=r['data/file_index'])
        if p not in data:
            t = pq.read_table(p, columns=['observation.state', 'action', 'timestamp', 'episode_index'])
            data[p] = (np.array(t.column('observation.state').to_pylist(), np.float32), np.array(t.column('action').to_pylist(), np.float32),
                       t.column('timestamp').to_numpy(), t.column('episode_index').to_numpy())
        st, ac, ts, ei = data[p]
        s0 = int(np.searchsorted(ei, e))
        return st, ac, ts, s0, r['length']
    def one(e, t, a):
        st, ac, ts, s0, n = rows(e)
        chunk = ac[s0 + a:s0 + min(a + 64, n)]
        state = st[s0 + t]
        out = chunk.size + state.size
        q = [float(ts[s0 + max(t - 1, 0)]), float(ts[s0 + t])]
        r = eps[e]
        for k in keys:
            path = f"{root}/" + info['video_path'].format(video_key=k, chunk_index=r[f'videos/{k}/chunk_index'], file_index=r[f'videos/{k}/file_index'])
            qq = [r[f'videos/{k}/from_timestamp'] + x for x in q]
            with av.open(path) as c:
                s = c.streams.video[0]
                if one_thread:
                    s.thread_count = 1
                c.seek(round(min(qq) / s.time_base) - 1, backward=True, any_frame=False, stream=s)
                got, times = [], []
                for f in c.decode(s):
                    tt = float(f.pts * s.time_base)
                    got.append(f.to_ndarray(format='rgb24', threads=1) if one_thread else f.to_ndarray(format='rgb24')); times.append(tt)
                    if tt >= max(qq): break
            for x in qq:
                d = np.abs(np.array(times) - x)
                assert d.min() <= 1e-4
                out += got[int(d.argmin())].size
        return out
    return timed(one, samples, warm, budget)

if __name__ == '__main__':
    req = json.load(open(sys.argv[1]))
    W = max(1, req['workers'])
    shares = [(req['root'], req['samples'][i::W], req['warmup'], req['seconds'], req.get('one_thread', False)) for i in range(W)]
    run_workers(work, shares)
