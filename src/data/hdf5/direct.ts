// Direct reads of contiguous, unfiltered datasets (LIBERO's image arrays): each h5wasm slice call costs ~0.1-0.3 ms
// of fixed overhead (open by path, selection, close), several times h5py's. For a contiguous dataset the bytes of
// frames t0..t1 sit at one file offset, so one pread gets them. The offset comes from the dataset's object header
// (its address is what h5wasm's object reference holds), parsed here for the Data Layout message; every located
// dataset is verified against h5wasm's own read of its first and last rows before it is used, and anything
// unexpected (compact/chunked/virtual layout, filters, an unknown header version) falls back to h5wasm.
import { readSync } from 'node:fs';

export interface SuperblockInfo {
  base: number;
  sizeOffsets: number;
  sizeLengths: number;
}

function readAt(fd: number, pos: number, len: number): Buffer {
  const b = Buffer.alloc(len);
  const n = readSync(fd, b, 0, len, pos);
  return n === len ? b : b.subarray(0, n);
}

function uint(b: Buffer, off: number, size: number): number {
  let v = 0;
  for (let i = size - 1; i >= 0; i--) v = v * 256 + b[off + i];
  return v;
}

const UNDEF = 2 ** 53; // all-ones addresses read as ~1.8e19 (undefined address)

/** Messages of an object header (v1 or v2), following continuation blocks. Returns [type, data] pairs. */
function headerMessages(fd: number, addr: number, sb: SuperblockInfo): [number, Buffer][] {
  const out: [number, Buffer][] = [];
  const O = sb.sizeOffsets, L = sb.sizeLengths;
  const head = readAt(fd, sb.base + addr, 64);
  const blocks: [number, number][] = []; // [file position, length] of message blocks
  let v2 = false;
  let trackOrder = false;
  if (head.toString('latin1', 0, 4) === 'OHDR') {
    v2 = true;
    const flags = head[5];
    let p = 6;
    if (flags & 0x20) p += 16;
    if (flags & 0x10) p += 4;
    const szBytes = 1 << (flags & 3);
    const chunk0 = uint(head, p, szBytes);
    p += szBytes;
    trackOrder = (flags & 0x04) !== 0;
    blocks.push([sb.base + addr + p, chunk0]);
  } else if (head[0] === 1) {
    blocks.push([sb.base + addr + 16, uint(head, 8, 4)]);
  } else return out;
  for (let bi = 0; bi < blocks.length && bi < 64; bi++) {
    const [pos, len] = blocks[bi];
    const b = readAt(fd, pos, len);
    let p = v2 && bi > 0 ? 4 : 0; // continuation chunks of v2 start with 'OCHK'
    const end = v2 ? len - (bi > 0 ? 4 : 0) : len; // ... and v2 blocks end with a checksum (chunk 0's sits after len)
    const hdr = v2 ? 4 + (trackOrder ? 2 : 0) : 8;
    while (p + hdr <= end) {
      const type = v2 ? b[p] : b.readUInt16LE(p);
      const size = v2 ? b.readUInt16LE(p + 1) : b.readUInt16LE(p + 2);
      const data = b.subarray(p + hdr, p + hdr + size);
      p += hdr + size;
      if (type === 0x10) blocks.push([sb.base + uint(data, 0, O), uint(data, O, L)]);
      else out.push([type, data]);
    }
  }
  return out;
}

/** The file position and byte size of a contiguous dataset's data, or null. */
export function contiguousExtent(fd: number, headerAddr: number, sb: SuperblockInfo): { pos: number; size: number } | null {
  let msgs: [number, Buffer][];
  try {
    msgs = headerMessages(fd, headerAddr, sb);
  } catch {
    return null;
  }
  const layout = msgs.find(([t]) => t === 0x08)?.[1];
  if (!layout) return null;
  const O = sb.sizeOffsets, L = sb.sizeLengths;
  const version = layout[0];
  if (version >= 3) {
    if (layout[1] !== 1) return null; // 1 = contiguous
    const a = uint(layout, 2, O);
    if (a >= UNDEF) return null;
    return { pos: sb.base + a, size: uint(layout, 2 + O, L) };
  }
  if (version === 1 || version === 2) {
    if (layout[2] !== 1) return null;
    const a = uint(layout, 8, O);
    if (a >= UNDEF) return null;
    return { pos: sb.base + a, size: -1 };
  }
  return null;
}

/** Reads `len` bytes at `pos` into a new array (fails loudly on a short read). */
export function preadExact(fd: number, pos: number, len: number): Uint8Array {
  const b = new Uint8Array(len);
  let got = 0;
  while (got < len) {
    const n = readSync(fd, b, got, len - got, pos + got);
    if (n <= 0) throw new Error(`short read: ${got} of ${len} bytes at offset ${pos}`);
    got += n;
  }
  return b;
}
