# The timing both Python references of `npm run bench:data`'s LeRobot cases share (data_lerobot_pyav.py,
# data_lerobot_images.py): each process runs its share of the sample list (warm-up first, then until the time budget),
# and the shares run in `workers` spawned processes, like a DataLoader's workers.
import json, time, multiprocessing as mp


def timed(one, samples, warm, budget):
    """Run one(*s) for the warm-up samples, then time the rest until `budget` seconds: (samples, wall s, CPU s)."""
    for s in samples[:warm]:
        one(*s)
    t0 = time.perf_counter(); c0 = time.process_time(); n = 0
    for s in samples[warm:]:
        one(*s); n += 1
        if n % 16 == 0 and time.perf_counter() - t0 > budget:
            break
    return n, time.perf_counter() - t0, time.process_time() - c0


def run_workers(work, shares, **extra):
    """work(share) in one spawned process per share; prints the rate over all of them as one JSON line."""
    with mp.get_context('spawn').Pool(len(shares)) as pool:
        res = pool.map(work, shares)
    n = sum(r[0] for r in res); dt = max(r[1] for r in res); cpu = sum(r[2] for r in res)
    print(json.dumps({'samples': n, 'seconds': dt, 'per_second': n / dt, 'cpu_us_per_sample': cpu * 1e6 / n, **extra}))
