// The server's progress: every interval with traffic, one line to the log and one JSONL record (--metrics):
// connections, queue, requests/s, model calls and mean batch, p50/p99 latency (frame in -> reply written),
// errors, RSS. Quiet intervals write nothing.
import { JsonlSink } from '../metrics/sink.js';

export interface TrafficState {
  connections: number;
  queued: number;
  /** Totals since start. */
  requests: number;
  calls: number;
  errors: Record<string, number>;
}

export class TrafficReport {
  private latencies: number[] = [];
  private last = { requests: 0, calls: 0, errors: 0, at: performance.now() };
  private records = 0;
  private readonly sink: JsonlSink | null;

  constructor(metricsPath: string | undefined, private readonly log: (line: string) => void) {
    this.sink = metricsPath ? new JsonlSink(metricsPath) : null;
  }

  /** A reply was written, `ms` after its request frame arrived. */
  replied(ms: number): void {
    this.latencies.push(ms);
  }

  /** Close the interval: report it if anything happened. */
  tick(s: TrafficState): void {
    const errors = Object.values(s.errors).reduce((a, b) => a + b, 0);
    const requests = s.requests - this.last.requests, calls = s.calls - this.last.calls, newErrors = errors - this.last.errors;
    const seconds = (performance.now() - this.last.at) / 1000;
    if (requests > 0 || newErrors > 0) {
      const lat = [...this.latencies].sort((a, b) => a - b);
      const at = (p: number) => (lat.length ? lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] : 0);
      const rec: Record<string, number> = {
        connections: s.connections, queued: s.queued, requests, requests_per_s: requests / seconds,
        model_calls: calls, mean_batch: calls ? requests / calls : 0, p50_ms: at(0.5), p99_ms: at(0.99),
        errors: newErrors, rss_mib: process.memoryUsage.rss() / 2 ** 20,
      };
      for (const [k, v] of Object.entries(s.errors)) rec[`errors_total_${k}`] = v;
      this.log(`serve: ${rec.connections} clients, ${rec.requests_per_s.toFixed(2)} requests/s, mean batch ${rec.mean_batch.toFixed(1)}, ` +
        `p50 ${rec.p50_ms.toFixed(0)} ms, p99 ${rec.p99_ms.toFixed(0)} ms, ${newErrors} errors, RSS ${rec.rss_mib.toFixed(0)} MiB`);
      this.sink?.log(++this.records, rec);
    }
    this.latencies = [];
    this.last = { requests: s.requests, calls: s.calls, errors, at: performance.now() };
  }
}
