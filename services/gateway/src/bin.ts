import { readEnv, runMain } from '@qpq/runtime';
import { envToConfig, gatewayEnv } from './config.js';
import { GatewayService } from './index.js';

void runMain('gateway', () => GatewayService.create(envToConfig(readEnv(gatewayEnv))).then((s) => s.start()));
