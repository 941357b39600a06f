// Checks the import graph of src/ (docs/architecture.md, "Layers and folders"): no import cycle, and no import from a
// lower layer to a higher one. Every import counts: `import type`, `export ... from`, side-effect and dynamic
// `import()`, since a type-only cycle still ties the files together for a reader. Prints one line per problem and
// exits 1 if there is any. Usage: node scripts/check-imports.mjs [root]   (root holds src/; default: this repo)
import { readdirSync, readFileSync, existsSync, statSync } from 'node:fs';
import { join, relative, dirname, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

// Lower rank may not import higher rank. Folders of one rank may import each other unless named in APART.
export const LAYERS = [['util', 'engine', 'metrics'], ['model', 'encoders', 'data'], ['policy'], ['openpi'], ['train', 'eval', 'serve'], ['demo'], ['cli']];
const APART = new Set(['train', 'eval', 'serve']); // peers that must not import each other
const RANK = new Map(LAYERS.flatMap((folders, rank) => folders.map((f) => [f, rank])));

function sources(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    return e.isDirectory() ? sources(p) : e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [p] : [];
  });
}

function resolveImport(from, spec) {
  if (!spec.startsWith('.')) return null; // packages and node: builtins are outside the graph
  const base = resolve(dirname(from), spec);
  for (const cand of [base.replace(/\.js$/, '.ts'), base + '.ts', join(base, 'index.ts')]) {
    if (existsSync(cand) && statSync(cand).isFile()) return cand;
  }
  return null; // tsc reports unresolved imports
}

export function checkImports(root) {
  const src = join(root, 'src');
  const files = sources(src).sort();
  const rel = (f) => relative(root, f).split(sep).join('/');
  const folder = (f) => relative(src, f).split(sep)[0];
  const graph = new Map(files.map((f) => {
    const { importedFiles } = ts.preProcessFile(readFileSync(f, 'utf8'), true, true);
    const deps = importedFiles.map((i) => resolveImport(f, i.fileName)).filter((d) => d && d.startsWith(src + sep));
    return [f, [...new Set(deps)].sort()];
  }));
  const problems = [];

  for (const f of files) {
    const a = folder(f);
    if (!RANK.has(a)) { problems.push(`layer: ${rel(f)} is in src/${a}/, which is in no layer (add it to LAYERS in scripts/check-imports.mjs and to docs/architecture.md)`); continue; }
    for (const d of graph.get(f)) {
      const b = folder(d);
      if (a === b || !RANK.has(b)) continue;
      const why = b === 'cli' ? 'nothing imports cli'
        : RANK.get(b) > RANK.get(a) ? `${a} is below ${b}`
        : APART.has(a) && APART.has(b) ? `${LAYERS[RANK.get(a)].join(', ')} must not import each other` : null;
      if (why) problems.push(`back-arrow: ${rel(f)} imports ${rel(d)} (${why})`);
    }
  }

  // Tarjan's strongly connected components; each component of more than one file (or a file importing itself)
  // holds at least one cycle: print its shortest cycle through the component's first file, and its size.
  let index = 0;
  const idx = new Map(), low = new Map(), stack = [], onStack = new Set(), comps = [];
  const visit = (v) => {
    idx.set(v, index); low.set(v, index); index++; stack.push(v); onStack.add(v);
    for (const w of graph.get(v)) {
      if (!idx.has(w)) { visit(w); low.set(v, Math.min(low.get(v), low.get(w))); }
      else if (onStack.has(w)) low.set(v, Math.min(low.get(v), idx.get(w)));
    }
    if (low.get(v) === idx.get(v)) {
      const comp = [];
      let w;
      do { w = stack.pop(); onStack.delete(w); comp.push(w); } while (w !== v);
      comps.push(comp.sort());
    }
  };
  for (const f of files) if (!idx.has(f)) visit(f);
  for (const comp of comps.sort((x, y) => x[0].localeCompare(y[0]))) {
    const start = comp[0];
    if (comp.length === 1 && !graph.get(start).includes(start)) continue;
    const inComp = new Set(comp), prev = new Map(), queue = [start];
    let end = null;
    while (queue.length && end === null) {
      const v = queue.shift();
      for (const w of graph.get(v)) {
        if (w === start) { end = v; break; }
        if (inComp.has(w) && !prev.has(w)) { prev.set(w, v); queue.push(w); }
      }
    }
    const path = [start];
    for (let v = end; v !== start; v = prev.get(v)) path.splice(1, 0, v);
    const more = comp.length > path.length ? ` (${comp.length} files tied: ${comp.map(rel).join(', ')})` : '';
    problems.push(`cycle: ${[...path, start].map(rel).join(' -> ')}${more}`);
  }
  return problems;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const root = resolve(process.argv[2] ?? join(dirname(fileURLToPath(import.meta.url)), '..'));
  const problems = checkImports(root);
  for (const p of problems) console.log(p);
  if (problems.length) process.exit(1);
  console.log('imports: ok (no cycle, no import up the layers)');
}
