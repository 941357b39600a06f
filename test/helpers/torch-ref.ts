// Reference values from PyTorch itself, run beside the test (torch is installed for the build anyway).
// The script gets `inp` (the JSON input) and must assign a JSON-serialisable dict to `out`;
// tensors are turned into nested lists with `L(t)`.
// The reference runs with this process's libtorch thread count: some kernels split their reductions by thread
// (measured: a 20-step AdamW differs in one float32 ulp between 1 and 2 threads on a 2-core AMD EPYC), so
// "to the bit" only means something with the same kernels, the same threads and the same CPU.
import { getNumThreads } from '../../src/engine/index.js';
import { runPythonJson } from './python.js';

const prelude = () => `import torch
torch.set_num_threads(${getNumThreads()})
def L(t):
    return t.detach().double().tolist() if isinstance(t, torch.Tensor) else t`;

export function runTorch<T = Record<string, unknown>>(script: string, input: unknown = {}): T {
  return runPythonJson<T>(prelude(), script, input);
}
