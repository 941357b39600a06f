// Reference values from PyTorch itself, run beside the test (torch is installed for the build anyway).
// The script gets `inp` (the JSON input) and must assign a JSON-serialisable dict to `out`;
// tensors are turned into nested lists with `L(t)`.
import { execFileSync } from 'node:child_process';

const PRELUDE = `
import json, sys, math
import torch
torch.set_num_threads(1)
def L(t):
    return t.detach().double().tolist() if isinstance(t, torch.Tensor) else t
inp = json.loads(sys.stdin.read())
out = {}
`;

export function runTorch<T = Record<string, unknown>>(script: string, input: unknown = {}): T {
  const py = process.env.PYTHON || 'python3';
  const code = PRELUDE + script + '\nprint("__OUT__" + json.dumps(out))\n';
  let stdout: string;
  try {
    stdout = execFileSync(py, ['-c', code], { input: JSON.stringify(input), encoding: 'utf8', maxBuffer: 1 << 28 });
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`PyTorch reference script failed:\n${err.stderr ?? err.message}`);
  }
  const line = stdout.split('\n').find((l) => l.startsWith('__OUT__'));
  if (!line) throw new Error(`PyTorch reference printed no result:\n${stdout}`);
  return JSON.parse(line.slice(7)) as T;
}
