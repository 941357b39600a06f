// How a command that failed is reported, in one place: main.ts calls it for whatever a command throws.
// An RdtError is written to be shown as is (what, where, what to do) and carries its exit code; anything
// else is a bug in rdt-libero: one line with its type, and the stack with RDT_DEBUG=1.
import { RdtError } from '../util/errors.js';
import { ConfigError } from '../train/errors.js';

/** Write the failure of `rdt-libero <command>` to stderr and return the process exit code. */
export function reportError(e: unknown, command: string): number {
  const debug = !!process.env.RDT_DEBUG && process.env.RDT_DEBUG !== '0';
  const err = e instanceof Error ? e : new Error(String(e));
  const prefix = `rdt-libero ${command}: `;
  if (err instanceof RdtError) {
    // ConfigError comes from run.yaml or key=value overrides, whose reference is `train --help`.
    const text = err instanceof ConfigError ? `config error: ${err.message} (rdt-libero train --help lists every key)` : err.message;
    process.stderr.write(prefix + text.split('\n').join('\n  ') + '\n');
    if (debug && err.stack) process.stderr.write(err.stack + '\n');
    return err.exitCode;
  }
  // Not ours: a bug (or an error from a dependency that should have been wrapped). Its message may be long
  // (libtorch appends pages), so the first line only unless asked.
  const [first, ...rest] = (err.message || '(no message)').split('\n');
  const more = rest.length ? `; ${rest.length} more line(s)` : '';
  process.stderr.write(`${prefix}internal error ${err.name}: ${first} (a bug in rdt-libero${more}; ${debug ? 'stack below' : 'RDT_DEBUG=1 prints the stack'})\n`);
  if (debug) process.stderr.write(`${rest.length ? rest.join('\n') + '\n' : ''}${err.stack ?? ''}\n`);
  return 1;
}
