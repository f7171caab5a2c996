import { homedir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

export const USAGE = `usage: qpq [--server HOST:PORT] [--data-dir DIR] [--ca FILE] [--json] <command>

commands:
  register -u NAME -p PASS        create an account and this device, log in, publish KeyPackages
  login -u NAME -p PASS           log in (a new data dir becomes a new device)
  send USER TEXT                  send a direct message
  send-file USER PATH             send a file (up to 50 MiB), encrypted, as a direct message
  recv [--wait SECONDS]           print every message not shown before; wait up to SECONDS for one
  download FILE_ID [--out PATH]   save a received file (FILE_ID from recv); never overwrites a file
  repl -u NAME -p PASS            chat in DMs and groups (registers if needed); /help inside
  kt lookup USER                  the history of USER's identity keys in the key-transparency log
  kt audit                        fetch the whole key-transparency log and check it against its signed head

global options (before the command; --json also after it):
  --server HOST:PORT   gateway address (env QPQ_SERVER, default 127.0.0.1:7000)
  --data-dir DIR       account, keys and messages of one device (env QPQ_DATA_DIR, default ~/.qpq)
  --ca FILE            CA certificate to trust (env QPQ_CA; default: the dev stack's CA)
  --json               machine-readable output, one JSON object per line (and no progress on stderr)

environment: QPQ_PASSWORD instead of -p; QPQ_PASSPHRASE to encrypt a new data dir with a passphrase.`;

export const COMMANDS = ['register', 'login', 'send', 'send-file', 'recv', 'download', 'repl', 'kt'] as const;
export type CommandName = (typeof COMMANDS)[number];

export interface GlobalOptions {
  server: string;
  dataDir: string;
  ca: string | undefined;
  json: boolean;
}

export type Command =
  | { name: 'register' | 'login' | 'repl'; username: string; password: string }
  | { name: 'send'; to: string; text: string }
  | { name: 'send-file'; to: string; path: string }
  | { name: 'recv'; waitSeconds: number }
  /** `file`: a blob id or a message id; `out` unset: the file's own name in the current directory. */
  | { name: 'download'; file: string; out?: string }
  | { name: 'kt'; action: 'audit' }
  | { name: 'kt'; action: 'lookup'; user: string };

export type Invocation = { kind: 'help' } | { kind: 'run'; global: GlobalOptions; command: Command };

/** A mistake in how qpq was called (exit status 2). */
export class ArgumentError extends Error {
  override readonly name = 'ArgumentError';
}

const OPTIONS = {
  server: { type: 'string' },
  'data-dir': { type: 'string' },
  ca: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  username: { type: 'string', short: 'u' },
  password: { type: 'string', short: 'p' },
  wait: { type: 'string' },
  out: { type: 'string', short: 'o' },
} as const;

/** Options each command takes besides the global ones. */
const COMMAND_OPTIONS: Record<CommandName, readonly string[]> = {
  register: ['username', 'password'],
  login: ['username', 'password'],
  repl: ['username', 'password'],
  send: [],
  'send-file': [],
  recv: ['wait'],
  download: ['out'],
  kt: [],
};
const GLOBAL = ['server', 'data-dir', 'ca', 'json', 'help'];
/** `register, login, …, repl or kt`, for the messages that name them all. */
const COMMAND_LIST = `${COMMANDS.slice(0, -1).join(', ')} or ${COMMANDS.at(-1)!}`;

/**
 * Parses `qpq …` arguments. Global flags go before the command (they are accepted after it too, as
 * `--json` must be); each command takes only its own options.
 * @example parseCommandLine(['--json', 'recv', '--wait', '5'], {})
 */
export function parseCommandLine(argv: readonly string[], env: NodeJS.ProcessEnv): Invocation {
  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], options: OPTIONS, strict: true, allowPositionals: true, tokens: true });
  } catch (err) {
    throw new ArgumentError(argumentProblem(err));
  }
  const { values, positionals, tokens } = parsed;
  if (values.help) return { kind: 'help' };
  const [name, ...rest] = positionals;
  if (name === undefined) throw new ArgumentError(`no command given (${COMMAND_LIST}); qpq --help shows usage`);
  if (name === 'help') return { kind: 'help' };
  if (!(COMMANDS as readonly string[]).includes(name)) {
    throw new ArgumentError(`unknown command ${JSON.stringify(name)}: expected ${COMMAND_LIST}`);
  }
  const command = name as CommandName;
  for (const token of tokens) {
    if (token.kind !== 'option') continue;
    if (!GLOBAL.includes(token.name) && !COMMAND_OPTIONS[command].includes(token.name)) {
      throw new ArgumentError(`${command} takes no option ${token.rawName}`);
    }
  }

  const global: GlobalOptions = {
    // An empty variable counts as unset, as for the services' QPQ_* variables.
    server: nonEmpty(values.server, '--server') ?? (env.QPQ_SERVER || '127.0.0.1:7000'),
    dataDir: nonEmpty(values['data-dir'], '--data-dir') ?? (env.QPQ_DATA_DIR || join(homedir(), '.qpq')),
    ca: nonEmpty(values.ca, '--ca'),
    json: values.json ?? false,
  };

  switch (command) {
    case 'register':
    case 'login':
    case 'repl': {
      if (rest.length > 0) throw new ArgumentError(`${command} takes no arguments besides -u NAME -p PASS`);
      const username = nonEmpty(values.username, '-u');
      const password = values.password ?? env.QPQ_PASSWORD;
      if (username === undefined) throw new ArgumentError(`${command} needs -u NAME`);
      if (!password) throw new ArgumentError(`${command} needs -p PASS (or QPQ_PASSWORD)`);
      return { kind: 'run', global, command: { name: command, username, password } };
    }
    case 'send': {
      const [to, ...words] = rest;
      if (to === undefined || words.length === 0) throw new ArgumentError('send needs USER TEXT');
      const text = words.join(' ');
      if (text.trim() === '') throw new ArgumentError('send needs a non-empty TEXT');
      return { kind: 'run', global, command: { name: 'send', to, text } };
    }
    case 'send-file': {
      const [to, path, ...more] = rest;
      if (to === undefined || path === undefined) throw new ArgumentError('send-file needs USER PATH');
      // A path with spaces is one argument when quoted; more words mean it was not.
      if (more.length > 0) throw new ArgumentError('send-file takes one PATH (quote a path that contains spaces)');
      if (to.trim() === '') throw new ArgumentError('send-file needs a non-empty USER');
      if (path === '') throw new ArgumentError('send-file needs a non-empty PATH');
      return { kind: 'run', global, command: { name: 'send-file', to, path } };
    }
    case 'download': {
      const [file, ...more] = rest;
      if (file === undefined || file.trim() === '') throw new ArgumentError('download needs FILE_ID');
      if (more.length > 0) {
        throw new ArgumentError(
          `download takes one FILE_ID (got ${JSON.stringify(more[0])} too); --out PATH names the file`,
        );
      }
      const out = nonEmpty(values.out, '--out');
      return {
        kind: 'run',
        global,
        command: { name: 'download', file: file.trim(), ...(out !== undefined ? { out } : {}) },
      };
    }
    case 'recv': {
      if (rest.length > 0) throw new ArgumentError(`recv takes no arguments (got ${JSON.stringify(rest[0])})`);
      let waitSeconds = 0;
      if (values.wait !== undefined) {
        waitSeconds = Number(values.wait);
        if (values.wait.trim() === '' || !Number.isFinite(waitSeconds) || waitSeconds < 0) {
          throw new ArgumentError(`--wait needs a number of seconds, got ${JSON.stringify(values.wait)}`);
        }
      }
      return { kind: 'run', global, command: { name: 'recv', waitSeconds } };
    }
    case 'kt': {
      const [action, ...args] = rest;
      if (action === 'audit') {
        if (args.length > 0) throw new ArgumentError('kt audit takes no arguments');
        return { kind: 'run', global, command: { name: 'kt', action } };
      }
      if (action === 'lookup') {
        const [user, ...more] = args;
        if (user === undefined || user.trim() === '' || more.length > 0)
          throw new ArgumentError('kt lookup needs USER');
        return { kind: 'run', global, command: { name: 'kt', action, user } };
      }
      throw new ArgumentError(
        action === undefined
          ? 'kt needs audit or lookup USER'
          : `unknown kt command ${JSON.stringify(action)}: expected audit or lookup USER`,
      );
    }
  }
}

function nonEmpty(value: string | undefined, flag: string): string | undefined {
  if (value === undefined) return undefined;
  if (value.trim() === '') throw new ArgumentError(`${flag} needs a value`);
  return value;
}

/** node:util's messages span lines and name internals; say the same in one line. */
function argumentProblem(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  const code = (err as { code?: string }).code;
  const option = /'(-[^',]+)/.exec(message)?.[1];
  if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION')
    return `unknown option ${option ?? ''}; qpq --help shows usage`.replace('  ', ' ');
  if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
    if (/does not take an argument/.test(message)) return `option ${option ?? ''} takes no value`;
    if (/ambiguous/.test(message))
      return `option ${option ?? ''} needs a value (write ${option ?? '--opt'}=VALUE for one starting with "-")`;
    return `option ${/--[a-z-]+/.exec(message)?.[0] ?? option ?? ''} needs a value`;
  }
  return message.split('\n')[0] ?? message;
}
