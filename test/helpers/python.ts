// Run a Python script beside a test (python3 with torch and safetensors, as installed for the build).
// Arguments go to sys.argv[1:]; stdout is returned. A failing script fails the test with its stderr.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function runPython(script: string, ...args: string[]): string {
  const py = process.env.PYTHON || 'python3';
  try {
    return execFileSync(py, ['-c', script, ...args], { encoding: 'utf8', maxBuffer: 1 << 28, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`Python script failed:\n${err.stderr ?? err.message}`);
  }
}

/** A fresh folder under os.tmpdir(); the returned function removes it. */
export function tempDir(tag: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), `rdt-${tag}-`));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}
