// TensorBoard event files written directly: TFRecord framing (length, masked CRC32C, payload,
// masked CRC32C) around hand-encoded `Event` protobufs carrying scalar summaries. Enough for
// `tensorboard --logdir` to show every metric; no TensorFlow or protobuf dependency.
import { closeSync, fsyncSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { MetricSink } from './sink.js';

const CRC32C_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

export function crc32c(buf: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < buf.length; i++) c = CRC32C_TABLE[(c ^ buf[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function maskedCrc(buf: Uint8Array): number {
  const c = crc32c(buf);
  return ((((c >>> 15) | (c << 17)) >>> 0) + 0xa282ead8) >>> 0;
}

// ---- minimal protobuf encoding ----
function varint(n: number | bigint): number[] {
  let v = BigInt(n);
  const out: number[] = [];
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) b |= 0x80;
    out.push(b);
  } while (v > 0n);
  return out;
}
const key = (field: number, wire: number) => varint((field << 3) | wire);
function lenField(field: number, bytes: Uint8Array | number[]): number[] {
  return [...key(field, 2), ...varint(bytes.length), ...bytes];
}
function doubleField(field: number, v: number): number[] {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setFloat64(0, v, true);
  return [...key(field, 1), ...b];
}
function floatField(field: number, v: number): number[] {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setFloat32(0, v, true);
  return [...key(field, 5), ...b];
}
const utf8 = (s: string) => [...Buffer.from(s, 'utf8')];

// Event { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; SessionLog session_log = 7; }
// Summary { repeated Value value = 1; }  Value { string tag = 1; float simple_value = 2; }
function eventBytes(wallTime: number, step: number, body: number[]): Uint8Array {
  return Uint8Array.from([...doubleField(1, wallTime), ...key(2, 0), ...varint(step), ...body]);
}

export class TensorBoardWriter {
  readonly path: string;
  #fd: number;

  /**
   * `startStep`: the first step this writer will log. It is recorded as a SessionLog START event, which TensorBoard
   * reads as a restart: it drops every earlier event at that step or later, so a run resumed from checkpoint N
   * (startStep N + 1) shows one timeline, without the abandoned steps logged after N before the run stopped.
   */
  constructor(logDir: string, opts: { startStep?: number } = {}) {
    mkdirSync(logDir, { recursive: true });
    const now = Date.now() / 1000;
    this.path = join(logDir, `events.out.tfevents.${Math.floor(now)}.${hostname()}.${process.pid}`);
    this.#fd = openSync(this.path, 'a');
    this.#record(eventBytes(now, 0, lenField(3, utf8('brain.Event:2'))));
    // SessionLog { status: START (1) } is Event field 7.
    this.#record(eventBytes(now, opts.startStep ?? 0, lenField(7, [...key(1, 0), 1])));
  }

  #record(data: Uint8Array): void {
    const header = new Uint8Array(8);
    new DataView(header.buffer).setBigUint64(0, BigInt(data.length), true);
    const frame = Buffer.alloc(8 + 4 + data.length + 4);
    frame.set(header, 0);
    frame.writeUInt32LE(maskedCrc(header), 8);
    frame.set(data, 12);
    frame.writeUInt32LE(maskedCrc(data), 12 + data.length);
    writeSync(this.#fd, frame);
  }

  /** One event holding every scalar of this step (tags like 'train/loss'). */
  scalars(step: number, values: Record<string, number>): void {
    const vals: number[] = [];
    for (const [tag, v] of Object.entries(values)) {
      if (typeof v !== 'number' || !Number.isFinite(v)) continue;
      vals.push(...lenField(1, [...lenField(1, utf8(tag)), ...floatField(2, v)]));
    }
    if (vals.length) this.#record(eventBytes(Date.now() / 1000, step, lenField(5, vals)));
  }

  flush(): void {
    fsyncSync(this.#fd);
  }
  close(): void {
    fsyncSync(this.#fd);
    closeSync(this.#fd);
  }
}

export class TensorBoardSink implements MetricSink {
  readonly writer: TensorBoardWriter;
  /** startStep: the first step to be logged (resumed runs: checkpoint step + 1; see TensorBoardWriter). */
  constructor(logDir: string, startStep = 0) {
    this.writer = new TensorBoardWriter(logDir, { startStep });
  }
  log(step: number, values: Record<string, number | string>): void {
    const nums: Record<string, number> = {};
    for (const [k, v] of Object.entries(values)) if (typeof v === 'number') nums[k] = v;
    this.writer.scalars(step, nums);
  }
  close(): void {
    this.writer.close();
  }
}
