import { trace } from '@opentelemetry/api';
import { pino, type Logger } from 'pino';
import { currentRequestId } from './context.js';

export type { Logger } from 'pino';

/**
 * JSON logs on stdout, one line per event, carrying the service name and, inside a request, its
 * request id and trace id. Never log secrets, tokens, payloads or passwords.
 */
export function createLogger(service: string, level = process.env['QPQ_LOG_LEVEL'] ?? 'info'): Logger {
  return pino({
    level,
    base: { service },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    mixin() {
      const span = trace.getActiveSpan()?.spanContext();
      const requestId = currentRequestId();
      return {
        ...(requestId ? { request_id: requestId } : {}),
        ...(span ? { trace_id: span.traceId, span_id: span.spanId } : {}),
      };
    },
  });
}
