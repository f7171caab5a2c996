import { ArgumentError, USAGE, parseCommandLine } from './args.js';
import { failureLine, line, type Io } from './output.js';

// Commands load the SDK (MLS, OPAQUE, QUIC) on first use, so --help and argument errors answer at once.

/**
 * Runs one `qpq` invocation and returns its exit status: 0 on success, 1 when the command failed,
 * 2 when it was called wrongly. Every failure is one line on stderr; QPQ_DEBUG=1 adds the stack.
 */
export async function main(argv: readonly string[], io: Io): Promise<number> {
  try {
    const invocation = parseCommandLine(argv, io.env);
    if (invocation.kind === 'help') {
      line(io.stdout, USAGE);
      return 0;
    }
    const { global, command } = invocation;
    switch (command.name) {
      case 'register':
        return await (await import('./commands/account.js')).register(global, io, command.username, command.password);
      case 'login':
        return await (await import('./commands/account.js')).login(global, io, command.username, command.password);
      case 'send':
        return await (await import('./commands/send.js')).send(global, io, command.to, command.text);
      case 'send-file':
        return await (await import('./commands/send-file.js')).sendFile(global, io, command.to, command.path);
      case 'download':
        return await (await import('./commands/download.js')).download(global, io, command.file, command.out);
      case 'recv':
        return await (await import('./commands/recv.js')).recv(global, io, command.waitSeconds);
      case 'kt':
        return await (await import('./commands/kt.js')).kt(global, io, command);
      case 'repl':
        return await (await import('./commands/repl.js')).repl(global, io, command.username, command.password);
    }
  } catch (err) {
    line(io.stderr, `qpq: ${failureLine(err)}`);
    if (io.env.QPQ_DEBUG && err instanceof Error && err.stack) io.stderr.write(`${err.stack}\n`);
    return err instanceof ArgumentError ? 2 : 1;
  }
}

/** Entry point of bin/qpq.mjs. */
export async function runFromProcess(): Promise<void> {
  const code = await main(process.argv.slice(2), {
    stdout: process.stdout,
    stderr: process.stderr,
    stdin: process.stdin,
    env: process.env,
  });
  // Exit now: a library timer or socket must not keep a finished command alive. Writes to pipes and
  // files are synchronous on Linux, so nothing printed is lost.
  process.exit(code);
}
