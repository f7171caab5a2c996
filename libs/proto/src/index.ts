// Wire contracts generated from proto/qpq/v1 by `npm run proto`. Never edit src/gen by hand.
export * from './gen/qpq/v1/common.js';
export * from './gen/qpq/v1/auth.js';
export * from './gen/qpq/v1/keypackage.js';
export * from './gen/qpq/v1/delivery.js';
export * from './gen/qpq/v1/client.js';
export * from './gen/qpq/v1/e2e.js';
export * from './gen/qpq/v1/events.js';
export * from './gen/qpq/v1/ktlog.js';
export * from './gen/qpq/v1/blob.js';
