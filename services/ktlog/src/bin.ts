import { runMain } from '@qpq/runtime';
import { readKtlogConfig } from './config.js';
import { KtlogService } from './index.js';

void runMain('ktlog', () => KtlogService.create(readKtlogConfig()).then((s) => s.start()));
