import { Agent, request } from 'node:http';

/** One HTTP request of a benchmark. */
export interface BenchRequest {
  method: 'GET' | 'PUT' | 'POST';
  path: string;
  body?: Buffer;
  /** Extra request headers (for example `idempotency-key`). */
  headers?: Record<string, string>;
}

/** Options of {@link runLoad}. */
export interface LoadOptions {
  /**
   * Base URL of the server, e.g. `http://127.0.0.1:8001`; with several, worker `w` sends
   * every request to `target[w % target.length]` (clients spread over the nodes).
   */
  target: string | readonly string[];
  /** Workers, each with one request in flight at a time (closed loop). */
  concurrency: number;
  /** Measured time, after the warm-up. */
  durationMs: number;
  /** Time run before measuring (connections opened, JIT warm). @default 1000 */
  warmupMs?: number;
  /** The request a worker sends next; `seq` counts that worker's requests. */
  next: (worker: number, seq: number) => BenchRequest;
  /** Is this answer a success? @default status 2xx */
  ok?: (status: number) => boolean;
  /** Called about once a second while measuring. */
  onProgress?: (done: number, elapsedMs: number) => void;
}

/** What {@link runLoad} measured. */
export interface LoadResult {
  /** Successful operations in the measured window. */
  ops: number;
  /** Failed operations (non-2xx answers, connection errors) in the measured window. */
  errors: number;
  /** The failures by HTTP status (`0`: no answer). */
  errorsByStatus: Record<string, number>;
  opsPerSec: number;
  /** Latency percentiles of successful operations, in milliseconds. */
  p50: number;
  p99: number;
  max: number;
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

/** A closed-loop HTTP load generator with keep-alive connections (one per worker). */
export async function runLoad(opts: LoadOptions): Promise<LoadResult> {
  const agent = new Agent({
    keepAlive: true,
    maxSockets: opts.concurrency,
    maxFreeSockets: opts.concurrency,
  });
  const urls = (typeof opts.target === 'string' ? [opts.target] : opts.target).map((t) => new URL(t));
  if (urls.length === 0) throw new Error('runLoad needs at least one target');
  const isOk = opts.ok ?? ((s: number) => s >= 200 && s < 300);
  const start = performance.now();
  const measureFrom = start + (opts.warmupMs ?? 1000);
  const end = measureFrom + opts.durationMs;
  let latencies = new Float64Array(1 << 16);
  let count = 0;
  let errors = 0;
  const errorsByStatus: Record<string, number> = {};

  const send = (url: URL, req: BenchRequest): Promise<number> =>
    new Promise((resolve) => {
      const r = request(
        {
          host: url.hostname,
          port: url.port,
          method: req.method,
          path: req.path,
          agent,
          headers: {
            ...req.headers,
            ...(req.body === undefined
              ? {}
              : { 'content-type': 'application/json', 'content-length': req.body.length }),
          },
        },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
          res.on('error', () => resolve(0));
        },
      );
      r.on('error', () => resolve(0));
      r.end(req.body);
    });

  const worker = async (w: number): Promise<void> => {
    for (let seq = 0; ; seq++) {
      const t0 = performance.now();
      if (t0 >= end) return;
      const status = await send(urls[w % urls.length]!, opts.next(w, seq));
      const t1 = performance.now();
      if (t0 < measureFrom || t1 > end) continue;
      if (!isOk(status)) {
        errors++;
        errorsByStatus[status] = (errorsByStatus[status] ?? 0) + 1;
        continue;
      }
      if (count === latencies.length) {
        const bigger = new Float64Array(latencies.length * 2);
        bigger.set(latencies);
        latencies = bigger;
      }
      latencies[count++] = t1 - t0;
    }
  };

  const progress = setInterval(() => {
    const now = performance.now();
    if (now > measureFrom) opts.onProgress?.(count, now - measureFrom);
  }, 1000);
  try {
    await Promise.all(Array.from({ length: opts.concurrency }, (_, w) => worker(w)));
  } finally {
    clearInterval(progress);
    agent.destroy();
  }
  const sorted = latencies.slice(0, count).sort();
  return {
    ops: count,
    errors,
    errorsByStatus,
    opsPerSec: count / (opts.durationMs / 1000),
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    max: count === 0 ? NaN : sorted[count - 1]!,
  };
}
