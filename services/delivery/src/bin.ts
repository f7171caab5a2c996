import { runMain } from '@qpq/runtime';
import { readDeliveryConfig } from './config.js';
import { DeliveryService } from './index.js';

void runMain('delivery', () => DeliveryService.create(readDeliveryConfig()).then((s) => s.start()));
