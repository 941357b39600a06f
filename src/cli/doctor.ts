// `rdt-libero doctor`: what this machine gives the engine (libtorch, threads, BLAS, devices).
import * as torch from '../engine/index.js';
import { UsageError } from '../util/errors.js';
import { oneOf, parseCommandArgs } from './args.js';

const USAGE = `usage: rdt-libero doctor [--sim [--sim-python PATH] [--sim-backend libero|test]]

Reports what this machine gives the engine: the libtorch version, intra-op threads and their backend, BLAS and
LAPACK, the CPU capability libtorch uses, oneDNN, the CUDA devices (or why there are none), and the libav the
addon decodes LeRobot videos with.

  --sim              also check the LIBERO simulator end to end through the eval sidecar: import, one reset,
                     one step, one render (see rdt-libero eval --help)
  --sim-python PATH  the Python with LIBERO installed (default: $PYTHON or python3)
  --sim-backend B    libero (default) or test (the sidecar's test geometry)
`;

export async function doctor(args: string[] = []): Promise<number> {
  const parsed = parseCommandArgs({ command: 'doctor', usage: USAGE, options: { sim: { type: 'boolean' }, 'sim-python': { type: 'string' }, 'sim-backend': { type: 'string', default: 'libero' } } }, args);
  if (!parsed) return 0;
  const v = parsed.values;
  if (!v.sim && (v['sim-python'] !== undefined || args.some((a) => a.startsWith('--sim-backend')))) throw new UsageError('--sim-python and --sim-backend apply only with --sim');
  const backend = oneOf('sim-backend', v['sim-backend'], ['libero', 'test'] as const, 'doctor');
  const info = torch.libtorch.parallelInfo();
  const config = torch.libtorch.buildConfig();
  const pick = (re: RegExp, text: string) => text.match(re)?.[1]?.trim();
  const lines = [
    `libtorch        ${torch.libtorch.version()}`,
    `threads         ${torch.getNumThreads()} intra-op (${pick(/ATen parallel backend: (.*)/, info) ?? 'unknown'} backend)`,
    `BLAS / LAPACK   ${pick(/BLAS_INFO=([^,]*)/, config) ?? 'unknown'} / ${pick(/LAPACK_INFO=([^,]*)/, config) ?? 'unknown'}`,
    `CPU capability  ${pick(/CPU capability usage: (.*)/, config) ?? 'unknown'}`,
    `oneDNN          ${config.includes('MKL-DNN') || config.includes('oneDNN') ? 'yes' : 'no'}`,
  ];
  const noCuda = torch.cudaUnavailableReason();
  if (!noCuda) {
    const n = torch.cuda.deviceCount();
    lines.push(`CUDA            ${n} device(s)`);
    for (let i = 0; i < n; i++) lines.push(`  cuda:${i}        ${torch.cuda.deviceName(i)}`);
  } else {
    lines.push(`CUDA            not available, running on CPU: ${noCuda}`);
  }
  const { videoBackend } = await import('../data/lerobot/video.js');
  lines.push(`video decoding  ${(await videoBackend()) ?? 'none: this addon was built without libav (LeRobot video datasets need it: see README "LeRobot datasets")'}`);
  console.log(lines.join('\n'));
  if (v.sim) {
    const { checkSim } = await import('../eval/doctor_sim.js');
    await checkSim({ backend, python: v['sim-python'] }, (l) => console.log(l));
  }
  return 0;
}
