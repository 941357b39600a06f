# h5py reference for `npm run bench:data`: the same reads per sample as our loader (low-dim state at t, the action
# chunk t..t+63, 2 cameras x 2 history frames), files and datasets kept open, in one Python process.
import json, sys, time
import h5py

req = json.load(open(sys.argv[1]))
samples = req['samples']
files = {}
dsets = {}

def ds(path, demo):
    key = (path, demo)
    d = dsets.get(key)
    if d is None:
        f = files.get(path)
        if f is None:
            f = files[path] = h5py.File(path, 'r')
        g = f['data'][demo]
        d = dsets[key] = {k: g[k] for k in ['actions', 'obs/ee_pos', 'obs/ee_ori', 'obs/gripper_states', 'obs/agentview_rgb', 'obs/eye_in_hand_rgb']}
    return d

def one(path, demo, t, a):
    d = ds(path, demo)
    acts = d['actions'][a:a + 64]
    pos = d['obs/ee_pos'][t]; ori = d['obs/ee_ori'][t]; gr = d['obs/gripper_states'][t]
    t0 = max(t - 1, 0)
    av = d['obs/agentview_rgb'][t0:t + 1]
    eh = d['obs/eye_in_hand_rgb'][t0:t + 1]
    return acts.size + pos.size + ori.size + gr.size + av.size + eh.size

warm = req['warmup']
for s in samples[:warm]:
    one(*s)
t = time.perf_counter()
c = time.process_time()
n = 0
budget = req['seconds']
for s in samples[warm:]:
    one(*s)
    n += 1
    if n % 64 == 0 and time.perf_counter() - t > budget:
        break
dt = time.perf_counter() - t
cpu = time.process_time() - c
print(json.dumps({'samples': n, 'seconds': dt, 'per_second': n / dt, 'cpu_us_per_sample': cpu * 1e6 / n}))
