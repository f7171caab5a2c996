export * from './bus.js';
export type { ConsumerWatch, ConsumerWatchOptions, GaugeMeter, WatchedConsumer } from './consumer-gauges.js';
export type { ConsumedMessage, ConsumeHandler, DurableConsumerSpec, RunningConsumer } from './consumer.js';
export type { BusLogger } from './logger.js';
export * from './subjects.js';
