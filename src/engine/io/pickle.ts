// A pickle virtual machine that understands exactly what a PyTorch state dict needs (protocols 2-5)
// and nothing more. It never runs code: a GLOBAL is looked up in the caller's allowlist, and every
// opcode outside the list below is an error naming it, its byte position and the file.
//
// Python values come back as: dict / OrderedDict -> Map (insertion order, any key type), list and
// tuple -> array, int -> number (bigint beyond 2^53), float -> number, str -> string,
// bytes -> Uint8Array, None -> null, bool -> boolean. Attributes restored by BUILD (an
// OrderedDict's `_metadata`) are kept aside: read them with pickleAttributes(obj).
import { CheckpointError } from './errors.js';

/** A Python callable or class from the allowlist: REDUCE and NEWOBJ call `call` with the arguments. */
export class PyCallable {
  constructor(
    readonly qualname: string,
    readonly call: (args: unknown[]) => unknown,
  ) {}
}

export interface UnpickleOptions {
  /** The file the pickle came from (for error messages). */
  file: string;
  /** What to call the pickle in messages (e.g. the zip entry 'archive/data.pkl'); default 'pickle'. */
  what?: string;
  /** Resolve `module.name`; return undefined to refuse it (the VM then raises a named error). */
  findGlobal: (module: string, name: string) => unknown;
  /** BINPERSID: turn a persistent id (a tuple) into a value. */
  persistentLoad?: (pid: unknown) => unknown;
}

const attrs = new WeakMap<object, Map<string, unknown>>();

/** Attributes a pickle set on an object with BUILD (e.g. a state dict's `_metadata`), if any. */
export function pickleAttributes(obj: object): Map<string, unknown> | undefined {
  return attrs.get(obj);
}

const OPNAMES: Record<number, string> = {
  0x80: 'PROTO', 0x95: 'FRAME', 0x28: 'MARK', 0x2e: 'STOP', 0x7d: 'EMPTY_DICT', 0x5d: 'EMPTY_LIST', 0x29: 'EMPTY_TUPLE',
  0x85: 'TUPLE1', 0x86: 'TUPLE2', 0x87: 'TUPLE3', 0x74: 'TUPLE', 0x64: 'DICT', 0x6c: 'LIST', 0x73: 'SETITEM',
  0x75: 'SETITEMS', 0x61: 'APPEND', 0x65: 'APPENDS', 0x62: 'BUILD', 0x4a: 'BININT', 0x4b: 'BININT1', 0x4d: 'BININT2',
  0x8a: 'LONG1', 0x47: 'BINFLOAT', 0x4e: 'NONE', 0x88: 'NEWTRUE', 0x89: 'NEWFALSE', 0x8c: 'SHORT_BINUNICODE',
  0x58: 'BINUNICODE', 0x8d: 'BINUNICODE8', 0x43: 'SHORT_BINBYTES', 0x42: 'BINBYTES', 0x8e: 'BINBYTES8', 0x71: 'BINPUT',
  0x72: 'LONG_BINPUT', 0x94: 'MEMOIZE', 0x68: 'BINGET', 0x6a: 'LONG_BINGET', 0x63: 'GLOBAL', 0x93: 'STACK_GLOBAL',
  0x52: 'REDUCE', 0x81: 'NEWOBJ', 0x51: 'BINPERSID',
};

// Names of the opcodes we refuse, so the error can say which one it met.
const REFUSED: Record<number, string> = {
  0x69: 'INST', 0x6f: 'OBJ', 0x92: 'NEWOBJ_EX', 0x50: 'PERSID', 0x30: 'POP', 0x31: 'POP_MARK', 0x32: 'DUP',
  0x46: 'FLOAT', 0x49: 'INT', 0x4c: 'LONG', 0x53: 'STRING', 0x54: 'BINSTRING', 0x55: 'SHORT_BINSTRING',
  0x56: 'UNICODE', 0x67: 'GET', 0x70: 'PUT', 0x8b: 'LONG4', 0x82: 'EXT1', 0x83: 'EXT2', 0x84: 'EXT4',
  0x8f: 'EMPTY_SET', 0x90: 'ADDITEMS', 0x91: 'FROZENSET', 0x96: 'BYTEARRAY8', 0x97: 'NEXT_BUFFER',
  0x98: 'READONLY_BUFFER',
};

function typeName(v: unknown): string {
  if (v === null) return 'None';
  if (v instanceof Map) return 'dict';
  if (Array.isArray(v)) return 'list/tuple';
  if (v instanceof PyCallable) return v.qualname;
  if (v instanceof Uint8Array) return 'bytes';
  return typeof v === 'object' ? (v.constructor?.name ?? 'object') : typeof v;
}

/** Run the pickle in `buf` and return the value it builds. */
export function unpickle(buf: Uint8Array, opts: UnpickleOptions): unknown {
  const data = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const memo = new Map<number, unknown>();
  let stack: unknown[] = [];
  const metastack: unknown[][] = [];
  let pos = 0;
  let opPos = 0;
  let opName = '';

  const fail = (msg: string): never => {
    throw new CheckpointError(opts.file, `${opts.what ?? 'pickle'}: ${opName} at byte ${opPos}: ${msg}`);
  };
  const need = (n: number): void => {
    if (pos + n > data.length) fail(`the pickle ends after ${data.length} bytes, in the middle of an opcode (truncated or corrupt file)`);
  };
  const u8 = (): number => { need(1); return data[pos++]; };
  const u16 = (): number => { need(2); const v = data.readUInt16LE(pos); pos += 2; return v; };
  const u32 = (): number => { need(4); const v = data.readUInt32LE(pos); pos += 4; return v; };
  const u64 = (): number => {
    need(8);
    const v = data.readBigUInt64LE(pos);
    pos += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) fail(`length ${v} is too large`);
    return Number(v);
  };
  const bytes = (n: number): Buffer => { need(n); const b = data.subarray(pos, pos + n); pos += n; return b; };
  const line = (): string => {
    const end = data.indexOf(0x0a, pos);
    if (end < 0) fail('unterminated text line (truncated or corrupt file)');
    const s = data.toString('utf8', pos, end);
    pos = end + 1;
    return s;
  };
  const pop = (): unknown => {
    if (stack.length === 0) fail('the stack is empty (corrupt pickle)');
    return stack.pop();
  };
  const top = (): unknown => {
    if (stack.length === 0) fail('the stack is empty (corrupt pickle)');
    return stack[stack.length - 1];
  };
  const popMark = (): unknown[] => {
    const items = stack;
    if (metastack.length === 0) fail('no MARK to pop to (corrupt pickle)');
    stack = metastack.pop()!;
    return items;
  };
  const asMap = (v: unknown, what: string): Map<unknown, unknown> => {
    if (!(v instanceof Map)) fail(`${what} on a ${typeName(v)}, expected a dict`);
    return v as Map<unknown, unknown>;
  };
  const asList = (v: unknown, what: string): unknown[] => {
    if (!Array.isArray(v)) fail(`${what} on a ${typeName(v)}, expected a list`);
    return v as unknown[];
  };
  const setItems = (d: Map<unknown, unknown>, items: unknown[]): void => {
    if (items.length % 2) fail('odd number of items for a dict');
    for (let i = 0; i < items.length; i += 2) d.set(items[i], items[i + 1]);
  };
  const global = (module: string, name: string): unknown => {
    const v = opts.findGlobal(module, name);
    if (v === undefined)
      fail(`global ${module}.${name} is not allowed. A checkpoint is never allowed to run code; only the classes and ` +
        'functions a tensor state dict needs are accepted (re-save the checkpoint as a plain state dict of tensors)');
    return v;
  };
  const call = (fn: unknown, args: unknown, how: string): unknown => {
    if (!(fn instanceof PyCallable)) fail(`${how} of a ${typeName(fn)}, which is not an allowed callable`);
    if (!Array.isArray(args)) fail(`${how} arguments must be a tuple, not a ${typeName(args)}`);
    try {
      return (fn as PyCallable).call(args as unknown[]);
    } catch (e) {
      if (e instanceof CheckpointError) throw e;
      fail(`${(fn as PyCallable).qualname}${how === 'NEWOBJ' ? '.__new__' : ''}(...) failed: ${(e as Error).message}`);
    }
  };
  const decode = (b: Buffer): string => b.toString('utf8');

  for (;;) {
    opPos = pos;
    if (pos >= data.length) {
      opName = 'end';
      fail('the pickle ended without a STOP opcode (truncated or corrupt file)');
    }
    const op = data[pos++];
    opName = OPNAMES[op] ?? REFUSED[op] ?? `0x${op.toString(16).padStart(2, '0')}`;
    switch (op) {
      case 0x80: { // PROTO
        const p = u8();
        if (p < 2 || p > 5) fail(`protocol ${p} is not supported (2 to 5 are)`);
        break;
      }
      case 0x95: u64(); break; // FRAME: a length hint only
      case 0x28: metastack.push(stack); stack = []; break; // MARK
      case 0x2e: { // STOP
        const v = pop();
        return v;
      }
      case 0x7d: stack.push(new Map()); break; // EMPTY_DICT
      case 0x5d: stack.push([]); break; // EMPTY_LIST
      case 0x29: stack.push([]); break; // EMPTY_TUPLE
      case 0x85: { const a = pop(); stack.push([a]); break; }
      case 0x86: { const b = pop(); const a = pop(); stack.push([a, b]); break; }
      case 0x87: { const c = pop(); const b = pop(); const a = pop(); stack.push([a, b, c]); break; }
      case 0x74: case 0x6c: { const items = popMark(); stack.push(items); break; } // TUPLE, LIST
      case 0x64: { const d = new Map(); setItems(d, popMark()); stack.push(d); break; } // DICT
      case 0x73: { const v = pop(); const k = pop(); asMap(top(), 'SETITEM').set(k, v); break; }
      case 0x75: { const items = popMark(); setItems(asMap(top(), 'SETITEMS'), items); break; }
      case 0x61: { const v = pop(); asList(top(), 'APPEND').push(v); break; }
      case 0x65: { const items = popMark(); asList(top(), 'APPENDS').push(...items); break; }
      case 0x62: { // BUILD: obj.__setstate__(state) / obj.__dict__.update(state)
        const state = pop();
        const obj = top();
        if (!(obj instanceof Map)) fail(`BUILD of a ${typeName(obj)} is not supported (only dicts carry attributes here)`);
        let dict: unknown = state;
        let slots: unknown = null;
        if (Array.isArray(state) && state.length === 2) [dict, slots] = state;
        const a = attrs.get(obj as object) ?? new Map<string, unknown>();
        for (const part of [dict, slots]) {
          if (part === null) continue;
          for (const [k, v] of asMap(part, 'BUILD state')) {
            if (typeof k !== 'string') fail('attribute names must be strings');
            a.set(k as string, v);
          }
        }
        attrs.set(obj as object, a);
        break;
      }
      case 0x4a: { need(4); stack.push(data.readInt32LE(pos)); pos += 4; break; } // BININT
      case 0x4b: stack.push(u8()); break; // BININT1
      case 0x4d: stack.push(u16()); break; // BININT2
      case 0x8a: { // LONG1: little-endian two's complement
        const n = u8();
        const b = bytes(n);
        let v = 0n;
        for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
        if (n > 0 && b[n - 1] & 0x80) v -= 1n << BigInt(8 * n);
        stack.push(v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v);
        break;
      }
      case 0x47: { need(8); stack.push(data.readDoubleBE(pos)); pos += 8; break; } // BINFLOAT
      case 0x4e: stack.push(null); break;
      case 0x88: stack.push(true); break;
      case 0x89: stack.push(false); break;
      case 0x8c: stack.push(decode(bytes(u8()))); break; // SHORT_BINUNICODE
      case 0x58: stack.push(decode(bytes(u32()))); break; // BINUNICODE
      case 0x8d: stack.push(decode(bytes(u64()))); break; // BINUNICODE8
      case 0x43: stack.push(new Uint8Array(bytes(u8()))); break; // SHORT_BINBYTES
      case 0x42: stack.push(new Uint8Array(bytes(u32()))); break; // BINBYTES
      case 0x8e: stack.push(new Uint8Array(bytes(u64()))); break; // BINBYTES8
      case 0x71: memo.set(u8(), top()); break; // BINPUT
      case 0x72: memo.set(u32(), top()); break; // LONG_BINPUT
      case 0x94: memo.set(memo.size, top()); break; // MEMOIZE
      case 0x68: case 0x6a: { // BINGET, LONG_BINGET
        const i = op === 0x68 ? u8() : u32();
        if (!memo.has(i)) fail(`memo entry ${i} was never stored (corrupt pickle)`);
        stack.push(memo.get(i));
        break;
      }
      case 0x63: { const module = line(); const name = line(); stack.push(global(module, name)); break; } // GLOBAL
      case 0x93: { // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') fail('module and name must be strings');
        stack.push(global(module as string, name as string));
        break;
      }
      case 0x52: { const args = pop(); const fn = pop(); stack.push(call(fn, args, 'REDUCE')); break; }
      case 0x81: { const args = pop(); const cls = pop(); stack.push(call(cls, args, 'NEWOBJ')); break; }
      case 0x51: { // BINPERSID
        const pid = pop();
        if (!opts.persistentLoad) fail('persistent ids are not expected in this pickle');
        try {
          stack.push(opts.persistentLoad!(pid));
        } catch (e) {
          if (e instanceof CheckpointError) throw e;
          fail((e as Error).message);
        }
        break;
      }
      default:
        fail(`opcode ${opName} (0x${op.toString(16).padStart(2, '0')}) is not allowed: only the opcodes a tensor state ` +
          'dict needs are accepted, so this file holds something else (or is corrupt)');
    }
  }
}
