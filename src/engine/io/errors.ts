// The IO layer's one error type: what was wrong, in which file (and key, opcode or global), and
// what to do about it.
import { EngineError } from '../tensor.js';

export class CheckpointError extends EngineError {
  override name = 'CheckpointError';
  readonly file: string;
  readonly key: string | undefined;

  constructor(file: string, message: string, opts: { key?: string; cause?: unknown } = {}) {
    super(`${file}${opts.key !== undefined ? ` [${opts.key}]` : ''}: ${message}`, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.file = file;
    this.key = opts.key;
  }
}

/** The message of an unknown thrown value. */
export function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
