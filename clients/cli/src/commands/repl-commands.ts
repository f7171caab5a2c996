// The REPL's language: what a typed line means, before anything touches the network. People and scripts
// rely on these names, so the table below is the one place they are spelled.
import { parseDuration } from '../duration.js';

/** What one line asks for. `say` sends text to the current conversation. */
export type ReplCommand =
  | { name: 'nothing' }
  | { name: 'say'; text: string }
  | { name: 'switch'; target: string }
  | { name: 'list' }
  | { name: 'history'; count: number }
  | { name: 'reply'; index: number; text: string }
  | { name: 'react'; emoji: string; index?: number }
  | { name: 'edit'; index: number; text: string }
  | { name: 'delete'; index: number }
  | { name: 'typing' }
  /** `path` as typed (spaces kept, surrounding quotes taken off); `~/` is the session's to expand. */
  | { name: 'send-file'; path: string }
  /** `path` unset: the file's own name in the current directory. */
  | { name: 'download'; index: number; path?: string }
  | { name: 'create-group'; group: string }
  | { name: 'invite'; user: string }
  | { name: 'remove'; user: string }
  | { name: 'leave' }
  | { name: 'rename'; group: string }
  | { name: 'members' }
  | { name: 'rotate-keys' }
  | { name: 'disappear'; afterMs: number }
  | { name: 'devices'; action: 'list' }
  | { name: 'devices'; action: 'add' }
  | { name: 'devices'; action: 'rm'; deviceId: string }
  | { name: 'verify'; user: string }
  | { name: 'help' }
  | { name: 'quit' };

export type ReplLine = { ok: true; command: ReplCommand } | { ok: false; error: string };

/** How many messages /history shows when not told. */
export const DEFAULT_HISTORY_COUNT = 20;
/** A conversation keeps at most this many messages (the SDK's history limit), so asking for more is a typo. */
const MAX_HISTORY_COUNT = 1000;
/** The SDK refuses longer emoji; say so before a round trip. */
const MAX_EMOJI_LENGTH = 32;

/** A line's arguments: `words` split on white space, `rest` the text after the command word as typed. */
interface Args {
  words: string[];
  rest: string;
}

interface Spec {
  usage: string;
  summary: string;
  /** The command, or why the arguments are wrong (one line). */
  parse(args: Args): ReplCommand | string;
}

const none =
  (command: ReplCommand, name: string) =>
  ({ words }: Args): ReplCommand | string =>
    words.length === 0 ? command : `${name} takes no arguments`;

const oneWord =
  <T extends ReplCommand>(usage: string, build: (word: string) => T | string) =>
  ({ words }: Args): ReplCommand | string =>
    words.length === 1 && words[0] !== undefined ? build(words[0]) : `usage: ${usage}`;

/** N and the text after it, spacing kept: /reply and /edit. */
const indexAndText =
  (name: 'reply' | 'edit', usage: string) =>
  ({ words, rest }: Args): ReplCommand | string => {
    if (words.length < 2 || words[0] === undefined) return `usage: ${usage}`;
    const index = messageIndex(words[0]);
    if (typeof index === 'string') return index;
    return { name, index, text: rest.replace(/^\S+\s+/, '') };
  };

/** The rest of a line as one path: spaces kept, one pair of surrounding quotes taken off. */
function pathArgument(text: string): string {
  const quoted = /^(["'])(.*)\1$/s.exec(text);
  return quoted ? quoted[2]! : text;
}

const COMMANDS: Record<string, Spec> = {
  '/switch': {
    usage: '/switch @USER|#GROUP',
    summary: 'talk in a conversation: plain lines are sent there (USER alone works too)',
    parse: oneWord('/switch @USER|#GROUP', (target) =>
      /^[@#]?$/.test(target) ? 'usage: /switch @USER|#GROUP' : { name: 'switch', target },
    ),
  },
  '/dm': {
    usage: '/dm USER',
    summary: 'same as /switch @USER',
    parse: oneWord('/dm USER', (user) => {
      if (user.startsWith('#')) return `/dm takes a user; /switch ${user} opens a group`;
      const name = user.replace(/^@/, '');
      return name ? { name: 'switch', target: `@${name}` } : 'usage: /dm USER';
    }),
  },
  '/list': {
    usage: '/list',
    summary: 'your conversations: kind, name, unread messages, disappearing timer',
    parse: none({ name: 'list' }, '/list'),
  },
  '/history': {
    usage: '/history [N]',
    summary: `the last N messages (default ${DEFAULT_HISTORY_COUNT}), numbered for /reply, /react, /edit, /delete`,
    parse: ({ words }) => {
      if (words.length === 0) return { name: 'history', count: DEFAULT_HISTORY_COUNT };
      if (words.length > 1 || words[0] === undefined) return 'usage: /history [N]';
      const count = wholeNumber(words[0]);
      if (count === undefined || count > MAX_HISTORY_COUNT) {
        return `/history N takes a number of messages from 1 to ${MAX_HISTORY_COUNT}, got ${JSON.stringify(words[0])}`;
      }
      return { name: 'history', count };
    },
  },
  '/reply': { usage: '/reply N TEXT', summary: 'reply to message N', parse: indexAndText('reply', '/reply N TEXT') },
  '/react': {
    usage: '/react EMOJI [N]',
    summary: 'react to message N (default: the latest message)',
    parse: ({ words }) => {
      const [emoji, n] = words;
      if (emoji === undefined || words.length > 2) return 'usage: /react EMOJI [N]';
      if (emoji.length > MAX_EMOJI_LENGTH) return `a reaction is at most ${MAX_EMOJI_LENGTH} characters`;
      if (n === undefined) return { name: 'react', emoji };
      const index = messageIndex(n);
      return typeof index === 'string' ? index : { name: 'react', emoji, index };
    },
  },
  '/edit': {
    usage: '/edit N TEXT',
    summary: 'change your message N for everyone',
    parse: indexAndText('edit', '/edit N TEXT'),
  },
  '/delete': {
    usage: '/delete N',
    summary: 'delete your message N for everyone',
    parse: oneWord('/delete N', (n) => {
      const index = messageIndex(n);
      return typeof index === 'string' ? index : { name: 'delete', index };
    }),
  },
  '/typing': {
    usage: '/typing',
    summary: 'tell the conversation you are typing',
    parse: none({ name: 'typing' }, '/typing'),
  },
  '/send-file': {
    usage: '/send-file PATH',
    summary: 'send a file (up to 50 MiB) to this conversation; PATH may contain spaces',
    parse: ({ rest }) => {
      const path = pathArgument(rest);
      return path.trim() === '' ? 'usage: /send-file PATH' : { name: 'send-file', path };
    },
  },
  '/download': {
    usage: '/download N [PATH]',
    summary: 'save file N (default: under its own name here; never overwrites)',
    parse: ({ words, rest }) => {
      if (words[0] === undefined) return 'usage: /download N [PATH]';
      const index = messageIndex(words[0]);
      if (typeof index === 'string') return index;
      const path = pathArgument(rest.replace(/^\S+\s*/, ''));
      if (path.trim() === '') return words.length > 1 ? 'usage: /download N [PATH]' : { name: 'download', index };
      return { name: 'download', index, path };
    },
  },
  '/create-group': {
    usage: '/create-group NAME',
    summary: 'create a group (with you alone) and switch to it',
    parse: oneWord('/create-group NAME', (group) => ({ name: 'create-group', group })),
  },
  '/invite': {
    usage: '/invite USER',
    summary: 'add USER (every device of theirs) to this group',
    parse: oneWord('/invite USER', (user) => ({ name: 'invite', user })),
  },
  '/remove': {
    usage: '/remove USER',
    summary: 'remove USER from this group',
    parse: oneWord('/remove USER', (user) => ({ name: 'remove', user })),
  },
  '/leave': { usage: '/leave', summary: 'leave this group', parse: none({ name: 'leave' }, '/leave') },
  '/rename': {
    usage: '/rename NAME',
    summary: 'rename this group, for everyone',
    parse: oneWord('/rename NAME', (group) => ({ name: 'rename', group })),
  },
  '/members': {
    usage: '/members',
    summary: 'who is in this conversation, and with how many devices',
    parse: none({ name: 'members' }, '/members'),
  },
  '/rotate-keys': {
    usage: '/rotate-keys',
    summary: "fresh keys for this device in this conversation's encryption",
    parse: none({ name: 'rotate-keys' }, '/rotate-keys'),
  },
  '/disappear': {
    usage: '/disappear DURATION|off',
    summary: 'messages here disappear after DURATION (30s, 10m, 1h, 7d), or never (off)',
    parse: oneWord('/disappear DURATION|off', (value) => {
      if (value === 'off') return { name: 'disappear', afterMs: 0 };
      const d = parseDuration(value);
      return d.ok ? { name: 'disappear', afterMs: d.ms } : d.error;
    }),
  },
  '/devices': {
    usage: '/devices list|add|rm ID',
    summary: "your account's devices: list them, how to add one, revoke one",
    parse: ({ words }) => {
      const [action, id, ...extra] = words;
      if (action === undefined || (action === 'list' && id === undefined)) return { name: 'devices', action: 'list' };
      if (action === 'add' && id === undefined) return { name: 'devices', action: 'add' };
      if (action === 'rm' && id !== undefined && extra.length === 0)
        return { name: 'devices', action: 'rm', deviceId: id };
      if (action === 'rm') return 'usage: /devices rm ID (the id from /devices list)';
      return 'usage: /devices list|add|rm ID';
    },
  },
  '/verify': {
    usage: '/verify USER',
    summary: 'the safety number to compare with USER in person',
    parse: oneWord('/verify USER', (user) => ({ name: 'verify', user })),
  },
  '/help': { usage: '/help', summary: 'this list', parse: () => ({ name: 'help' }) },
  '/quit': {
    usage: '/quit',
    summary: 'leave once every sent message has reached the server (also Ctrl-D)',
    parse: () => ({ name: 'quit' }),
  },
};

/** Kept from before /quit was documented: scripts may still send it. */
const ALIASES: Record<string, string> = { '/exit': '/quit' };

/** Every command, one line each (what /help prints). */
export const REPL_HELP = (() => {
  const width = Math.max(...Object.values(COMMANDS).map((c) => c.usage.length));
  return [
    'commands:',
    ...Object.values(COMMANDS).map((c) => `  ${c.usage.padEnd(width)}  ${c.summary}`),
    'N is the number /history shows. Any other line is a message; start it with // to send one beginning with /.',
  ].join('\n');
})();

/**
 * Reads one typed line. Never throws and never talks to anyone: a wrong line is `{ ok: false }` with
 * one line saying what is wrong.
 * @example parseReplLine('/reply 3 see you then') // { ok: true, command: { name: 'reply', index: 3, text: 'see you then' } }
 */
export function parseReplLine(line: string): ReplLine {
  const trimmed = line.trim();
  if (trimmed === '') return { ok: true, command: { name: 'nothing' } };
  // A message is sent as typed; "//" escapes a message that starts with "/".
  if (trimmed.startsWith('//')) return { ok: true, command: { name: 'say', text: line.trimStart().slice(1) } };
  if (!trimmed.startsWith('/')) return { ok: true, command: { name: 'say', text: line } };
  const word = /^\S+/.exec(trimmed)![0];
  const spec = COMMANDS[ALIASES[word] ?? word];
  if (!spec) return { ok: false, error: `unknown command ${word}: /help lists them` };
  const rest = trimmed.slice(word.length).trim();
  const parsed = spec.parse({ words: rest === '' ? [] : rest.split(/\s+/), rest });
  return typeof parsed === 'string' ? { ok: false, error: parsed } : { ok: true, command: parsed };
}

/** A message number as /history shows it. */
function messageIndex(text: string): number | string {
  return wholeNumber(text) ?? `N is a message number from /history (1, 2, …), got ${JSON.stringify(text)}`;
}

function wholeNumber(text: string): number | undefined {
  if (!/^\d{1,9}$/.test(text)) return undefined;
  const n = Number(text);
  return n >= 1 ? n : undefined;
}
