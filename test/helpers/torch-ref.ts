// Reference values from PyTorch itself, run beside the test (torch is installed for the build anyway).
// The script gets `inp` (the JSON input) and must assign a JSON-serialisable dict to `out`;
// tensors are turned into nested lists with `L(t)`.
import { runPythonJson } from './python.js';

const PRELUDE = `import torch
torch.set_num_threads(1)
def L(t):
    return t.detach().double().tolist() if isinstance(t, torch.Tensor) else t`;

export function runTorch<T = Record<string, unknown>>(script: string, input: unknown = {}): T {
  return runPythonJson<T>(PRELUDE, script, input);
}
