// Small positional-read helpers over a file descriptor, with short reads reported as errors.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { CheckpointError, messageOf } from './errors.js';

export class ReadableFile {
  readonly path: string;
  readonly size: number;
  #fd: number;

  constructor(path: string) {
    this.path = path;
    try {
      this.#fd = openSync(path, 'r');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      const what = code === 'ENOENT' ? 'file not found' : code === 'EISDIR' ? 'is a directory, not a file' : messageOf(e);
      throw new CheckpointError(path, `cannot open: ${what}`, { cause: e });
    }
    const st = fstatSync(this.#fd);
    if (st.isDirectory()) {
      closeSync(this.#fd);
      throw new CheckpointError(path, 'cannot open: is a directory, not a file');
    }
    this.size = st.size;
  }

  /** Exactly `length` bytes at `position`; a file that ends sooner is an error saying so. */
  read(position: number, length: number, what: string): Buffer {
    if (position + length > this.size)
      throw new CheckpointError(this.path, `${what}: needs bytes ${position}..${position + length} but the file has ` +
        `${this.size} bytes (truncated or corrupt file; download or save it again)`);
    const buf = Buffer.allocUnsafe(length);
    let done = 0;
    while (done < length) {
      let n: number;
      try {
        n = readSync(this.#fd, buf, done, length - done, position + done);
      } catch (e) {
        throw new CheckpointError(this.path, `${what}: read error at byte ${position + done}: ${messageOf(e)}`, { cause: e });
      }
      if (n === 0) throw new CheckpointError(this.path, `${what}: short read at byte ${position + done}`);
      done += n;
    }
    return buf;
  }

  close(): void {
    if (this.#fd >= 0) closeSync(this.#fd);
    this.#fd = -1;
  }
}

/** Run fn with the file open, closing it whatever happens. */
export function withFile<T>(path: string, fn: (f: ReadableFile) => T): T {
  const f = new ReadableFile(path);
  try {
    return fn(f);
  } finally {
    f.close();
  }
}
