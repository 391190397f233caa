/**
 * Counters for /metrics, in Prometheus' text format: requests by endpoint and status, latency
 * sums, and the scheduler's batch figures (mean batch size, mixed-adapter steps, joins into a
 * running batch).
 */
import type { EngineStats } from './engine.js';

export class ServerMetrics {
  private readonly requests = new Map<string, number>();
  private latencySum = 0;
  private latencyCount = 0;

  /** Counts one finished request. */
  observe(endpoint: string, status: number, seconds: number): void {
    const key = `endpoint="${endpoint}",status="${status}"`;
    this.requests.set(key, (this.requests.get(key) ?? 0) + 1);
    this.latencySum += seconds;
    this.latencyCount++;
  }

  /**
   * The text /metrics returns.
   * @example metrics.render(engine.stats, engine.load, adapters.list().length)
   */
  render(stats: EngineStats, load: { running: number; waiting: number }, adapters: number, inflight: number): string {
    const lines: string[] = [];
    const metric = (name: string, type: 'counter' | 'gauge', help: string, values: [string, number][]) => {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
      for (const [labels, v] of values) lines.push(`${name}${labels ? `{${labels}}` : ''} ${v}`);
    };
    metric('tunekit_requests_total', 'counter', 'HTTP requests by endpoint and status', [...this.requests].sort());
    metric('tunekit_request_seconds_sum', 'counter', 'total seconds spent on requests', [['', this.latencySum]]);
    metric('tunekit_request_seconds_count', 'counter', 'requests timed', [['', this.latencyCount]]);
    metric('tunekit_requests_in_flight', 'gauge', 'generation requests being served', [['', inflight]]);
    metric('tunekit_sequences_running', 'gauge', 'sequences in the running batch', [['', load.running]]);
    metric('tunekit_sequences_waiting', 'gauge', 'sequences queued for admission', [['', load.waiting]]);
    metric('tunekit_adapters_loaded', 'gauge', 'LoRA adapters loaded', [['', adapters]]);
    metric('tunekit_prompt_tokens_total', 'counter', 'prompt tokens prefilled', [['', stats.promptTokens]]);
    metric('tunekit_generated_tokens_total', 'counter', 'tokens generated', [['', stats.generatedTokens]]);
    metric('tunekit_prefills_total', 'counter', 'batched prefills run', [['', stats.prefills]]);
    metric('tunekit_decode_steps_total', 'counter', 'decode steps run', [['', stats.decodeSteps]]);
    metric('tunekit_decode_rows_total', 'counter', 'sequences decoded, summed over steps (mean batch = rows / steps)', [['', stats.rowsDecoded]]);
    metric('tunekit_mixed_adapter_steps_total', 'counter', 'decode steps whose batch held two or more adapters', [['', stats.mixedSteps]]);
    metric('tunekit_max_adapters_in_step', 'gauge', 'most adapters (base counted as one) in one decode step', [['', stats.maxAdaptersInStep]]);
    metric('tunekit_joins_into_running_total', 'counter', 'prefills that joined a batch already decoding', [['', stats.joinsIntoRunning]]);
    metric('tunekit_sequences_total', 'counter', 'sequences by outcome', [
      ['outcome="finished"', stats.finished], ['outcome="cancelled"', stats.cancelled], ['outcome="timeout"', stats.timedOut], ['outcome="failed"', stats.failed],
    ]);
    return lines.join('\n') + '\n';
  }
}
