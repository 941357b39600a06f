"""Write a LeRobot-format copy of a regenerated (OpenVLA no-noops) LIBERO HDF5 suite, laid out on disk the way
the producers lay out theirs. Used by the tests and the data bench; written from the producers' code, not copied:

- openpi examples/libero/convert_libero_data_to_lerobot.py (commit 15a9616): features image, wrist_image
  (dtype image, 256x256x3), state (float32 (8,)), actions (float32 (7,)), fps 10, robot_type panda, one
  episode per demo, task = the language instruction. Its RLDS input (OpenVLA's regeneration) stores the frames
  rotated 180 degrees ([::-1, ::-1]) and state = concat(ee_states, gripper_states).
- LeRobot at commit 0cf8648 (the one openpi pins), codebase v2.1: lerobot/common/datasets/utils.py and
  lerobot_dataset.py: meta/info.json, meta/episodes.jsonl, meta/tasks.jsonl, meta/episodes_stats.jsonl,
  data/chunk-{chunk:03d}/episode_{index:06d}.parquet, videos/chunk-{chunk:03d}/{key}/episode_{index:06d}.mp4,
  timestamp = frame_index / fps, image columns as the `datasets` Image struct {bytes: PNG, path} written in row
  groups of 100 rows (datasets' row-group size for image datasets), videos by PyAV with libsvtav1, g=2, crf=30,
  yuv420p (video_utils.encode_video_frames defaults).
- LeRobot at commit 7427f31 (HEAD of src/lerobot/datasets), codebase v3.0: dataset_metadata.py, utils.py,
  io_utils.py, dataset_writer.py and scripts/convert_dataset_v21_to_v30.py: meta/tasks.parquet (task_index with
  the task string as pandas index), meta/episodes/chunk-000/file-000.parquet (one row per episode with
  data/chunk_index, data/file_index, dataset_from_index, dataset_to_index, videos/{key}/chunk_index,
  videos/{key}/file_index, videos/{key}/from_timestamp, videos/{key}/to_timestamp, tasks, length, stats/...),
  meta/stats.json, data/chunk-{c:03d}/file-{f:03d}.parquet with episodes concatenated, and per camera
  videos/{key}/chunk-{c:03d}/file-{f:03d}.mp4 with the episodes' videos concatenated by stream copy, each
  episode's from_timestamp the sum of the previous episodes' durations in that file.

usage: lerobot_from_hdf5.py SUITE_DIR OUT_DIR --version v2.1|v3.0 --cameras video|image --names openpi|lerobot
       [--codec libsvtav1|libx264] [--fps 10] [--episodes-per-file N] [--row-groups episode|file] [--png-noise S]

--png-noise S (bench only) adds seeded noise of +-S levels to every frame before PNG encoding, so that PNG sizes are
those of real 256x256 LIBERO renders (S=12: ~130 KB, as HuggingFaceVLA/libero's 69.9 GB for 273,465 rows of two
images implies) instead of the synthetic frames' ~1 KB; the images then differ from the HDF5 suite's.
"""
import argparse, io, json, os, re, shutil, tempfile
from fractions import Fraction

import av
import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

NAMES = {
    'openpi': {'image': 'image', 'wrist': 'wrist_image', 'state': 'state', 'action': 'actions'},
    'lerobot': {'image': 'observation.images.image', 'wrist': 'observation.images.image2', 'state': 'observation.state', 'action': 'action'},
}


def instruction_from_filename(path):
    # LIBERO's grab_language_from_filename (Task.language): drop up to SCENEn_, underscores to spaces.
    stem = os.path.basename(path)[: -len('_demo.hdf5')]
    m = re.search(r'SCENE\d+_', stem)
    if m:
        stem = stem[m.end():]
    return stem.replace('_', ' ')


def read_suite(suite_dir):
    eps = []
    for f in sorted(x for x in os.listdir(suite_dir) if x.endswith('.hdf5')):
        path = os.path.join(suite_dir, f)
        task = instruction_from_filename(path)
        with h5py.File(path, 'r') as h:
            demos = sorted(h['data'].keys(), key=lambda d: int(d.split('_')[1]))
            for d in demos:
                g = h['data'][d]
                o = g['obs']
                ee = np.concatenate([o['ee_pos'][:], o['ee_ori'][:]], axis=1) if 'ee_pos' in o else o['ee_states'][:]
                eps.append({
                    'task': task,
                    # OpenVLA's regeneration rotates the frames 180 degrees for RLDS; openpi copies them as they are.
                    'image': np.ascontiguousarray(o['agentview_rgb'][:][:, ::-1, ::-1]),
                    'wrist': np.ascontiguousarray(o['eye_in_hand_rgb'][:][:, ::-1, ::-1]),
                    'state': np.concatenate([ee, o['gripper_states'][:]], axis=1).astype(np.float32),
                    'action': g['actions'][:].astype(np.float32),
                })
    return eps


PNG_NOISE = {'s': 0, 'rng': np.random.default_rng(0)}


def png_bytes(img):
    if PNG_NOISE['s']:
        S = PNG_NOISE['s']
        img = np.clip(img.astype(np.int16) + PNG_NOISE['rng'].integers(-S, S + 1, img.shape), 0, 255).astype(np.uint8)
    b = io.BytesIO()
    Image.fromarray(img).save(b, format='PNG')
    return b.getvalue()


def encode_video(frames, path, fps, codec):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with av.open(path, 'w') as out:
        s = out.add_stream(codec, fps, options={'g': '2', 'crf': '30' if codec == 'libsvtav1' else '23'})
        s.pix_fmt = 'yuv420p'
        s.width = frames.shape[2]
        s.height = frames.shape[1]
        for fr in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(fr, format='rgb24')):
                out.mux(p)
        for p in s.encode():
            out.mux(p)


def video_duration(path):
    # LeRobot's get_video_duration_in_s: stream.duration * time_base.
    with av.open(path) as c:
        st = c.streams.video[0]
        return float(st.duration * st.time_base)


def concat_videos(paths, out_path):
    # As LeRobot's concatenate_video_files: the ffconcat demuxer, packets remuxed without re-encoding.
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    with tempfile.NamedTemporaryFile('w', suffix='.ffconcat', delete=False) as f:
        f.write('ffconcat version 1.0\n')
        for p in paths:
            f.write(f"file '{os.path.abspath(p)}'\n")
        lst = f.name
    src = av.open(lst, 'r', format='concat', options={'safe': '0'})
    dst = av.open(out_path, 'w', options={'movflags': 'faststart'})
    ins = src.streams.video[0]
    outs = dst.add_stream_from_template(template=ins, opaque=True)
    outs.time_base = ins.time_base
    for pkt in src.demux(ins):
        if pkt.dts is None:
            continue
        pkt.stream = outs
        dst.mux(pkt)
    src.close()
    dst.close()
    os.unlink(lst)


def video_info(path, fps):
    with av.open(path) as c:
        st = c.streams.video[0]
        return {'video.height': st.height, 'video.width': st.width, 'video.codec': st.codec_context.name,
                'video.pix_fmt': st.pix_fmt, 'video.is_depth_map': False, 'video.fps': fps, 'video.channels': 3,
                'has_audio': False}


def feature_stats(x):
    x = np.asarray(x, dtype=np.float64)
    return {'min': x.min(0).tolist(), 'max': x.max(0).tolist(), 'mean': x.mean(0).tolist(), 'std': x.std(0).tolist(), 'count': [len(x)]}


def image_stats(frames):
    x = frames.astype(np.float64) / 255.0
    per = lambda f: [[[v]] for v in f((0, 1, 2)).tolist()]
    return {'min': per(lambda a: x.min(a)), 'max': per(lambda a: x.max(a)), 'mean': per(lambda a: x.mean(a)),
            'std': per(lambda a: x.std(a)), 'count': [len(frames)]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('suite_dir')
    ap.add_argument('out')
    ap.add_argument('--version', choices=['v2.1', 'v3.0'], required=True)
    ap.add_argument('--cameras', choices=['video', 'image'], required=True)
    ap.add_argument('--names', choices=list(NAMES), required=True)
    ap.add_argument('--codec', default='libsvtav1')
    ap.add_argument('--fps', type=int, default=10)
    ap.add_argument('--episodes-per-file', type=int, default=1000000)
    ap.add_argument('--row-groups', choices=['episode', 'file'], default='episode')
    ap.add_argument('--png-noise', type=int, default=0)
    a = ap.parse_args()
    PNG_NOISE['s'] = a.png_noise
    n = NAMES[a.names]
    eps = read_suite(a.suite_dir)
    if os.path.exists(a.out):
        shutil.rmtree(a.out)
    os.makedirs(os.path.join(a.out, 'meta'))
    H, W = eps[0]['image'].shape[1:3]
    tasks = []
    for e in eps:
        if e['task'] not in tasks:
            tasks.append(e['task'])
    video = a.cameras == 'video'
    cam = {'video': 'video', 'image': 'image'}[a.cameras]
    features = {
        n['image']: {'dtype': cam, 'shape': [H, W, 3], 'names': ['height', 'width', 'channel']},
        n['wrist']: {'dtype': cam, 'shape': [H, W, 3], 'names': ['height', 'width', 'channel']},
        n['state']: {'dtype': 'float32', 'shape': [8], 'names': ['state']},
        n['action']: {'dtype': 'float32', 'shape': [7], 'names': ['actions']},
        'timestamp': {'dtype': 'float32', 'shape': [1], 'names': None},
        'frame_index': {'dtype': 'int64', 'shape': [1], 'names': None},
        'episode_index': {'dtype': 'int64', 'shape': [1], 'names': None},
        'index': {'dtype': 'int64', 'shape': [1], 'names': None},
        'task_index': {'dtype': 'int64', 'shape': [1], 'names': None},
    }
    # Arrow types as `datasets` gives them: Image() a struct, Sequence(length=k) a fixed-size list.
    img_t = pa.struct([('bytes', pa.binary()), ('path', pa.string())])
    fields = []
    hf = {}
    for k, ft in features.items():
        if ft['dtype'] == 'video':
            continue
        if ft['dtype'] == 'image':
            fields.append(pa.field(k, img_t))
            hf[k] = {'_type': 'Image'}
        elif ft['shape'] == [1]:
            fields.append(pa.field(k, pa.float32() if ft['dtype'] == 'float32' else pa.int64()))
            hf[k] = {'dtype': ft['dtype'], '_type': 'Value'}
        else:
            fields.append(pa.field(k, pa.list_(pa.float32(), ft['shape'][0])))
            hf[k] = {'feature': {'dtype': 'float32', '_type': 'Value'}, 'length': ft['shape'][0], '_type': 'Sequence'}
    schema = pa.schema(fields, metadata={'huggingface': json.dumps({'info': {'features': hf}})})

    def episode_table(e, ei, start):
        T = len(e['action'])
        cols = {}
        for k in features:
            if features[k]['dtype'] == 'video':
                continue
            if k in (n['image'], n['wrist']):
                src = e['image'] if k == n['image'] else e['wrist']
                cols[k] = [{'bytes': png_bytes(src[t]), 'path': f'frame_{t:06d}.png'} for t in range(T)]
        cols[n['state']] = list(e['state'])
        cols[n['action']] = list(e['action'])
        cols['timestamp'] = (np.arange(T) / a.fps).astype(np.float32)
        cols['frame_index'] = np.arange(T)
        cols['episode_index'] = np.full(T, ei)
        cols['index'] = np.arange(start, start + T)
        cols['task_index'] = np.full(T, tasks.index(e['task']))
        return pa.table({f.name: pa.array(cols[f.name], type=f.type) for f in fields}, schema=schema)

    info = {'codebase_version': a.version, 'robot_type': 'panda', 'total_episodes': len(eps),
            'total_frames': int(sum(len(e['action']) for e in eps)), 'total_tasks': len(tasks)}
    ep_stats = []
    for e in eps:
        st = {n['state']: feature_stats(e['state']), n['action']: feature_stats(e['action'])}
        st[n['image']] = image_stats(e['image'])
        st[n['wrist']] = image_stats(e['wrist'])
        ep_stats.append(st)
    tmp = tempfile.mkdtemp()
    if a.version == 'v2.1':
        info.update({'total_videos': 2 * len(eps) if video else 0, 'total_chunks': (len(eps) - 1) // 1000 + 1,
                     'chunks_size': 1000, 'fps': a.fps, 'splits': {'train': f'0:{len(eps)}'},
                     'data_path': 'data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet',
                     'video_path': 'videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4' if video else None,
                     'features': features})
        start = 0
        with open(os.path.join(a.out, 'meta', 'episodes.jsonl'), 'w') as fe, open(os.path.join(a.out, 'meta', 'episodes_stats.jsonl'), 'w') as fs:
            for ei, e in enumerate(eps):
                T = len(e['action'])
                p = os.path.join(a.out, f'data/chunk-{ei // 1000:03d}/episode_{ei:06d}.parquet')
                os.makedirs(os.path.dirname(p), exist_ok=True)
                pq.write_table(episode_table(e, ei, start), p, row_group_size=100 if not video else 100000)
                if video:
                    for key, src in ((n['image'], e['image']), (n['wrist'], e['wrist'])):
                        encode_video(src, os.path.join(a.out, f'videos/chunk-{ei // 1000:03d}/{key}/episode_{ei:06d}.mp4'), a.fps, a.codec)
                fe.write(json.dumps({'episode_index': ei, 'tasks': [e['task']], 'length': T}) + '\n')
                fs.write(json.dumps({'episode_index': ei, 'stats': ep_stats[ei]}) + '\n')
                start += T
        with open(os.path.join(a.out, 'meta', 'tasks.jsonl'), 'w') as ft:
            for ti, t in enumerate(tasks):
                ft.write(json.dumps({'task_index': ti, 'task': t}) + '\n')
        if video:
            for key in (n['image'], n['wrist']):
                features[key]['info'] = video_info(os.path.join(a.out, f'videos/chunk-000/{key}/episode_000000.mp4'), a.fps)
    else:
        info.update({'chunks_size': 1000, 'data_files_size_in_mb': 100, 'video_files_size_in_mb': 200, 'fps': a.fps,
                     'splits': {'train': f'0:{len(eps)}'},
                     'data_path': 'data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet',
                     'video_path': 'videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4' if video else None,
                     'features': features})
        for k, ft in features.items():
            if ft['dtype'] != 'video':
                ft['fps'] = a.fps
        rows = []
        start = 0
        groups = [list(range(i, min(i + a.episodes_per_file, len(eps)))) for i in range(0, len(eps), a.episodes_per_file)]
        for fi, group in enumerate(groups):
            p = os.path.join(a.out, f'data/chunk-000/file-{fi:03d}.parquet')
            os.makedirs(os.path.dirname(p), exist_ok=True)
            tables = []
            for ei in group:
                T = len(eps[ei]['action'])
                tables.append(episode_table(eps[ei], ei, start))
                rows.append({'episode_index': ei, 'tasks': [eps[ei]['task']], 'length': T, 'data/chunk_index': 0,
                             'data/file_index': fi, 'dataset_from_index': start, 'dataset_to_index': start + T})
                start += T
            if a.row_groups == 'episode':
                # dataset_writer.py / io_utils.write_table_one_row_group_per_episode: one row group per episode.
                with pq.ParquetWriter(p, schema, compression='snappy', use_dictionary=True) as w:
                    for t in tables:
                        w.write_table(t)
            else:
                # convert_dataset_v21_to_v30.concat_data_files: pandas to_parquet, one table for the file.
                pq.write_table(pa.concat_tables(tables), p)
            if video:
                for key, attr in ((n['image'], 'image'), (n['wrist'], 'wrist')):
                    parts = []
                    t0 = 0.0
                    for ei in group:
                        part = os.path.join(tmp, f'{attr}_{ei}.mp4')
                        encode_video(eps[ei][attr], part, a.fps, a.codec)
                        d = video_duration(part)
                        rows[ei].update({f'videos/{key}/chunk_index': 0, f'videos/{key}/file_index': fi,
                                         f'videos/{key}/from_timestamp': t0, f'videos/{key}/to_timestamp': t0 + d})
                        t0 += d
                        parts.append(part)
                    concat_videos(parts, os.path.join(a.out, f'videos/{key}/chunk-000/file-{fi:03d}.mp4'))
        for ei, r in enumerate(rows):
            for feat, st in ep_stats[ei].items():
                for s, v in st.items():
                    r[f'stats/{feat}/{s}'] = np.asarray(v, dtype=np.float64).ravel().tolist() if s != 'count' else v
            r['meta/episodes/chunk_index'] = 0
            r['meta/episodes/file_index'] = 0
        p = os.path.join(a.out, 'meta/episodes/chunk-000/file-000.parquet')
        os.makedirs(os.path.dirname(p), exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows), p)
        pq.write_table(pa.table({'task_index': pa.array(range(len(tasks)), pa.int64()), 'task': pa.array(tasks, pa.string())}),
                       os.path.join(a.out, 'meta/tasks.parquet'))
        allst = {}
        for feat in ep_stats[0]:
            vals = {k: np.array([np.asarray(s[feat][k], dtype=np.float64) for s in ep_stats]) for k in ('min', 'max', 'mean', 'std', 'count')}
            cnt = vals['count'].reshape(-1, *([1] * (vals['mean'].ndim - 1))).astype(np.float64)
            mean = (vals['mean'] * cnt).sum(0) / cnt.sum()
            var = ((vals['std'] ** 2 + (vals['mean'] - mean) ** 2) * cnt).sum(0) / cnt.sum()
            allst[feat] = {'min': vals['min'].min(0).tolist(), 'max': vals['max'].max(0).tolist(), 'mean': mean.tolist(),
                           'std': np.sqrt(var).tolist(), 'count': [int(cnt.sum())]}
        with open(os.path.join(a.out, 'meta', 'stats.json'), 'w') as f:
            json.dump(allst, f, indent=4)
        if video:
            for key in (n['image'], n['wrist']):
                features[key]['info'] = video_info(os.path.join(a.out, f'videos/{key}/chunk-000/file-000.mp4'), a.fps)
    shutil.rmtree(tmp)
    with open(os.path.join(a.out, 'meta', 'info.json'), 'w') as f:
        json.dump(info, f, indent=4)
    print(json.dumps({'episodes': len(eps), 'frames': info['total_frames'], 'tasks': tasks}))


if __name__ == '__main__':
    main()
