import { runMain } from '@qpq/runtime';
import { readBlobConfig } from './config.js';
import { BlobService } from './index.js';

void runMain('blob', () => BlobService.create(readBlobConfig()).then((s) => s.start()));
