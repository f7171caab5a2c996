// Regenerates libs/proto/src/gen from proto/ with buf + ts-proto (both from npm; no system protoc).
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';

const run = (args) => execFileSync('npx', ['--no-install', 'buf', ...args], { stdio: 'inherit' });
// Lint first: a proto that fails lint must not leave the repository without generated code.
run(['lint']);
rmSync('libs/proto/src/gen', { recursive: true, force: true });
run(['generate']);
