import type { Msg, NatsConnection } from 'nats';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * The messages published on `subject` while `action` runs, and for `settleMs` after it (for those
 * still on their way), each turned into a value by `read` as it arrives. The subscription reaches the
 * server before `action` starts, so nothing `action` causes is missed.
 */
export async function messagesDuring<T>(
  nc: NatsConnection,
  subject: string,
  read: (msg: Msg) => T,
  action: () => Promise<unknown>,
  settleMs = 300,
): Promise<T[]> {
  const seen: T[] = [];
  const sub = nc.subscribe(subject, {
    callback: (err, msg) => {
      if (!err) seen.push(read(msg));
    },
  });
  await nc.flush();
  try {
    await action();
    await sleep(settleMs);
  } finally {
    sub.unsubscribe();
  }
  return seen;
}
