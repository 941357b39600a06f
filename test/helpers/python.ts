// Run a short Python (numpy + h5py) script beside a test: it gets `inp` (JSON) and assigns a JSON-serialisable `out`.
import { execFileSync } from 'node:child_process';

const PRELUDE = `
import json, sys, math
import numpy as np
import h5py
inp = json.loads(sys.stdin.read())
out = {}
`;

export function runPython<T = Record<string, unknown>>(script: string, input: unknown = {}): T {
  const py = process.env.PYTHON || 'python3';
  const code = PRELUDE + script + '\nprint("__OUT__" + json.dumps(out))\n';
  let stdout: string;
  try {
    stdout = execFileSync(py, ['-c', code], { input: JSON.stringify(input), encoding: 'utf8', maxBuffer: 1 << 28 });
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`python script failed:\n${err.stderr ?? err.message}`);
  }
  const line = stdout.split('\n').find((l) => l.startsWith('__OUT__'));
  if (!line) throw new Error(`python printed no result:\n${stdout}`);
  return JSON.parse(line.slice(7)) as T;
}
