// `rdt-libero doctor`: what this machine gives the engine (libtorch, threads, BLAS, devices).
import * as torch from '../engine/index.js';

export function doctor(): number {
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
  if (torch.cuda.isAvailable()) {
    const n = torch.cuda.deviceCount();
    lines.push(`CUDA            ${n} device(s)`);
    for (let i = 0; i < n; i++) lines.push(`  cuda:${i}        ${torch.cuda.deviceName(i)}`);
  } else {
    const built = /USE_CUDA=(\w+)/.exec(config)?.[1];
    lines.push(`CUDA            not available (${built === '1' || built === 'ON' ? 'no CUDA device found' : 'libtorch is a CPU build'}); running on CPU`);
  }
  console.log(lines.join('\n'));
  return 0;
}
