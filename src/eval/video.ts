// Episode videos: MP4 through Debian's ffmpeg fed raw RGB over a pipe (measured 270-570 frames/s at 256x256).
// Each frame shows both cameras side by side, upright (the simulator renders upside down: flipped vertically),
// under a bar with the step counter; the last second repeats the final frame with the outcome. Files are named
// by suite, task, init index and outcome, written under a temporary name and renamed, never overwriting.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { orientFrame } from '../data/images.js';
import { EvalError } from './errors.js';

export type VideoMode = 'none' | 'failures' | 'all';
export const VIDEO_MODES: readonly VideoMode[] = ['none', 'failures', 'all'];

// 5x7 bitmap glyphs for the few characters the bar needs.
const GLYPHS: Record<string, string> = {
  '0': '01110100011001110101110011000101110', '1': '00100011000010000100001000010001110', '2': '01110100010000100010001000100011111',
  '3': '11111000100010000010000011000101110', '4': '00010001100101010010111110001000010', '5': '11111100001111000001000011000101110',
  '6': '00110010001000011110100011000101110', '7': '11111000010001000100010000100001000', '8': '01110100011000101110100011000101110',
  '9': '01110100011000101111000010001001100', ' ': '00000000000000000000000000000000000', S: '01111100001000001110000010000111110',
  T: '11111001000010000100001000010000100', E: '11111100001000011110100001000011111', P: '11110100011000111110100001000010000',
  U: '10001100011000110001100011000101110', C: '01110100011000010000100001000101110', F: '11111100001000011110100001000010000',
  A: '01110100011000111111100011000110001', I: '01110001000010000100001000010001110', L: '10000100001000010000100001000011111',
  R: '11110100011000111110101001001010001', W: '10001100011000110101101011010101010', '/': '00001000010001000100010001000010000',
};

const SCALE = 2;
const BAR = 7 * SCALE + 6;

function drawText(img: Uint8Array, W: number, x0: number, y0: number, text: string, rgb: readonly number[]): void {
  let x = x0;
  for (const ch of text.toUpperCase()) {
    const g = GLYPHS[ch] ?? GLYPHS[' '];
    for (let r = 0; r < 7; r++)
      for (let c = 0; c < 5; c++)
        if (g[r * 5 + c] === '1')
          for (let dy = 0; dy < SCALE; dy++)
            for (let dx = 0; dx < SCALE; dx++) {
              const px = x + c * SCALE + dx;
              if (px < W) img.set(rgb, ((y0 + r * SCALE + dy) * W + px) * 3);
            }
    x += 6 * SCALE;
  }
}

export class EpisodeVideo {
  private ff: ChildProcess;
  private W: number;
  private H: number;
  private last: Uint8Array | null = null;
  private exited: Promise<number | null>;
  private stderr = '';

  constructor(private tmpFile: string, private res: number, private fps = 20) {
    mkdirSync(join(tmpFile, '..'), { recursive: true });
    this.W = 2 * res;
    this.H = BAR + res + ((BAR + res) % 2); // yuv420p needs even sizes
    this.ff = spawn('ffmpeg', ['-loglevel', 'error', '-y', '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-s', `${this.W}x${this.H}`, '-r', String(fps), '-i', '-',
      '-c:v', 'libx264', '-pix_fmt', 'yuv420p', '-preset', 'veryfast', '-f', 'mp4', tmpFile], { stdio: ['pipe', 'ignore', 'pipe'] });
    this.ff.stderr!.on('data', (d: Buffer) => (this.stderr = (this.stderr + d.toString()).slice(-2000)));
    this.ff.stdin!.on('error', () => {});
    this.exited = new Promise((res) => {
      this.ff.on('error', (e) => ((this.stderr += `cannot run ffmpeg: ${e.message} (apt-get install ffmpeg, or --videos none)`), res(-1)));
      this.ff.on('exit', (code) => res(code));
    });
  }

  /** One observation's two camera images (as rendered) with a bar reading `label`. */
  add(agentview: Uint8Array, wrist: Uint8Array, label: string): void {
    const { W, H, res } = this;
    const img = new Uint8Array(W * H * 3);
    img.fill(24, 0, W * BAR * 3);
    const tmp = new Uint8Array(res * res * 3);
    [agentview, wrist].forEach((src, i) => {
      orientFrame(src, 0, res, res, 'flip_v', tmp, 0);
      for (let y = 0; y < res; y++) img.set(tmp.subarray(y * res * 3, (y + 1) * res * 3), ((BAR + y) * W + i * res) * 3);
    });
    drawText(img, W, 3, 3, label, [255, 255, 255]);
    this.last = img;
    this.ff.stdin!.write(img);
  }

  /** The outcome over the last frame for a second, then the file is closed and renamed (never over another). */
  async finish(success: boolean, finalPath: string | null): Promise<string | null> {
    if (this.last) {
      const img = this.last.slice();
      img.fill(0, 0, this.W * BAR * 3);
      for (let p = 0; p < this.W * BAR; p++) img.set(success ? [20, 140, 40] : [170, 30, 30], p * 3);
      drawText(img, this.W, 3, 3, success ? 'SUCCESS' : 'FAILURE', [255, 255, 255]);
      for (let i = 0; i < this.fps; i++) this.ff.stdin!.write(img);
    }
    this.ff.stdin!.end();
    const code = await this.exited;
    if (code !== 0) {
      rmSync(this.tmpFile, { force: true });
      throw new EvalError(`ffmpeg failed writing ${this.tmpFile}: ${this.stderr.trim().split('\n').slice(-3).join(' / ') || `exit ${code}`} (or run with --videos none)`);
    }
    if (!finalPath) {
      rmSync(this.tmpFile, { force: true });
      return null;
    }
    const path = unusedName(finalPath);
    renameSync(this.tmpFile, path);
    return path;
  }

  /** Drop a partial video (the episode is being retried). */
  abort(): void {
    this.ff.stdin!.destroy();
    this.ff.kill('SIGKILL');
    void this.exited.then(() => rmSync(this.tmpFile, { force: true }));
  }
}

/** Remove the temporary videos (`.tmp-PID-W.mp4`) of evaluations that were killed (their process is gone). */
export function removeOrphanVideos(dir: string): void {
  if (!existsSync(dir)) return;
  for (const suite of readdirSync(dir)) {
    const sub = join(dir, suite);
    for (const f of existsSync(sub) ? readdirSync(sub) : []) {
      const pid = /^\.tmp-(\d+)-\d+\.mp4$/.exec(f)?.[1];
      if (pid && !alive(Number(pid))) rmSync(join(sub, f), { force: true });
    }
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** `base.mp4`, or `base.2.mp4`, `base.3.mp4`, ... : the first that does not exist. */
export function unusedName(path: string): string {
  if (!existsSync(path)) return path;
  const stem = path.replace(/\.mp4$/, '');
  for (let i = 2; ; i++) if (!existsSync(`${stem}.${i}.mp4`)) return `${stem}.${i}.mp4`;
}
