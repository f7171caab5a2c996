// A deadline for one step of a scenario, also ended by Ctrl-C. Made by hand rather than with
// AbortSignal.any([signal, AbortSignal.timeout(ms)]): on Node 20 such a combined signal can be
// collected while a listener still waits on it, and then it never fires (a run hung for 20 minutes).

/** Runs `work` with a signal that aborts when `parent` does or after `ms`, whichever comes first. */
export async function withDeadline<T>(
  parent: AbortSignal,
  ms: number,
  what: string,
  work: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  parent.throwIfAborted();
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new Error(`${what} did not finish within ${ms / 1000} s`)), ms);
  const onAbort = () => controller.abort(parent.reason);
  parent.addEventListener('abort', onAbort, { once: true });
  try {
    return await work(controller.signal);
  } finally {
    clearTimeout(timer);
    parent.removeEventListener('abort', onAbort);
  }
}
