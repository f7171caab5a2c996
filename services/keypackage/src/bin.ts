import { readEnv, runMain } from '@qpq/runtime';
import { envToConfig, keyPackageEnv } from './config.js';
import { KeyPackageService } from './index.js';

void runMain('keypackage', () => KeyPackageService.create(envToConfig(readEnv(keyPackageEnv))).then((s) => s.start()));
