// Where the numbers of a long job go (training, eval watching, serve traffic): sinks, each taking (step, values);
// JSONL (one object per line, machine-readable) here, TensorBoard and W&B beside it; Metrics fans out to several.
import { appendFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

export interface MetricSink {
  log(step: number, values: Record<string, number | string>): void;
  close(): void;
}

export class JsonlSink implements MetricSink {
  constructor(readonly path: string) {
    mkdirSync(dirname(path), { recursive: true });
  }
  log(step: number, values: Record<string, number | string>): void {
    appendFileSync(this.path, JSON.stringify({ step, time: new Date().toISOString(), ...values }) + '\n');
  }
  close(): void {}
}

export class Metrics {
  constructor(readonly sinks: MetricSink[]) {}
  log(step: number, values: Record<string, number | string>): void {
    for (const s of this.sinks) s.log(step, values);
  }
  close(): void {
    for (const s of this.sinks) s.close();
  }
}
