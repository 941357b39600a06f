// Parquet files of a LeRobot dataset, read with hyparquet (pure JS, reads the snappy-compressed files that pyarrow,
// pandas and `datasets` write). Every failure becomes a one-line DataError naming the file and the column.
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { type FileMetaData, parquetMetadata, parquetReadObjects, parquetSchema } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import { DataError } from '../errors.js';

/** hyparquet's AsyncBuffer over a file read with pread (synchronous slices; hyparquet awaits them anyway). */
interface FileBuffer {
  byteLength: number;
  slice(start: number, end?: number): ArrayBuffer;
}

export class ParquetFile {
  readonly path: string;
  readonly metadata: FileMetaData;
  readonly columns: Set<string>;
  private readonly fd: number;
  private readonly buf: FileBuffer;

  private constructor(path: string, fd: number, size: number) {
    this.path = path;
    this.fd = fd;
    this.buf = {
      byteLength: size,
      slice: (start, end = size) => {
        const out = Buffer.allocUnsafe(end - start);
        let got = 0;
        while (got < out.length) {
          const n = readSync(fd, out, got, out.length - got, start + got);
          if (n <= 0) throw new DataError(`short read at byte ${start + got}`, { file: path }, 'the file is truncated or changed while open');
          got += n;
        }
        return out.buffer.slice(out.byteOffset, out.byteOffset + out.length) as ArrayBuffer;
      },
    };
    // The footer: [metadata][4-byte length]['PAR1']; a cut download loses it, which hyparquet reports vaguely.
    if (size < 12) throw new DataError(`only ${size} bytes: not a parquet file`, { file: path }, 'the download is incomplete; download the dataset again');
    const tail = new Uint8Array(this.buf.slice(size - 8));
    if (String.fromCharCode(...tail.subarray(4)) !== 'PAR1')
      throw new DataError('no parquet footer (the file is truncated or not parquet)', { file: path }, 'the download is incomplete; download the dataset again');
    const metaLen = new DataView(tail.buffer, tail.byteOffset).getUint32(0, true);
    if (metaLen + 8 > size) throw new DataError('parquet footer length exceeds the file (truncated)', { file: path }, 'the download is incomplete; download the dataset again');
    try {
      this.metadata = parquetMetadata(this.buf.slice(size - 8 - metaLen));
    } catch (e) {
      throw new DataError(`unreadable parquet metadata: ${(e as Error).message}`, { file: path }, 'the download is incomplete; download the dataset again');
    }
    this.columns = new Set(parquetSchema(this.metadata).children.map((c) => c.element.name));
  }

  static open(path: string): ParquetFile {
    let size: number;
    try {
      size = statSync(path).size;
    } catch {
      throw new DataError('file not found', { file: path }, 'the dataset folder is incomplete; download it again');
    }
    const fd = openSync(path, 'r');
    try {
      return new ParquetFile(path, fd, size);
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  }

  get numRows(): number {
    return Number(this.metadata.num_rows);
  }

  /** Row-group boundaries: starts[g] is the first row of group g, starts[groups] the row count. */
  get rowGroupStarts(): number[] {
    const s = [0];
    for (const g of this.metadata.row_groups) s.push(s[s.length - 1] + Number(g.num_rows));
    return s;
  }

  /** Throws naming the file and the first missing column. */
  require(columns: readonly string[], what: string): void {
    for (const c of columns)
      if (!this.columns.has(c))
        throw new DataError(`missing column '${c}' (${what}); it has ${[...this.columns].join(', ')}`, { file: this.path, key: c },
          'give the column names with data.lerobot_mapping, or check that this is the dataset you meant');
  }

  /** Rows [rowStart, rowEnd) of some columns as objects (binary columns as Uint8Array when utf8 is false). */
  async rows(columns: string[], rowStart = 0, rowEnd = this.numRows, utf8 = true): Promise<Record<string, unknown>[]> {
    this.require(columns, 'needed here');
    try {
      return await parquetReadObjects({ file: this.buf, metadata: this.metadata, columns, rowStart, rowEnd, utf8, compressors });
    } catch (e) {
      if (e instanceof DataError) throw e;
      throw new DataError(`cannot read columns ${columns.join(', ')}: ${(e as Error).message}`, { file: this.path, key: columns[0] }, 'the file may be damaged; download it again');
    }
  }

  close(): void {
    closeSync(this.fd);
  }
}

/** A number from a parquet cell (int64 comes back as BigInt). */
export function num(v: unknown): number {
  return typeof v === 'bigint' ? Number(v) : (v as number);
}
