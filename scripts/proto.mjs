// Regenerates libs/proto/src/gen from proto/ with buf + ts-proto (both from npm; no system protoc).
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';

const run = (args) => execFileSync('npx', ['--no-install', 'buf', ...args], { stdio: 'inherit' });
rmSync('libs/proto/src/gen', { recursive: true, force: true });
run(['lint']);
run(['generate']);
