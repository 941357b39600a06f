// Checksums of saved weights: recorded at save (SHA-256 equal to Python's hashlib), verified at load; a flipped
// byte, a truncated file or a damaged header is named, a folder without checksums (the hub's) still loads.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync, openSync, writeSync, closeSync, truncateSync, statSync } from 'node:fs';
import { randomFillSync } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as torch from '../src/engine/index.js';
import { rdtPreset } from '../src/model/config.js';
import { RDTRunner } from '../src/model/runner.js';
import { loadRdtCheckpoint, saveRdtCheckpoint } from '../src/model/checkpoint.js';
import { CHECKSUMS_FILE, recordChecksums, verifyChecksum } from '../src/util/checksums.js';
import { runPython } from './helpers/python.js';

const tmp = mkdtempSync(join(tmpdir(), 'rdt-sums-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

function flipByte(path: string, offset: number): void {
  const fd = openSync(path, 'r+');
  const b = Buffer.alloc(1);
  b[0] = readFileSync(path)[offset] ^ 0x01;
  writeSync(fd, b, 0, 1, offset);
  closeSync(fd);
}

test('saveRdtCheckpoint records SHA-256 (as hashlib computes it); load verifies and names a damaged file', () => {
  const dir = join(tmp, 'model');
  const runner = new RDTRunner(rdtPreset('tiny'), { generator: new torch.Generator(0) });
  saveRdtCheckpoint(runner, dir);
  runner.dispose();
  const m = JSON.parse(readFileSync(join(dir, CHECKSUMS_FILE), 'utf8'));
  const file = join(dir, 'model.safetensors');
  const py = runPython('import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())', file).trim();
  assert.equal(m.files['model.safetensors'].sha256, py);
  assert.equal(m.files['model.safetensors'].size, statSync(file).size);
  loadRdtCheckpoint(dir).runner.dispose(); // intact: loads

  const size = statSync(file).size;
  flipByte(file, Math.floor(size / 2)); // a flipped bit in the middle of the tensor data
  assert.throws(() => loadRdtCheckpoint(dir, { verify: 'full' }), (e: Error) =>
    e.name === 'ChecksumError' && e.message.includes(file) && /SHA-256 \(full check\) differs/.test(e.message) && !e.message.includes('\n'));
  // a file this small is hashed whole by the quick check too
  assert.throws(() => loadRdtCheckpoint(dir), /SHA-256 \(quick check\) differs/);
  // verification off: the damage goes unnoticed, as before checksums existed
  loadRdtCheckpoint(dir, { verify: 'none' }).runner.dispose();
  flipByte(file, Math.floor(size / 2));
  truncateSync(file, size - 10);
  assert.throws(() => loadRdtCheckpoint(dir), new RegExp(`${size - 10} bytes, ${size} recorded at save`));
});

test('a folder without checksums.json (e.g. the hub rdt-1b) loads unverified', () => {
  const dir = join(tmp, 'hub');
  const runner = new RDTRunner(rdtPreset('tiny'), { generator: new torch.Generator(1) });
  saveRdtCheckpoint(runner, dir, { checksums: false });
  runner.dispose();
  assert.equal(verifyChecksum(join(dir, 'model.safetensors'), 'full'), false);
  loadRdtCheckpoint(dir).runner.dispose();
});

test('quick check on a large file: a few MiB read; catches the header, the tail and sampled blocks; full catches any byte', () => {
  const dir = join(tmp, 'big');
  mkdirSync(join(dir, 'ema'), { recursive: true });
  const size = 24 << 20;
  writeFileSync(join(dir, 'model.safetensors'), randomFillSync(Buffer.alloc(size)));
  writeFileSync(join(dir, 'ema', 'model.safetensors'), randomFillSync(Buffer.alloc(1000)));
  const m = recordChecksums(dir);
  assert.deepEqual(Object.keys(m.files).sort(), ['ema/model.safetensors', 'model.safetensors']);
  const f = join(dir, 'model.safetensors');
  assert.equal(verifyChecksum(f, 'quick'), true);
  assert.equal(verifyChecksum(join(dir, 'ema', 'model.safetensors'), 'full'), true); // covered by the parent's manifest
  // a byte between the sampled blocks: only the full check sees it
  const between = (1 << 20) + 16; // just after the first MiB, before the first sampled block
  flipByte(f, between);
  assert.equal(verifyChecksum(f, 'quick'), true);
  assert.throws(() => verifyChecksum(f, 'full'), /full check/);
  flipByte(f, between);
  for (const at of [10, size - 5]) {
    flipByte(f, at);
    assert.throws(() => verifyChecksum(f, 'quick'), /quick check/);
    flipByte(f, at);
  }
  assert.equal(verifyChecksum(f, 'full'), true);
});
