import { metrics, type Histogram, type Counter, type Meter } from '@opentelemetry/api';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { NodeSDK } from '@opentelemetry/sdk-node';
import type { IncomingMessage, ServerResponse } from 'node:http';

/**
 * OpenTelemetry for one process: a tracer provider (span ids for logs and propagation) and a meter
 * provider whose Prometheus exporter is served by the service's own HTTP server on /metrics.
 */
export class Telemetry {
  readonly meter: Meter;
  readonly rpcServerDuration: Histogram;
  readonly rpcClientDuration: Histogram;

  private constructor(
    private readonly sdk: NodeSDK,
    private readonly exporter: PrometheusExporter,
    service: string,
  ) {
    this.meter = metrics.getMeter(`qpq-${service}`);
    this.rpcServerDuration = this.meter.createHistogram('qpq_rpc_server_duration_seconds', {
      description: 'Duration of gRPC calls served, by method and status code',
      advice: { explicitBucketBoundaries: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] },
    });
    this.rpcClientDuration = this.meter.createHistogram('qpq_rpc_client_duration_seconds', {
      description: 'Duration of outgoing gRPC calls, by method and status code',
      advice: { explicitBucketBoundaries: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] },
    });
  }

  static start(service: string): Telemetry {
    const exporter = new PrometheusExporter({ preventServerStart: true });
    const sdk = new NodeSDK({
      resource: resourceFromAttributes({ 'service.name': `qpq-${service}` }),
      metricReader: exporter,
      instrumentations: [],
      // No trace or log exporters until a collector is configured (otherwise the SDK dials localhost:4318).
      spanProcessors: [],
      logRecordProcessors: [],
    });
    sdk.start();
    return new Telemetry(sdk, exporter, service);
  }

  counter(name: string, description: string): Counter {
    return this.meter.createCounter(name, { description });
  }

  serveMetrics(req: IncomingMessage, res: ServerResponse): void {
    this.exporter.getMetricsRequestHandler(req, res);
  }

  async shutdown(): Promise<void> {
    await this.sdk.shutdown().catch(() => undefined);
  }
}
