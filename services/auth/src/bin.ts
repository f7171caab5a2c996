import { readEnv, runMain } from '@qpq/runtime';
import { authEnv, envToConfig } from './config.js';
import { AuthService } from './index.js';

void runMain('auth', () => AuthService.create(envToConfig(readEnv(authEnv))).then((s) => s.start()));
