// The golden fixtures this repository carries (test/fixtures): every file is named, with its size and its producer,
// in test/fixtures/README.md; none has changed since it was copied from the producers (SHA256SUMS); and the encoder
// files still carry the sha256 their generator recorded (encoders/manifest.json) and the rdt files its sizes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { repoFixturesDir } from './helpers/fixtures.js';

const root = repoFixturesDir();
const files = (readdirSync(root, { recursive: true }) as string[]).map((f) => f.toString())
  .filter((f) => statSync(join(root, f)).isFile()).sort();
const sha256 = (f: string) => createHash('sha256').update(readFileSync(join(root, f))).digest('hex');

/** `| \`path\` | 1,234 | producer |` rows of the README's "Where each file comes from" table. */
function readmeTable(): Map<string, { bytes: number; producer: string }> {
  const text = readFileSync(join(root, 'README.md'), 'utf8');
  const section = text.slice(text.indexOf('## Where each file comes from'));
  const rows = new Map<string, { bytes: number; producer: string }>();
  for (const m of section.matchAll(/^\| `([^`]+)` \| ([\d,]+) \| (.+) \|$/gm)) rows.set(m[1], { bytes: Number(m[2].replace(/,/g, '')), producer: m[3].trim() });
  return rows;
}

test('every fixture file is in the README table with its size and a producer, and every row is a file', () => {
  const table = readmeTable();
  const listed = files.filter((f) => f !== 'README.md' && f !== 'SHA256SUMS');
  assert.ok(listed.length >= 30, `${listed.length} fixture files`);
  for (const f of listed) {
    const row = table.get(f);
    assert.ok(row, `${f} is not in test/fixtures/README.md's table`);
    assert.equal(statSync(join(root, f)).size, row.bytes, `${f}: size`);
    assert.ok(row.producer.length > 10, `${f}: producer`);
  }
  for (const f of table.keys()) assert.ok(files.includes(f), `the README lists ${f}, which is not in test/fixtures`);
});

test('no fixture changed since it was copied (SHA256SUMS covers every file but the README and itself)', () => {
  const sums = new Map(readFileSync(join(root, 'SHA256SUMS'), 'utf8').trim().split('\n').map((l) => {
    const [h, f] = l.split(/\s+\*?/);
    return [f, h] as const;
  }));
  assert.deepEqual([...sums.keys()].sort(), files.filter((f) => f !== 'README.md' && f !== 'SHA256SUMS'));
  for (const [f, h] of sums) assert.equal(sha256(f), h, `${f} changed: fixtures are never edited or regenerated`);
});

test('the producers\' own records agree: encoders/manifest.json sha256 and bytes, rdt/tiny_a.manifest.json bytes', () => {
  const enc = JSON.parse(readFileSync(join(root, 'encoders', 'manifest.json'), 'utf8')) as { files: Record<string, { bytes: number; sha256: string }> };
  assert.ok(Object.keys(enc.files).length >= 20);
  for (const [f, { bytes, sha256: h }] of Object.entries(enc.files)) {
    const p = relative(root, join(root, 'encoders', f));
    assert.equal(statSync(join(root, p)).size, bytes, `${p}: bytes`);
    assert.equal(sha256(p), h, `${p}: sha256`);
  }
  const rdt = JSON.parse(readFileSync(join(root, 'rdt', 'tiny_a.manifest.json'), 'utf8')) as { files: Record<string, { bytes: number }> };
  for (const [f, { bytes }] of Object.entries(rdt.files)) assert.equal(statSync(join(root, 'rdt', f)).size, bytes, `rdt/${f}: bytes`);
  const sched = JSON.parse(readFileSync(join(root, 'schedulers.manifest.json'), 'utf8')) as { file_bytes: number };
  assert.equal(statSync(join(root, 'schedulers.safetensors')).size, sched.file_bytes);
});
