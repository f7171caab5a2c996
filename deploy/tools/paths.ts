// Where the deploy tooling finds the repository and keeps what it downloads.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const deployDir = join(repoRoot, 'deploy');
export const grafanaDir = join(deployDir, 'grafana');
export const chartDir = join(deployDir, 'helm', 'qpq');

/** Downloaded tools live under node_modules (gitignored) so `rm -rf node_modules` forgets them too. */
export const toolsCacheDir = join(repoRoot, 'node_modules', '.cache', 'qpq-tools');
