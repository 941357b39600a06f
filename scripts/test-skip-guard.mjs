// A node:test reporter that makes `npm test` (and so CI) fail when a test was skipped for any reason but the two a
// machine may legitimately lack: CUDA ("no CUDA ...", or its mirror "CUDA is available here" for the tests that
// check the no-CUDA path) and the real LIBERO simulator ("no LIBERO interpreter given"). A skip for any other reason
// (a missing fixture, a missing Python package, a test switched off) would otherwise pass unnoticed.
import { relative } from 'node:path';

const ALLOWED = [/^no CUDA\b/, /^CUDA is available here\b/, /no LIBERO interpreter given/];

export default async function* skipGuard(source) {
  const skipped = [];
  const todos = [];
  for await (const ev of source) {
    if ((ev.type === 'test:pass' || ev.type === 'test:fail') && ev.data.skip !== undefined && ev.data.skip !== false) {
      skipped.push({ name: ev.data.name, reason: ev.data.skip === true ? '(no reason given)' : String(ev.data.skip), file: ev.data.file });
    }
    // A todo test runs but cannot fail the suite: it marks a target not met yet. Listed so it is never silent.
    if ((ev.type === 'test:pass' || ev.type === 'test:fail') && ev.data.todo !== undefined && ev.data.todo !== false) {
      todos.push({ name: ev.data.name, reason: ev.data.todo === true ? '(no reason given)' : String(ev.data.todo), file: ev.data.file, failed: ev.type === 'test:fail' });
    }
  }
  const bad = skipped.filter((s) => !ALLOWED.some((re) => re.test(s.reason)));
  const where = (s) => `${s.file ? relative(process.cwd(), s.file) : '?'}: ${s.name} (${s.reason})`;
  if (skipped.length > bad.length) yield `skipped for lack of hardware or simulator: ${skipped.length - bad.length}\n${skipped.filter((s) => !bad.includes(s)).map((s) => `  ${where(s)}\n`).join('')}`;
  if (todos.length) yield `targets not met yet (todo tests, run but not counted): ${todos.length}\n${todos.map((t) => `  ${where(t)}${t.failed ? ' - still failing' : ' - passes now: drop the todo'}\n`).join('')}`;
  if (bad.length) {
    process.exitCode = 1;
    yield `\nFAILED: ${bad.length} test(s) skipped for a reason other than "no CUDA" or "no LIBERO interpreter given":\n${bad.map((s) => `  ${where(s)}\n`).join('')}`;
  }
}
