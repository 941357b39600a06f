// Builds native/*.cc into build/rdt_native.node against libtorch.
// libtorch comes from $LIBTORCH (an unpacked standalone libtorch: include/ and lib/) or, by default,
// from the Python `torch` package (`pip install torch`). Each .cc compiles on its own (in parallel,
// skipped when newer than its .o), so editing one op family rebuilds one file.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync, readFileSync, renameSync } from 'node:fs';
import { cpus } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const buildDir = join(root, 'build');
const objDir = join(buildDir, 'obj');
const out = join(buildDir, 'rdt_native.node');

function fail(msg) {
  console.error(`\nrdt-libero native build failed: ${msg}\n`);
  process.exit(1);
}

function findLibtorch() {
  const explicit = process.env.LIBTORCH;
  if (explicit) {
    const inc = join(explicit, 'include');
    const lib = join(explicit, 'lib');
    if (!existsSync(join(inc, 'ATen', 'ATen.h')) || !existsSync(lib))
      fail(`LIBTORCH=${explicit} does not look like libtorch: expected ${inc}/ATen/ATen.h and ${lib}/.\n` +
        'Unset LIBTORCH to use the Python torch package, or point it at an unpacked libtorch zip.');
    const cuda = readdirSync(lib).some((f) => f.startsWith('libtorch_cuda'));
    // The standalone zip names its ABI in the folder (cxx11-abi); torch >= 2.6 only ships that ABI.
    // c10d ships in every libtorch since 2.0; NCCL only in CUDA builds, with nccl.h beside the headers.
    const gloo = existsSync(join(inc, 'torch/csrc/distributed/c10d/ProcessGroupGloo.hpp'));
    const nccl = cuda && existsSync(join(inc, 'nccl.h')) ? inc : null;
    return { source: `LIBTORCH=${explicit}`, includes: [inc, join(inc, 'torch/csrc/api/include')], lib, abi: 1, cuda, version: 'libtorch', gloo, nccl };
  }
  const py = process.env.PYTHON || 'python3';
  const script = [
    'import json, os, torch, torch.utils.cpp_extension as c, torch.distributed as d',
    // NCCL's header comes with the nvidia-nccl pip package that CUDA wheels depend on.
    'nccl = None',
    'if d.is_available() and d.is_nccl_available():',
    '    try:',
    '        import nvidia.nccl as n; nccl = os.path.join(list(n.__path__)[0], "include")',
    '    except ImportError: pass',
    'print(json.dumps({"includes": c.include_paths(), "lib": c.library_paths()[0],',
    ' "abi": int(torch._C._GLIBCXX_USE_CXX11_ABI), "cuda": torch.version.cuda is not None, "version": torch.__version__,',
    ' "gloo": d.is_available() and d.is_gloo_available(), "nccl": nccl}))',
  ].join('\n');
  let info;
  try {
    info = JSON.parse(execFileSync(py, ['-c', script], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }));
  } catch (e) {
    fail(`could not import the Python torch package with '${py}' (${String(e.stderr || e.message).trim().split('\n').pop()}).\n` +
      'Install it with `pip install torch` (torch 2.1 or newer), set PYTHON to the interpreter that has it,\n' +
      'or set LIBTORCH to an unpacked libtorch directory.');
  }
  const [maj, min] = info.version.split('.').map(Number);
  if (maj < 2 || (maj === 2 && min < 1)) fail(`torch ${info.version} is too old; rdt-libero needs torch 2.1 or newer.`);
  return { source: `python torch ${info.version}`, ...info };
}

function nodeApiInclude() {
  const p = join(root, 'node_modules', 'node-api-headers', 'include');
  if (!existsSync(join(p, 'node_api.h'))) fail(`Node-API headers not found at ${p}; run \`npm ci\` first.`);
  return p;
}

function run(cmd, args) {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'inherit', 'inherit'] });
    p.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} exited with ${code}`))));
  });
}

const lt = findLibtorch();
const cxx = process.env.CXX || 'g++';
const flags = [
  '-std=c++20', '-O2', '-fPIC', '-fvisibility=hidden', '-Wno-deprecated-declarations',
  `-D_GLIBCXX_USE_CXX11_ABI=${lt.abi}`, '-DNAPI_VERSION=8', '-DNODE_GYP_MODULE_NAME=rdt_native',
  ...(lt.cuda ? ['-DRDT_WITH_CUDA=1'] : []),
  `-I${nodeApiInclude()}`, ...lt.includes.map((i) => `-I${i}`),
];
// libav (Debian's libavformat/libavcodec/libswscale/libavutil -dev packages) for the LeRobot video decoder in
// native/video_decode.cc, when pkg-config finds it; without it that file builds stubs that say what to install.
function findLibav() {
  const pkgs = ['libavformat', 'libavcodec', 'libswscale', 'libavutil'];
  try {
    const q = (...a) => execFileSync('pkg-config', [...a, ...pkgs], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    return { version: q('--modversion').split('\n').join('/'), cflags: q('--cflags').split(/\s+/).filter(Boolean), libs: q('--libs').split(/\s+/).filter(Boolean) };
  } catch {
    return null;
  }
}
const libav = findLibav();
// Only the c10d file sees the backend defines: c10d's Gloo header needs USE_C10D_GLOO and a few Gloo names
// the wheel lacks (native/gloo_decls); NCCL's needs nccl.h. They follow from the libtorch found, which the
// include paths in `flags` already stamp.
const fileFlags = {
  'ops_distributed.cc': [
    ...(lt.gloo ? ['-DRDT_WITH_GLOO=1', '-DUSE_C10D_GLOO=1', `-I${join(root, 'native', 'gloo_decls')}`] : []),
    ...(lt.nccl ? ['-DRDT_WITH_NCCL=1', '-DUSE_C10D_NCCL=1', `-I${lt.nccl}`] : []),
  ],
  'video_decode.cc': libav ? ['-DRDT_WITH_LIBAV=1', ...libav.cflags] : [],
};
// The stamp: flags every file shares, and each file's own; a change rebuilds the files it concerns.
const stampObj = { flags, cxx, files: fileFlags };
const stamp = JSON.stringify(stampObj);
mkdirSync(objDir, { recursive: true });
const stampFile = join(objDir, 'flags.json');
let old = {};
try {
  old = JSON.parse(readFileSync(stampFile, 'utf8'));
} catch {
  // no stamp yet (or unreadable): everything compiles
}
const flagsChanged = JSON.stringify({ flags: old.flags, cxx: old.cxx }) !== JSON.stringify({ flags, cxx });
const ownFlagsChanged = (s) => JSON.stringify(old.files?.[s] ?? []) !== JSON.stringify(fileFlags[s] ?? []);

const srcDir = join(root, 'native');
const sources = readdirSync(srcDir).filter((f) => f.endsWith('.cc')).sort();
const headers = readdirSync(srcDir).filter((f) => f.endsWith('.h')).map((h) => statSync(join(srcDir, h)).mtimeMs);
const newestHeader = Math.max(0, ...headers);

const todo = sources.filter((s) => {
  const o = join(objDir, s.replace(/\.cc$/, '.o'));
  if (flagsChanged || ownFlagsChanged(s) || !existsSync(o)) return true;
  const ot = statSync(o).mtimeMs;
  return statSync(join(srcDir, s)).mtimeMs > ot || newestHeader > ot;
});

console.log(`native: libtorch from ${lt.source} (${lt.cuda ? 'CUDA' : 'CPU'}${lt.gloo ? ', gloo' : ''}${lt.nccl ? ', nccl' : ''}), ` +
  `${libav ? `libav ${libav.version}` : 'no libav (LeRobot video datasets need: apt-get install libavformat-dev libavcodec-dev libswscale-dev libavutil-dev pkg-config)'}, ` +
  `compiling ${todo.length}/${sources.length} files`);
const jobs = Math.max(1, Number(process.env.JOBS) || cpus().length);
const queue = [...todo];
try {
  await Promise.all(Array.from({ length: jobs }, async () => {
    while (queue.length) {
      const s = queue.shift();
      const o = join(objDir, s.replace(/\.cc$/, '.o'));
      await run(cxx, [...flags, ...(fileFlags[s] ?? []), '-c', join(srcDir, s), '-o', o + '.tmp']);
      renameSync(o + '.tmp', o);
    }
  }));
} catch (e) {
  fail(`${e.message} while compiling against ${lt.source} (includes: ${lt.includes.join(', ')}).`);
}
writeFileSync(stampFile, stamp);

const objs = sources.map((s) => join(objDir, s.replace(/\.cc$/, '.o')));
const newestObj = Math.max(...objs.map((o) => statSync(o).mtimeMs));
if (todo.length || !existsSync(out) || statSync(out).mtimeMs < newestObj) {
  const libs = ['-ltorch', '-ltorch_cpu', '-lc10', ...(lt.cuda ? ['-ltorch_cuda', '-lc10_cuda'] : [])];
  try {
    await run(cxx, ['-shared', '-o', out + '.tmp', ...objs, `-L${lt.lib}`, `-Wl,-rpath,${lt.lib}`,
      '-Wl,--no-as-needed', ...libs, ...(libav ? libav.libs : [])]);
  } catch (e) {
    fail(`linking failed against ${lt.lib}: ${e.message}`);
  }
  renameSync(out + '.tmp', out);
}
writeFileSync(join(buildDir, 'libtorch.json'), JSON.stringify(lt, null, 2));
console.log(`native: ${out}`);
