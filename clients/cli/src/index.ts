// The qpq CLI as a library, for tests that run it in-process.
export { main, failureLine } from './main.js';
export { parseCommandLine, ArgumentError, USAGE, type Invocation, type Command, type GlobalOptions } from './args.js';
