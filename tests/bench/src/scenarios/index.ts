// Every scenario, in the order a full run measures them. A new group: one module beside this one.
import type { Scenario } from '../scenario.js';
import { backendScenarios } from './backends.js';
import { blobScenarios } from './blob.js';
import { e2eScenarios } from './e2e.js';
import { gatewayScenarios } from './gateway-idle.js';
import { ktlogScenarios } from './ktlog.js';
import { transportScenarios } from './transport.js';

export const scenarios: readonly Scenario[] = [
  ...ktlogScenarios,
  ...blobScenarios,
  ...e2eScenarios,
  ...backendScenarios,
  ...gatewayScenarios,
  ...transportScenarios,
];
