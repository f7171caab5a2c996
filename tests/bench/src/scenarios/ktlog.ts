// The key-transparency log (services/ktlog), each scenario with its own service process and database.
import type { Scenario } from '../scenario.js';
import { ktlogAppend } from './ktlog-append.js';
import { ktlogInclusion } from './ktlog-inclusion.js';

export const ktlogScenarios: readonly Scenario[] = [ktlogAppend, ktlogInclusion];
