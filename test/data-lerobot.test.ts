// LeRobot-format LIBERO datasets (v2.1 and v3.0, videos and images in parquet), written in Python by
// test/py/lerobot_from_hdf5.py from a regenerated HDF5 suite with the producers' column names, metadata and chunk
// layouts, against: PyAV decoding the same timestamps by LeRobot's rule (frame by frame), and the HDF5 suite itself
// (same indices, same images within decoding, same state/action vectors).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, unlinkSync, renameSync, truncateSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LiberoDataset, allocBatch, type Batch } from '../src/data/dataset.js';
import { DataLoader } from '../src/data/loader.js';
import { writeSyntheticSuite } from '../src/data/synthetic.js';
import { DataError } from '../src/data/errors.js';
import { computeStats } from '../src/data/stats.js';
import { LeRobotFolder } from '../src/data/lerobot/folder.js';
import { videoBackend } from '../src/data/lerobot/video.js';
import { data } from '../src/cli/data.js';
import { doctor } from '../src/cli/doctor.js';
import { captureStdout } from './helpers/capture.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const WRITER = join(here, '..', '..', 'test', 'py', 'lerobot_from_hdf5.py');
const py = process.env.PYTHON || 'python3';
let dir = '';
let suite = '';

function write(name: string, ...args: string[]): string {
  const out = join(dir, name);
  execFileSync(py, [WRITER, suite, out, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  return out;
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rdt-lerobot-'));
  // 2 tasks x 3 demos of ~24 steps at 64x64: small enough for seconds of encoding, real codecs and layouts.
  await writeSyntheticSuite({ root: join(dir, 'hdf5'), suite: 'libero_goal', layout: 'regenerated', tasks: 2, demos: 3, meanLength: 24, size: 64, seed: 5 });
  suite = join(dir, 'hdf5', 'libero_goal_no_noops');
});
after(() => rmSync(dir, { recursive: true, force: true }));

async function allSamples(ds: LiberoDataset): Promise<Batch> {
  const idx = Array.from({ length: ds.size }, (_, i) => i);
  const b = allocBatch(ds.cfg, idx.length);
  await ds.writeBatch(idx, b);
  return b;
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** The HDF5 suite read in the copies' orientation (they store frames turned 180 degrees). */
async function hdf5Reference(): Promise<{ ds: LiberoDataset; b: Batch }> {
  const ds = await LiberoDataset.open({ root: join(dir, 'hdf5'), adapter: { orientation: 'rot180' } });
  return { ds, b: await allSamples(ds) };
}

/** Same samples as the HDF5 suite: indices, state and action vectors (float32 storage), instruction; images as given. */
function assertSameSamples(l: Batch, h: Batch, images: 'exact' | 'lossy') {
  assert.deepEqual(l.ids.map((x) => [x.t, x.actionT]), h.ids.map((x) => [x.t, x.actionT]));
  assert.deepEqual(l.instruction, h.instruction);
  assert.deepEqual(Array.from(l.imageMask), Array.from(h.imageMask));
  // The copies store state and actions as float32; the HDF5 holds float64.
  assert.ok(maxDiff(l.state, h.state) < 1e-6, `state differs by ${maxDiff(l.state, h.state)}`);
  assert.ok(maxDiff(l.actions, h.actions) < 1e-6, `actions differ by ${maxDiff(l.actions, h.actions)}`);
  assert.deepEqual(Array.from(l.actionMask), Array.from(h.actionMask));
  if (images === 'exact') assert.equal(maxDiff(l.images, h.images), 0);
  else {
    // AV1 at crf 30 on 64x64 synthetic frames: lossy, but the same picture (mean error a few levels).
    let s = 0;
    for (let i = 0; i < l.images.length; i++) s += Math.abs(l.images[i] - h.images[i]);
    assert.ok(s / l.images.length < 12, `mean image error ${s / l.images.length}`);
  }
}

test('v2.1 with images in parquet (openpi layout) gives the HDF5 suite\'s samples exactly', async () => {
  const root = write('openpi_v21_img', '--version', 'v2.1', '--cameras', 'image', '--names', 'openpi');
  const info = JSON.parse(readFileSync(join(root, 'meta', 'info.json'), 'utf8'));
  assert.equal(info.features.image.dtype, 'image');
  const l = await LiberoDataset.open({ root });
  assert.equal(l.format, 'lerobot');
  assert.equal(l.cfg.orientation, 'rot180');
  assert.equal(l.lerobot[0].mapping.name, 'openpi_libero');
  assert.match(l.notes.join('\n'), /fps 10, but each step is one 20 Hz LIBERO command/);
  const h = await hdf5Reference();
  assert.equal(l.size, h.ds.size);
  assertSameSamples(await allSamples(l), h.b, 'exact');
  // Statistics (state and every encoding's actions) agree with the HDF5 suite's to float32 precision.
  const sl = computeStats(l).libero;
  const sh = computeStats(h.ds).libero;
  assert.ok(maxDiff(sl.state_mean, sh.state_mean) < 1e-6 && maxDiff(sl.action_mean, sh.action_mean) < 1e-6);
  assert.equal(sl.num_steps, sh.num_steps);
  l.close();
  h.ds.close();
});

/**
 * The frames PyAV decodes for the given (file, timestamp) queries by LeRobot's rule (decode_video_frames_pyav at
 * 7427f31: seek to the keyframe at or before round(ts / time_base) - 1, decode forward, the frame nearest to ts,
 * refused beyond tolerance_s), each query on a freshly opened file as LeRobot does; and the decoder PyAV used.
 */
function pyavFrames(queries: { path: string; ts: number }[], frame: number): { frames: Buffer; decoders: string } {
  const qpath = join(dir, 'queries.json');
  writeFileSync(qpath, JSON.stringify(queries));
  const refPath = join(dir, 'pyav.bin');
  const decoders = execFileSync(py, ['-c', `
import av, json, sys
q = json.load(open(sys.argv[1])); out = open(sys.argv[2], 'wb'); names = set()
for r in q:
    with av.open(r['path']) as c:
        s = c.streams.video[0]
        c.seek(round(r['ts'] / s.time_base) - 1, backward=True, any_frame=False, stream=s)
        best = None
        for f in c.decode(s):
            t = float(f.pts * s.time_base)
            d = abs(t - r['ts'])
            if best is None or d < best[0]: best = (d, f.to_ndarray(format='rgb24'))
            if t >= r['ts']: break
        assert best[0] <= 1e-4, (r, best[0])
        names.add(s.codec_context.name)
        out.write(best[1].tobytes())
print('PyAV %s (libavcodec %s) decoder %s' % (av.__version__, '.'.join(map(str, av.library_versions['libavcodec'])), ','.join(sorted(names))))
`, qpath, refPath], { encoding: 'utf8' }).trim();
  const frames = readFileSync(refPath);
  assert.equal(frames.length, queries.length * frame);
  return { frames, decoders };
}

/**
 * Every camera frame of every sample of a batch against PyAV's decode of the same timestamp: byte for byte. Both
 * sides run the same decoders (AV1: libdav1d, Debian's 1.0.0 in the addon and PyAV's bundled build; H.264:
 * libavcodec's h264) and the same swscale conversion (SWS_BILINEAR, the frame's colour matrix and range); AV1 and
 * H.264 decoding is bit-exact by specification, so any difference means a different frame or conversion.
 */
async function assertFramesMatchPyav(b: Batch, H: number, where: (ep: number, key: string, t: number) => { path: string; ts: number }, keys: string[]) {
  const frame = 64 * 64 * 3;
  const queries: { path: string; ts: number }[] = [];
  const ours: Uint8Array[] = [];
  for (let s = 0; s < b.size; s++) {
    const ep = Number(b.ids[s].demo.slice(8));
    keys.forEach((key, c) => {
      for (let hh = 0; hh < H; hh++) {
        const slot = (s * H + hh) * 3 + c;
        if (!b.imageMask[slot]) continue;
        queries.push(where(ep, key, b.ids[s].t - (H - 1 - hh)));
        ours.push(b.images.subarray(slot * frame, (slot + 1) * frame));
      }
    });
  }
  const ref = pyavFrames(queries, frame);
  const ourDecoders = (await videoBackend()) ?? 'none';
  let bad = 0;
  let worst = 0;
  ours.forEach((o, i) => {
    const d = maxDiff(o, ref.frames.subarray(i * frame, (i + 1) * frame));
    if (d) bad++;
    worst = Math.max(worst, d);
  });
  assert.equal(bad, 0, `${bad} of ${ours.length} frames differ from PyAV's (by up to ${worst}); ours: ${ourDecoders}; ${ref.decoders}`);
  assert.ok(ours.length > 50);
}

test('v3.0 with AV1 videos (LeRobot layout, several files) matches PyAV frame by frame and the HDF5 suite', async () => {
  const root = write('lerobot_v30_av1', '--version', 'v3.0', '--cameras', 'video', '--names', 'lerobot', '--episodes-per-file', '4');
  const l = await LiberoDataset.open({ root });
  assert.equal(l.lerobot[0].mapping.name, 'lerobot_libero');
  assert.equal(l.lerobot[0].cameraStorage, 'video');
  const b = await allSamples(l);
  const h = await hdf5Reference();
  assertSameSamples(b, h.b, 'lossy');
  const eps = JSON.parse(execFileSync(py, ['-c', `
import pyarrow.parquet as pq, json, sys
t = pq.read_table(sys.argv[1]).to_pylist()
print(json.dumps({str(r['episode_index']): {k: r[k] for k in r if k.startswith('videos/')} for r in t}))`, join(root, 'meta/episodes/chunk-000/file-000.parquet')], { encoding: 'utf8' }));
  await assertFramesMatchPyav(b, l.cfg.historySize, (ep, key, t) => {
    const e = eps[String(ep)];
    return { path: join(root, `videos/${key}/chunk-000/file-${String(e[`videos/${key}/file_index`]).padStart(3, '0')}.mp4`), ts: e[`videos/${key}/from_timestamp`] + t / 10 };
  }, ['observation.images.image', 'observation.images.image2']);
  // Small batches in a shuffled order (seeks backwards, decoding on within a GOP, files reopened) give the same
  // frames as the one batch read in file order.
  const order = Array.from({ length: l.size }, (_, i) => i).sort((x, y) => ((x * 7919) % 61) - ((y * 7919) % 61));
  const frameBytes = b.images.length / b.size;
  for (let i = 0; i < order.length; i += 5) {
    const idx = order.slice(i, i + 5);
    const part = allocBatch(l.cfg, idx.length);
    await l.writeBatch(idx, part);
    idx.forEach((x, j) => assert.equal(maxDiff(part.images.subarray(j * frameBytes, (j + 1) * frameBytes), b.images.subarray(x * frameBytes, (x + 1) * frameBytes)), 0, `sample ${x}`));
  }
  l.close();
  h.ds.close();
});

test('v2.1 H.264 videos (matching PyAV frame by frame) and v3.0 images in one row group read the same samples; the loader with workers agrees', async () => {
  const v21 = write('openpi_v21_h264', '--version', 'v2.1', '--cameras', 'video', '--names', 'openpi', '--codec', 'libx264');
  const v30 = write('lerobot_v30_img', '--version', 'v3.0', '--cameras', 'image', '--names', 'lerobot', '--row-groups', 'file');
  const h = await hdf5Reference();
  for (const root of [v21, v30]) {
    const l = await LiberoDataset.open({ root });
    const b = await allSamples(l);
    assertSameSamples(b, h.b, root === v30 ? 'exact' : 'lossy');
    if (root === v21)
      await assertFramesMatchPyav(b, l.cfg.historySize, (ep, key, t) =>
        ({ path: join(root, `videos/chunk-000/${key}/episode_${String(ep).padStart(6, '0')}.mp4`), ts: t / 10 }), ['image', 'wrist_image']);
    l.close();
  }
  // Workers, held-out split and resume: the loader on the v3.0 copy gives the HDF5 loader's stream.
  const opts = (root: string) => ({
    dataset: { root, split: { holdoutPerTask: 1, part: 'train' as const }, adapter: { orientation: 'rot180' as const } },
    batchSize: 4, workers: 2, sampler: { seed: 3 }, start: { epoch: 0, position: 5 },
  });
  const a = await DataLoader.create(opts(v30));
  const bh = await DataLoader.create(opts(join(dir, 'hdf5')));
  assert.equal(a.dataset.size, bh.dataset.size);
  for (let i = 0; i < 3; i++) {
    const x = await a.next();
    const y = await bh.next();
    assert.deepEqual(Array.from(x.index), Array.from(y.index));
    assert.equal(maxDiff(x.images, y.images), 0);
    assert.ok(maxDiff(x.actions, y.actions) < 1e-6);
  }
  await a.close();
  await bh.close();
  h.ds.close();
});

test('data inspect and data stats on a LeRobot folder: mapping, storage, its own statistics compared, every video frame time checked', async () => {
  const root = write('cli_v21_h264', '--version', 'v2.1', '--cameras', 'video', '--names', 'openpi', '--codec', 'libx264');
  const episodes = readFileSync(join(root, 'meta', 'episodes.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const rows = episodes.reduce((a, e) => a + e.length, 0);
  const ins = await captureStdout(() => data(['inspect', root]));
  assert.equal(ins.code, 0, ins.out);
  assert.match(ins.out, /\(lerobot\)/);
  assert.match(ins.out, /LeRobot cli_v21_h264: codebase v2\.1, mapping openpi_libero \(\w+=image, \w+=wrist_image; state state\[pos 0:3, axis-angle 3:6, gripper 6:8\]; action actions\)/);
  assert.match(ins.out, /cameras stored as MP4 video .* 64x64, already turned 'rot180' .* fps 10 in meta\/info\.json, ctrl_freq 20 Hz used/);
  // The dataset's own statistics (episodes_stats.jsonl, computed by the writer with numpy) against the values read.
  for (const feat of ['state', 'actions']) {
    const m = new RegExp(`  ${feat}: max \\|ours - meta/episodes_stats\\.jsonl\\| mean (\\S+), std (\\S+), min (\\S+), max (\\S+) over (\\d+) frames`).exec(ins.out);
    assert.ok(m, `${feat} statistics line missing:\n${ins.out}`);
    for (const d of m.slice(1, 5)) assert.ok(Number(d) < 1e-5, `${feat}: ${m[0]}`);
    assert.equal(Number(m[5]), rows);
  }
  // Every frame time of both cameras checked against the packets.
  assert.match(ins.out, new RegExp(`video timestamps: ${rows * 2} frames in ${episodes.length * 2} files checked against the packets`));
  assert.match(ins.out, /\n0 problems\n/);
  // Statistics that are not this data's are a warning naming the file.
  const esPath = join(root, 'meta', 'episodes_stats.jsonl');
  const es = readFileSync(esPath, 'utf8');
  const shifted = es.trim().split('\n').map((l) => JSON.parse(l));
  shifted[0].stats.state.mean[0] += 0.5;
  writeFileSync(esPath, shifted.map((r) => JSON.stringify(r)).join('\n') + '\n');
  const warned = await captureStdout(() => data(['inspect', root]));
  assert.match(warned.out, /the dataset's own statistics of 'state' \(.*episodes_stats\.jsonl\) differ from the values read by up to/);
  writeFileSync(esPath, es);
  // Frame times that the video does not have (one episode's timestamps 30 ms late): a problem naming the video.
  const ep1 = join(root, 'data/chunk-000/episode_000001.parquet');
  const keep = readFileSync(ep1);
  execFileSync(py, ['-c', `
import pyarrow as pa, pyarrow.parquet as pq, sys
t = pq.read_table(sys.argv[1]); ts = [x + 0.03 for x in t.column('timestamp').to_pylist()]
pq.write_table(t.set_column(t.schema.get_field_index('timestamp'), t.schema.field('timestamp'), pa.array(ts, pa.float32())), sys.argv[1])`, ep1]);
  const late = await captureStdout(() => data(['inspect', root]));
  assert.equal(late.code, 1);
  assert.match(late.out, /2 problems:\n/);
  assert.match(late.out, /file \S+\/videos\/chunk-000\/image\/episode_000001\.mp4, demo episode_000001, step 0: no video frame within tolerance_s=0\.0001 s of timestamp 0\.030000 s \(nearest 0\.000000 s\)/);
  writeFileSync(ep1, keep);
  // data stats: the same statistics as the HDF5 suite's (float32 storage), one entry per folder and the combined one.
  const st = (r: string, out: string) => captureStdout(() => data(['stats', r, '--out', out]));
  const lo = join(dir, 'stats-lerobot', 'stats.json');
  const ho = join(dir, 'stats-hdf5', 'stats.json');
  const a = await st(root, lo);
  assert.equal(a.code, 0);
  assert.match(a.out, /wrote .*entries: cli_v21_h264, libero/);
  assert.equal((await st(join(dir, 'hdf5'), ho)).code, 0);
  const sl = JSON.parse(readFileSync(lo, 'utf8')).libero;
  const sh = JSON.parse(readFileSync(ho, 'utf8')).libero;
  assert.equal(sl.num_steps, sh.num_steps);
  assert.equal(sl.num_episodes, sh.num_episodes);
  for (const k of ['state_mean', 'action_mean', 'action_std', 'state_min', 'state_max'])
    assert.ok(maxDiff(sl[k], sh[k]) < 1e-6, `${k} differs by ${maxDiff(sl[k], sh[k])}`);
  // state_std follows RDT's rule (only values with |x| > 1e-8 count): a few rotation-6D components within 1e-6 of 0
  // fall on either side of that line once the pose is stored as float32, which moves those slots' std by ~1e-3.
  assert.ok(maxDiff(sl.state_std, sh.state_std) < 5e-3, `state_std differs by ${maxDiff(sl.state_std, sh.state_std)}`);
  // doctor names the libav and decoders that read these videos (setup.sh installs the libav headers the addon needs).
  const doc = await captureStdout(() => doctor([]));
  assert.match(doc.out, /^video decoding  libavformat \d+\.\d+\.\d+, libavcodec \d+\.\d+\.\d+, libswscale \d+\.\d+\.\d+; decoders av1=\S+ h264=h264 hevc=\S+$/m);
});

test('bad LeRobot inputs are one-line errors naming the file', async () => {
  const root = write('bad', '--version', 'v2.1', '--cameras', 'video', '--names', 'openpi');
  const info = join(root, 'meta', 'info.json');
  const original = readFileSync(info, 'utf8');
  const expectError = async (re: RegExp, file: string | RegExp) => {
    await assert.rejects(LiberoDataset.open({ root }), (e: unknown) => {
      assert.ok(e instanceof DataError, String(e));
      assert.match(e.message, re);
      assert.ok(!e.message.includes('\n'), e.message);
      if (typeof file === 'string') assert.ok(e.message.includes(file), `${e.message} should name ${file}`);
      else assert.match(e.message, file);
      return true;
    });
  };
  // A codebase version we do not read.
  writeFileSync(info, original.replace('"v2.1"', '"v1.6"'));
  await expectError(/codebase_version 'v1.6' is not one rdt-libero reads/, info);
  // Missing columns (a dataset of another layout).
  writeFileSync(info, original.replace(/"state"/g, '"observation.proprio"'));
  await expectError(/no known LIBERO column layout/, info);
  writeFileSync(info, original);
  // A missing video file.
  const vid = join(root, 'videos/chunk-000/wrist_image/episode_000002.mp4');
  renameSync(vid, vid + '.away');
  await expectError(/video file of camera wrist_image not found/, vid);
  renameSync(vid + '.away', vid);
  // Timestamps that do not match fps (one frame of one episode 10 ms late).
  const ep1 = join(root, 'data/chunk-000/episode_000001.parquet');
  const keep = readFileSync(ep1);
  execFileSync(py, ['-c', `
import pyarrow as pa, pyarrow.parquet as pq, sys
t = pq.read_table(sys.argv[1]); ts = t.column('timestamp').to_pylist(); ts[5] += 0.01
pq.write_table(t.set_column(t.schema.get_field_index('timestamp'), t.schema.field('timestamp'), pa.array(ts, pa.float32())), sys.argv[1])`, ep1]);
  await expectError(/step 5: timestamps .* are not 1\/fps = 0.1 s apart/, ep1);
  writeFileSync(ep1, keep);
  // Timestamps 1/fps apart that the video's frames do not match (every one 30 ms late): the frame read fails, as
  // LeRobot's decoder refuses it, naming the video, episode and step.
  const vid1 = join(root, 'videos/chunk-000/image/episode_000001.mp4');
  const readEpisode1 = async () => {
    const ds = await LiberoDataset.open({ root });
    const idx = Array.from({ length: ds.size }, (_, i) => i).filter((i) => ds.id(i).demo === 'episode_000001');
    try {
      await ds.writeBatch(idx, allocBatch(ds.cfg, idx.length));
    } finally {
      ds.close();
    }
  };
  const expectReadError = async (re: RegExp) =>
    assert.rejects(readEpisode1(), (e: unknown) => {
      assert.ok(e instanceof DataError, String(e));
      assert.match(e.message, re);
      assert.ok(!e.message.includes('\n') && e.message.includes(vid1) && e.message.includes('demo episode_000001'), e.message);
      return true;
    });
  execFileSync(py, ['-c', `
import pyarrow as pa, pyarrow.parquet as pq, sys
t = pq.read_table(sys.argv[1]); ts = [x + 0.03 for x in t.column('timestamp').to_pylist()]
pq.write_table(t.set_column(t.schema.get_field_index('timestamp'), t.schema.field('timestamp'), pa.array(ts, pa.float32())), sys.argv[1])`, ep1]);
  await expectReadError(/step 0: no video frame within tolerance_s=0.0001 s of timestamp 0.030000 s \(nearest 0.000000 s\)/);
  writeFileSync(ep1, keep);
  // A damaged video (its second half lost): the read names it.
  const vkeep = readFileSync(vid1);
  writeFileSync(vid1, vkeep.subarray(0, vkeep.length >> 1));
  await expectReadError(/no video frame within tolerance_s|reading the video failed|decoding failed|cannot open the video/);
  writeFileSync(vid1, vkeep);
  // An episode index gap.
  const epl = join(root, 'meta', 'episodes.jsonl');
  const lines = readFileSync(epl, 'utf8').trim().split('\n');
  writeFileSync(epl, lines.filter((_, i) => i !== 3).join('\n') + '\n');
  await expectError(/episode index gap: 1 of 0\.\.5 missing \(first 3\)/, epl);
  writeFileSync(epl, lines.join('\n') + '\n');
  // A truncated parquet.
  const pqf = join(root, 'data/chunk-000/episode_000004.parquet');
  truncateSync(pqf, Math.floor(statSync(pqf).size / 2));
  await expectError(/truncated/, pqf);
  unlinkSync(pqf);
  await expectError(/file not found/, pqf);
  // use_joints on copies without joint angles is refused with the reason.
  const ok = write('nojoints', '--version', 'v3.0', '--cameras', 'image', '--names', 'lerobot');
  await assert.rejects(LiberoDataset.open({ root: ok, adapter: { useJoints: true } }), /hold no joint angles/);
  // The control rate is LIBERO's, whatever fps says.
  await assert.rejects(LiberoDataset.open({ root: ok, adapter: { ctrlFreq: 10 } }), /ctrl_freq is 10 Hz but the dataset's actions are 20 Hz commands/);
  const f = await LeRobotFolder.open(ok);
  assert.equal(f.version, 'v3.0');
  f.close();
});
