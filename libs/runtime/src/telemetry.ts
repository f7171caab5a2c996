import type { Counter, Histogram, Meter } from '@opentelemetry/api';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { NodeSDK, tracing as traceSdk } from '@opentelemetry/sdk-node';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { registerProcessMetrics } from './process-metrics.js';

const SECONDS_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

// Tracing is process-wide (the global tracer provider and context manager give logs their trace ids
// and carry trace context across calls); it is set up once, by the first service in the process.
let tracing: NodeSDK | undefined;

/**
 * OpenTelemetry for one service: its own meter provider, whose Prometheus exporter the service serves
 * on /metrics from its own HTTP server, and the process's tracer provider.
 */
export class Telemetry {
  readonly meter: Meter;
  readonly rpcServerDuration: Histogram;
  readonly rpcClientDuration: Histogram;
  private readonly stopProcessMetrics: () => void;

  private constructor(
    private readonly provider: MeterProvider,
    private readonly exporter: PrometheusExporter,
    service: string,
  ) {
    this.meter = provider.getMeter(`qpq-${service}`);
    this.rpcServerDuration = this.histogramSeconds(
      'qpq_rpc_server_duration_seconds',
      'Duration of gRPC calls served, by method and status code',
    );
    this.rpcClientDuration = this.histogramSeconds(
      'qpq_rpc_client_duration_seconds',
      'Duration of outgoing gRPC calls, by method and status code',
    );
    this.stopProcessMetrics = registerProcessMetrics(this.meter);
  }

  static start(service: string): Telemetry {
    const resource = resourceFromAttributes({ 'service.name': `qpq-${service}` });
    if (!tracing) {
      tracing = new NodeSDK({
        resource,
        instrumentations: [],
        // Spans are recorded (their ids go into logs and across calls) but exported nowhere until a
        // collector is configured: with no processor at all the SDK installs no tracer provider, and
        // with its default it dials localhost:4318.
        spanProcessors: [new traceSdk.NoopSpanProcessor()],
        logRecordProcessors: [],
      });
      tracing.start();
    }
    const exporter = new PrometheusExporter({ preventServerStart: true });
    const provider = new MeterProvider({ resource, readers: [exporter] });
    return new Telemetry(provider, exporter, service);
  }

  /** A histogram of durations in seconds (the name ends in `_seconds`), with buckets fit for RPCs. */
  histogramSeconds(name: string, description: string): Histogram {
    return this.meter.createHistogram(name, {
      description,
      unit: 's',
      advice: { explicitBucketBoundaries: SECONDS_BUCKETS },
    });
  }

  /** A counter; Prometheus shows it with `_total` appended unless the name already ends so. */
  counter(name: string, description: string): Counter {
    return this.meter.createCounter(name, { description });
  }

  serveMetrics(req: IncomingMessage, res: ServerResponse): void {
    this.exporter.getMetricsRequestHandler(req, res);
  }

  async shutdown(): Promise<void> {
    this.stopProcessMetrics();
    await this.provider.shutdown().catch(() => undefined);
  }
}
