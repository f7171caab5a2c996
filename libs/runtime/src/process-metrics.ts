import type { Meter } from '@opentelemetry/api';
import { constants, monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';

const GC_KINDS: Record<number, string> = {
  [constants.NODE_PERFORMANCE_GC_MINOR]: 'minor',
  [constants.NODE_PERFORMANCE_GC_MAJOR]: 'major',
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental',
  [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weakcb',
};

/** How long a window of event-loop delay lasts before its p99 is reported and a new one starts. */
const LOOP_DELAY_WINDOW_MS = 10_000;

interface GcListener {
  (kind: string, seconds: number): void;
}

/**
 * What the process as a whole does, watched once however many services it hosts: the memory live
 * after the latest major garbage collection (what a process holds, without the garbage its resident
 * size also carries until the allocator gives it back), garbage collections, event-loop delay.
 */
class ProcessWatch {
  /** JS heap in use plus memory held by JS objects outside it (buffers), right after a major GC. */
  liveBytes: number | undefined;
  /** p99 event-loop delay over the latest complete window, in seconds. */
  loopDelayP99Seconds = 0;
  private readonly gcListeners = new Set<GcListener>();

  constructor() {
    new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) {
        const kind =
          GC_KINDS[((entry as { detail?: unknown }).detail as { kind?: number } | undefined)?.kind ?? -1] ?? 'other';
        if (kind === 'major') {
          const memory = process.memoryUsage();
          this.liveBytes = memory.heapUsed + memory.external;
        }
        for (const listener of this.gcListeners) listener(kind, entry.duration / 1000);
      }
    }).observe({ entryTypes: ['gc'] });
    const delay = monitorEventLoopDelay({ resolution: 10 });
    delay.enable();
    setInterval(() => {
      this.loopDelayP99Seconds = delay.percentile(99) / 1e9;
      delay.reset();
    }, LOOP_DELAY_WINDOW_MS).unref();
  }

  /** Calls `listener` after every GC until the answered function is called. */
  onGc(listener: GcListener): () => void {
    this.gcListeners.add(listener);
    return () => this.gcListeners.delete(listener);
  }
}

let watch: ProcessWatch | undefined;

/**
 * Registers the process's metrics on a service's meter: resident memory, JS memory now and live after
 * the latest major GC, GC durations by kind, and event-loop delay. Every service exports them, so each pod shows its own.
 * Answers the function that stops recording GCs on this meter (for its service's shutdown).
 */
export function registerProcessMetrics(meter: Meter): () => void {
  watch ??= new ProcessWatch();
  const process_ = watch;
  meter
    .createObservableGauge('qpq_process_resident_memory_bytes', {
      description: 'Resident memory of the process (includes garbage not yet collected or given back)',
    })
    .addCallback((result) => result.observe(process.memoryUsage.rss()));
  const observableMemory = meter.createObservableGauge('qpq_nodejs_memory_bytes', {
    description:
      'JS memory now, garbage included, by kind: heap_used (the JS heap) and external (buffers and other memory JS objects hold)',
  });
  observableMemory.addCallback((result) => {
    const memory = process.memoryUsage();
    result.observe(memory.heapUsed, { kind: 'heap_used' });
    result.observe(memory.external, { kind: 'external' });
  });
  meter
    .createObservableGauge('qpq_nodejs_live_memory_bytes', {
      description: 'JS heap in use plus buffers held, measured right after the latest major garbage collection',
    })
    .addCallback((result) => {
      if (process_.liveBytes !== undefined) result.observe(process_.liveBytes);
    });
  meter
    .createObservableGauge('qpq_nodejs_eventloop_delay_p99_seconds', {
      description: `p99 event-loop delay over the latest ${LOOP_DELAY_WINDOW_MS / 1000} s window`,
    })
    .addCallback((result) => result.observe(process_.loopDelayP99Seconds));
  const gcDuration = meter.createHistogram('qpq_nodejs_gc_duration_seconds', {
    description: 'Garbage collection pauses, by kind (minor, major, incremental, weakcb)',
    unit: 's',
    advice: { explicitBucketBoundaries: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1] },
  });
  return process_.onGc((kind, seconds) => gcDuration.record(seconds, { kind }));
}
