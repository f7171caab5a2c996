// Every scenario, in the order a full run measures them. A new group: one module beside this one.
import type { Scenario } from '../scenario.js';
import { blobScenarios } from './blob.js';
import { ktlogScenarios } from './ktlog.js';

export const scenarios: readonly Scenario[] = [...ktlogScenarios, ...blobScenarios];
