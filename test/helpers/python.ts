// Run Python beside a test (python3 with torch, numpy, h5py and safetensors, as installed by setup).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Run a script with arguments in sys.argv[1:]; returns stdout. A failing script fails the test with its stderr. */
export function runPython(script: string, ...args: string[]): string {
  const py = process.env.PYTHON || 'python3';
  try {
    return execFileSync(py, ['-c', script, ...args], { encoding: 'utf8', maxBuffer: 1 << 28, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`Python script failed:\n${err.stderr ?? err.message}`);
  }
}

/**
 * Run `prelude + script` with `inp` bound to the JSON input; the script assigns a JSON-serialisable dict
 * to `out`, which is returned parsed.
 */
export function runPythonJson<T>(prelude: string, script: string, input: unknown = {}): T {
  const py = process.env.PYTHON || 'python3';
  const code = `import json, sys, math\n${prelude}\ninp = json.loads(sys.stdin.read())\nout = {}\n${script}\nprint("__OUT__" + json.dumps(out))\n`;
  let stdout: string;
  try {
    stdout = execFileSync(py, ['-c', code], { input: JSON.stringify(input), encoding: 'utf8', maxBuffer: 1 << 28 });
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`Python reference script failed:\n${err.stderr ?? err.message}`);
  }
  const line = stdout.split('\n').find((l) => l.startsWith('__OUT__'));
  if (!line) throw new Error(`Python reference printed no result:\n${stdout}`);
  return JSON.parse(line.slice(7)) as T;
}

/** numpy + h5py reference: `np` and `h5py` are imported. */
export function runNumpy<T = Record<string, unknown>>(script: string, input: unknown = {}): T {
  return runPythonJson<T>('import numpy as np\nimport h5py', script, input);
}

/** A fresh folder under os.tmpdir(); the returned function removes it. */
export function tempDir(tag: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), `rdt-${tag}-`));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}
