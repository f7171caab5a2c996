#!/usr/bin/env node
// The `qpq` command. The CLI is TypeScript run through tsx (no build step), so this committed
// launcher registers tsx's loader and then starts src/main.ts.
import { register } from 'tsx/esm/api';

register();
const { runFromProcess } = await import('../src/main.ts');
await runFromProcess();
