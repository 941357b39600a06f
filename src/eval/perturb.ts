// Robustness evaluation: perturbation sets (`rdt-libero eval --perturb SPEC`), the one table that turns level names
// into magnitudes, and the per-episode draw of every perturbation's concrete values from the episode's seed.
//
// A spec is DIM:key=value[,key=value] ("camera:level=2", "noise:kind=blur,level=1", "language:mode=wrong"); several
// joined with '+' form one set ("camera:level=1+lighting:level=1"); a .yaml/.yml/.json file maps set names to a spec
// or a list of specs. Each set is one condition of the run beside the standard one (no perturbation), on the same
// episodes (same initial states, env seed and policy noise seeds), so the two differ only by the perturbation.
//
// Where each dimension is applied:
//   - in the simulator (sidecar/perturb_reach.py, sidecar/perturb_libero.py), after the fixed initial state is set
//     and before the wait steps: camera, lighting, texture, layout, robot_init. The harness draws their values
//     (layout: the sidecar draws, from the seed sent, because it re-draws placements that collide or do not settle);
//   - in the harness, so every policy (local or remote) gets them alike: noise (on the images the policy sees; the
//     video records those same images, so it shows what the policy saw) and language (the instruction sent).
// Level 0 is the identity of every dimension: the same values are sent with zero magnitudes, so a level-0 episode
// must reproduce the standard one exactly (a tested property).
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import jpeg from 'jpeg-js';
import { UsageError } from '../util/errors.js';
import { SEED_LIMIT } from '../policy/policy.js';
import { EvalError } from './errors.js';

export const DIMENSIONS = ['camera', 'lighting', 'texture', 'layout', 'robot_init', 'language', 'noise'] as const;
export type Dimension = (typeof DIMENSIONS)[number];
export const NOISE_KINDS = ['gaussian', 'blur', 'jpeg'] as const;
export type NoiseKind = (typeof NOISE_KINDS)[number];
export const LANGUAGE_MODES = ['paraphrase', 'wrong'] as const;

/**
 * Level -> magnitude, index = level (0 = identity). Ours, chosen so level 1 is mild, 2 what the two studies call a
 * modest change, 3 severe; the README's perturbation table lists them with their sources.
 */
export const LEVELS = {
  /** Agentview camera: position offset (m) in a random direction, rotation (deg) about a random axis. */
  camera: { pos_m: [0, 0.025, 0.05, 0.1], rot_deg: [0, 2.5, 5, 10] },
  /** Lights: intensity scaled by 1 +- d, direction turned by deg, ambient raised by a (each light). */
  lighting: { intensity: [0, 0.25, 0.5, 0.75], direction_deg: [0, 15, 30, 45], ambient: [0, 0.1, 0.2, 0.3] },
  /** Table, floor and walls: each rgb moved by this distance (rgb in [0, 1]) in a random direction, clipped. */
  texture: { rgb: [0, 0.15, 0.3, 0.5] },
  /** Every movable object shifted by this distance (m) in its own random direction and turned by up to yaw deg. */
  layout: { shift_m: [0, 0.02, 0.05, 0.1], yaw_deg: [0, 10, 20, 45] },
  /** Gaussian noise on each robot joint of the initial configuration, std in rad. */
  robot_init: { joint_std_rad: [0, 0.02, 0.05, 0.1] },
  /** Image noise: gaussian std (of 255), blur gaussian sigma (px at 128 px, scaled with the resolution), JPEG quality (100 = level 0, skipped). */
  noise: { gaussian_std: [0, 5, 13, 25], blur_sigma_px: [0, 0.5, 1, 2], jpeg_quality: [100, 50, 20, 10] },
} as const;
export const MAX_LEVEL = 3;
/** Level names, accepted for the numbers (canonical names use the number). */
export const LEVEL_NAMES = ['none', 'mild', 'moderate', 'severe'] as const;

export interface PerturbSpec {
  dim: Dimension;
  level?: number;
  kind?: NoiseKind;
  mode?: (typeof LANGUAGE_MODES)[number];
  /** language:mode=paraphrase: a YAML/JSON file mapping task names (or instructions) to lists of paraphrases. */
  file?: string;
  /** sha256 of that file, so a folder's settings change when its paraphrases do. */
  file_sha256?: string;
}

export interface PerturbationSet {
  /** The set's name: its canonical spec(s) joined with '+', or its name in a YAML file. */
  name: string;
  specs: PerturbSpec[];
}

const KEYS: Record<Dimension, string[]> = {
  camera: ['level'], lighting: ['level'], texture: ['level'], layout: ['level'], robot_init: ['level'],
  language: ['mode', 'file'], noise: ['kind', 'level'],
};

/** One spec string, e.g. "noise:kind=jpeg,level=2". */
export function parseSpec(text: string, where = '--perturb'): PerturbSpec {
  const bad = (why: string) => new UsageError(`${where} '${text}': ${why}; e.g. camera:level=2, noise:kind=blur,level=1, language:mode=wrong (README: robustness evaluation)`);
  const m = /^([a-z_]+)(?::(.*))?$/.exec(text.trim());
  if (!m) throw bad('expected DIMENSION:key=value[,key=value]');
  const dim = m[1] as Dimension;
  if (!DIMENSIONS.includes(dim)) throw bad(`unknown dimension '${m[1]}' (known: ${DIMENSIONS.join(', ')})`);
  const kv: Record<string, string> = {};
  for (const part of (m[2] ?? '').split(',').filter((p) => p.trim())) {
    const e = part.indexOf('=');
    if (e < 0) throw bad(`'${part}' is not key=value`);
    const k = part.slice(0, e).trim();
    if (!KEYS[dim].includes(k)) throw bad(`${dim} takes ${KEYS[dim].join(', ')}, not '${k}'`);
    if (k in kv) throw bad(`'${k}' is given twice`);
    kv[k] = part.slice(e + 1).trim();
  }
  const spec: PerturbSpec = { dim };
  if (KEYS[dim].includes('level')) {
    if (kv.level === undefined) throw bad(`${dim} needs level=0..${MAX_LEVEL}`);
    const named = LEVEL_NAMES.indexOf(kv.level as (typeof LEVEL_NAMES)[number]);
    if (named < 0 && (!/^\d$/.test(kv.level) || Number(kv.level) > MAX_LEVEL)) throw bad(`level must be 0..${MAX_LEVEL} or ${LEVEL_NAMES.join('|')}, got '${kv.level}'`);
    spec.level = named >= 0 ? named : Number(kv.level);
  }
  if (dim === 'noise') {
    if (!NOISE_KINDS.includes(kv.kind as NoiseKind)) throw bad(`noise needs kind=${NOISE_KINDS.join('|')}${kv.kind ? `, got '${kv.kind}'` : ''}`);
    spec.kind = kv.kind as NoiseKind;
  }
  if (dim === 'language') {
    const mode = kv.mode as (typeof LANGUAGE_MODES)[number];
    if (!LANGUAGE_MODES.includes(mode)) throw bad(`language needs mode=${LANGUAGE_MODES.join('|')}${kv.mode ? `, got '${kv.mode}'` : ''}`);
    spec.mode = mode;
    if (kv.file !== undefined) {
      if (spec.mode !== 'paraphrase') throw bad('file= gives paraphrases: only with mode=paraphrase');
      if (!existsSync(kv.file)) throw bad(`the paraphrase file ${kv.file} does not exist`);
      spec.file = kv.file;
      spec.file_sha256 = createHash('sha256').update(readFileSync(kv.file)).digest('hex');
      loadParaphrases(kv.file); // checked now, not at the first episode
    }
  }
  return spec;
}

/** The canonical text of a spec (the set's name when given on the command line). */
export function specText(s: PerturbSpec): string {
  if (s.dim === 'noise') return `noise:kind=${s.kind},level=${s.level}`;
  if (s.dim === 'language') return `language:mode=${s.mode}${s.file ? `,file=${s.file}` : ''}`;
  return `${s.dim}:level=${s.level}`;
}

/** One --perturb value: a spec, specs joined with '+', or a .yaml/.yml/.json file of named sets. */
export function parsePerturbArg(arg: string): PerturbationSet[] {
  const isSpec = new RegExp(`^\\s*(${DIMENSIONS.join('|')})(:|$)`).test(arg);
  if (!isSpec && /\.(ya?ml|json)$/i.test(arg)) {
    if (!existsSync(arg)) throw new UsageError(`--perturb ${arg}: no such file (a YAML file mapping set names to a spec or a list of specs)`);
    let doc: unknown;
    try {
      doc = parseYaml(readFileSync(arg, 'utf8'));
    } catch (e) {
      throw new UsageError(`--perturb ${arg}: not YAML (${(e as Error).message.split('\n')[0]})`);
    }
    if (!doc || typeof doc !== 'object' || Array.isArray(doc)) throw new UsageError(`--perturb ${arg}: expected a mapping of set names to a spec or a list of specs, e.g. "shifted: layout:level=2"`);
    return Object.entries(doc as Record<string, unknown>).map(([name, v]) => {
      const list = Array.isArray(v) ? v : [v];
      if (!list.length || list.some((x) => typeof x !== 'string')) throw new UsageError(`--perturb ${arg}: set '${name}' must be a spec string or a list of spec strings`);
      return checkSet({ name, specs: (list as string[]).map((x) => parseSpec(x, `${arg}: set '${name}'`)) }, arg);
    });
  }
  const specs = arg.split('+').map((x) => parseSpec(x));
  return [checkSet({ name: specs.map(specText).join('+'), specs }, '--perturb')];
}

function checkSet(s: PerturbationSet, where: string): PerturbationSet {
  const dims = s.specs.map((x) => x.dim);
  const dup = dims.find((d, i) => dims.indexOf(d) !== i);
  if (dup) throw new UsageError(`${where}: set '${s.name}' gives ${dup} twice; one value per dimension in a set`);
  if (!/^[\w.:=,+-]+$/.test(s.name.replace(/\//g, ''))) throw new UsageError(`${where}: set name '${s.name}' may hold only letters, digits and . : = , + - _`);
  if (s.name === STANDARD) throw new UsageError(`${where}: '${STANDARD}' names the unperturbed condition; choose another set name`);
  return s;
}

/** Several --perturb values: their sets, names unique. */
export function perturbationSets(args: readonly string[]): PerturbationSet[] {
  const sets = args.flatMap(parsePerturbArg);
  const names = sets.map((s) => s.name);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup) throw new UsageError(`--perturb: the set '${dup}' is given twice`);
  return sets;
}

/** The condition name of unperturbed episodes in records and reports. */
export const STANDARD = 'standard';

// ---------------------------------------------------------------------------------------------------------------
// Per-episode draws

/** 32-bit FNV-1a of a text (the same hash as seeding.ts's request seeds), as a generator seed. */
export function hashSeed(text: string): number {
  let h = 0x811c9dc5;
  for (const byte of Buffer.from(text, 'utf8')) {
    h ^= byte;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** mulberry32: a small seeded generator of uniforms in [0, 1); plus normals (Box-Muller). */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  next(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  normal(): number {
    const u = 1 - this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.next());
  }
  /** A uniformly random unit vector in 3-D. */
  unit3(): [number, number, number] {
    const z = 2 * this.next() - 1, a = 2 * Math.PI * this.next(), r = Math.sqrt(1 - z * z);
    return [r * Math.cos(a), r * Math.sin(a), z];
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
}

/** The seed of one episode's perturbation draws: (env seed, suite, task, episode, set name). */
export function perturbSeed(seed: number, suite: string, task: number, episode: number, set: string): number {
  return hashSeed(`${seed}/${suite}/${task}/${episode}/perturb/${set}`) % SEED_LIMIT;
}

export interface EpisodeContext {
  seed: number;
  suite: string;
  task: number;
  episode: number;
  /** The task's instruction and name, and every task's instruction of the suite in order (for mode=wrong). */
  language: string;
  taskName: string;
  suiteLanguages: readonly string[];
}

/** What one episode of a set gets: the sidecar's `perturb` field, the harness's image noise and the instruction. */
export interface EpisodePerturbation {
  set: string;
  seed: number;
  /** Sent with the reset (null: nothing for the simulator). */
  sim: Record<string, unknown> | null;
  noise: { kind: NoiseKind; level: number; magnitude: number; seed: number } | null;
  instruction: string;
  /** Everything drawn, for the episode record (the sidecar's report of what it applied is added to it). */
  applied: Record<string, unknown>;
}

const round = (x: number) => Math.round(x * 1e9) / 1e9;
const scaled = (v: readonly number[], k: number) => v.map((x) => round(x * k));

export function drawEpisode(set: PerturbationSet, ctx: EpisodeContext): EpisodePerturbation {
  const seed = perturbSeed(ctx.seed, ctx.suite, ctx.task, ctx.episode, set.name);
  const sim: Record<string, unknown> = {};
  const applied: Record<string, unknown> = {};
  let noise: EpisodePerturbation['noise'] = null;
  let instruction = ctx.language;
  for (const s of set.specs) {
    // One generator per dimension, so adding a dimension to a set does not change the others' draws.
    const rng = new Rng(hashSeed(`${seed}/${s.dim}`));
    const L = s.level ?? 0;
    switch (s.dim) {
      case 'camera': {
        const pos = scaled(rng.unit3(), LEVELS.camera.pos_m[L]);
        const axisAngle = scaled(rng.unit3(), (LEVELS.camera.rot_deg[L] * Math.PI) / 180);
        sim.camera = { pos_offset: pos, axis_angle: axisAngle };
        break;
      }
      case 'lighting': {
        const sign = rng.next() < 0.5 ? -1 : 1;
        sim.lighting = {
          intensity_scale: round(1 + sign * LEVELS.lighting.intensity[L]),
          direction_axis_angle: scaled(rng.unit3(), (LEVELS.lighting.direction_deg[L] * Math.PI) / 180),
          ambient_add: LEVELS.lighting.ambient[L],
        };
        break;
      }
      case 'texture':
        sim.texture = Object.fromEntries(['table', 'floor', 'walls'].map((k) => [k, scaled(unitRgb(rng), LEVELS.texture.rgb[L])]));
        break;
      case 'layout':
        sim.layout = { shift_m: LEVELS.layout.shift_m[L], yaw_deg: LEVELS.layout.yaw_deg[L], seed: rng.int(SEED_LIMIT) };
        break;
      case 'robot_init':
        sim.robot_init = { joint_noise: Array.from({ length: 7 }, () => round(rng.normal() * LEVELS.robot_init.joint_std_rad[L])) };
        break;
      case 'noise': {
        const magnitude = s.kind === 'gaussian' ? LEVELS.noise.gaussian_std[L] : s.kind === 'blur' ? LEVELS.noise.blur_sigma_px[L] : LEVELS.noise.jpeg_quality[L];
        noise = { kind: s.kind!, level: L, magnitude, seed: rng.int(SEED_LIMIT) };
        applied.noise = noise;
        break;
      }
      case 'language': {
        instruction = s.mode === 'wrong' ? wrongInstruction(ctx, rng) : paraphrase(ctx, rng, s.file);
        applied.language = { mode: s.mode, instruction };
        break;
      }
    }
  }
  Object.assign(applied, sim);
  return { set: set.name, seed, sim: Object.keys(sim).length ? sim : null, noise, instruction, applied };
}

function unitRgb(rng: Rng): number[] {
  return rng.unit3();
}

// ---------------------------------------------------------------------------------------------------------------
// Language

/** Verb synonyms that keep a LIBERO instruction's meaning (whole words; object and colour words never change). */
const SYNONYMS: [RegExp, string[]][] = [
  [/\bpick up\b/, ['grab', 'lift', 'take']],
  [/\bput\b/, ['place', 'set']],
  [/\bplace\b/, ['put', 'set']],
  [/\bturn on\b/, ['switch on']],
  [/\bturn off\b/, ['switch off']],
  [/\bpush\b/, ['slide']],
];
/** Sentence frames; {} is the (synonym-substituted) instruction. */
const FRAMES = ['{}', 'please {}', '{}, please', 'can you {}?', 'i need you to {}', 'your task: {}'];

/** A built-in paraphrase: a verb synonym (when one applies), a frame, and for "A and B" sometimes the order "B, after you A". */
export function templateParaphrases(instruction: string): string[] {
  const base = instruction.trim().toLowerCase();
  const verbs = [base];
  for (const [re, alts] of SYNONYMS) if (re.test(base)) for (const a of alts) verbs.push(base.replace(re, a));
  const bodies = [...verbs];
  const and = base.split(' and ');
  if (and.length === 2 && !/\bboth\b/.test(and[0])) bodies.push(`${and[1]}, after you ${and[0]}`);
  const out = new Set<string>();
  for (const b of bodies) for (const f of FRAMES) out.add(f.replace('{}', b));
  out.delete(base); // never the original
  return [...out];
}

const paraphraseCache = new Map<string, Record<string, string[]>>();

/** A paraphrase file: a mapping of task name or instruction -> list of paraphrases. */
export function loadParaphrases(file: string): Record<string, string[]> {
  const hit = paraphraseCache.get(file);
  if (hit) return hit;
  let doc: unknown;
  try {
    doc = parseYaml(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new UsageError(`paraphrase file ${file}: not YAML/JSON (${(e as Error).message.split('\n')[0]})`);
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) throw new UsageError(`paraphrase file ${file}: expected a mapping of task name (or instruction) to a list of paraphrases`);
  for (const [k, v] of Object.entries(doc as Record<string, unknown>))
    if (!Array.isArray(v) || !v.length || v.some((x) => typeof x !== 'string' || !x.trim())) throw new UsageError(`paraphrase file ${file}: '${k}' must map to a non-empty list of strings`);
  paraphraseCache.set(file, doc as Record<string, string[]>);
  return doc as Record<string, string[]>;
}

function paraphrase(ctx: EpisodeContext, rng: Rng, file?: string): string {
  if (file) {
    const table = loadParaphrases(file);
    const list = table[ctx.taskName] ?? table[ctx.language];
    if (!list) throw new EvalError(`paraphrase file ${file} has no entry for ${ctx.suite} task ${ctx.task} ('${ctx.taskName}' or '${ctx.language}'); add one or drop file=`);
    return list[rng.int(list.length)];
  }
  const list = templateParaphrases(ctx.language);
  return list[rng.int(list.length)];
}

/** The control: another task's instruction of the same suite (one that differs from this task's). */
function wrongInstruction(ctx: EpisodeContext, rng: Rng): string {
  const others = [...new Set(ctx.suiteLanguages)].filter((l) => l !== ctx.language);
  if (!others.length) throw new EvalError(`language:mode=wrong: ${ctx.suite} has no task with another instruction than '${ctx.language}'`);
  return others[rng.int(others.length)];
}

// ---------------------------------------------------------------------------------------------------------------
// Image noise (harness side): applied to each camera image the policy sees, drawn from the episode's noise seed
// and the step, so a resumed or re-run episode sees the same noise.

export function noisyImage(img: Uint8Array, res: number, n: NonNullable<EpisodePerturbation['noise']>, step: number, camera: number): Uint8Array {
  if (n.level === 0) return img; // identity
  if (n.kind === 'gaussian') {
    const rng = new Rng(hashSeed(`${n.seed}/${step}/${camera}`));
    const out = new Uint8Array(img.length);
    for (let i = 0; i < img.length; i++) out[i] = Math.max(0, Math.min(255, Math.round(img[i] + n.magnitude * rng.normal())));
    return out;
  }
  if (n.kind === 'blur') return gaussianBlur(img, res, (n.magnitude * res) / 128);
  // JPEG round trip at the level's quality (jpeg-js: baseline encoder, 4:2:0 like libjpeg's default).
  const rgba = new Uint8Array(res * res * 4);
  for (let i = 0, j = 0; i < img.length; i += 3, j += 4) (rgba[j] = img[i], rgba[j + 1] = img[i + 1], rgba[j + 2] = img[i + 2], rgba[j + 3] = 255);
  const enc = jpeg.encode({ data: rgba, width: res, height: res }, n.magnitude);
  const dec = jpeg.decode(enc.data, { useTArray: true, formatAsRGBA: false });
  return new Uint8Array(dec.data.buffer, dec.data.byteOffset, res * res * 3).slice();
}

/** Separable gaussian blur of an HxWx3 image, edges clamped. */
export function gaussianBlur(img: Uint8Array, res: number, sigma: number): Uint8Array {
  const r = Math.max(1, Math.ceil(3 * sigma));
  const k = Array.from({ length: 2 * r + 1 }, (_, i) => Math.exp(-((i - r) ** 2) / (2 * sigma * sigma)));
  const ks = k.reduce((a, b) => a + b, 0);
  const tmp = new Float32Array(img.length);
  const clamp = (x: number) => Math.max(0, Math.min(res - 1, x));
  for (let y = 0; y < res; y++)
    for (let x = 0; x < res; x++)
      for (let c = 0; c < 3; c++) {
        let s = 0;
        for (let i = -r; i <= r; i++) s += k[i + r] * img[(y * res + clamp(x + i)) * 3 + c];
        tmp[(y * res + x) * 3 + c] = s / ks;
      }
  const out = new Uint8Array(img.length);
  for (let y = 0; y < res; y++)
    for (let x = 0; x < res; x++)
      for (let c = 0; c < 3; c++) {
        let s = 0;
        for (let i = -r; i <= r; i++) s += k[i + r] * tmp[(clamp(y + i) * res + x) * 3 + c];
        out[(y * res + x) * 3 + c] = Math.round(s / ks);
      }
  return out;
}

/** A file-name-safe form of a set name, for video names. */
export function setSlug(name: string): string {
  return name.replace(/[^A-Za-z0-9.=_-]+/g, '-');
}
