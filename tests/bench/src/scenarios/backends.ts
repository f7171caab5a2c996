// The backends one at a time, each beside a raw baseline measured in the same run (delivery against
// Postgres, @qpq/bus against the nats client), and the cryptography clients and auth pay for reference.
import type { Scenario } from '../scenario.js';
import { mlsMessages, opaqueLogins } from './backends-crypto.js';
import { deliveryEnqueue } from './backends-delivery.js';
import { natsPublish } from './backends-nats.js';

export const backendScenarios: readonly Scenario[] = [deliveryEnqueue, natsPublish, opaqueLogins, mlsMessages];
