// `rdt-libero doctor`: what this machine gives the engine (libtorch, threads, BLAS, devices).
import * as torch from '../engine/index.js';
import { parseCommandArgs } from './args.js';

const USAGE = `usage: rdt-libero doctor

Reports what this machine gives the engine: the libtorch version, intra-op threads and their backend, BLAS and
LAPACK, the CPU capability libtorch uses, oneDNN, and the CUDA devices (or why there are none). No options.
`;

export function doctor(args: string[] = []): number {
  if (!parseCommandArgs({ command: 'doctor', usage: USAGE, options: {} }, args)) return 0;
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
  console.log(lines.join('\n'));
  return 0;
}
