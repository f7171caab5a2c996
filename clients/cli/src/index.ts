// The qpq CLI as a library, for tests that run it in-process.
export { main } from './main.js';
export { failureLine } from './output.js';
export { parseCommandLine, ArgumentError, USAGE, type Invocation, type Command, type GlobalOptions } from './args.js';
export { parseReplLine, REPL_HELP, type ReplCommand, type ReplLine } from './commands/repl-commands.js';
export { parseDuration, formatDuration } from './duration.js';
