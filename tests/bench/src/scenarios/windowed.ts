// Many asynchronous operations with a bounded number under way at once.

/**
 * Runs `work(0 … count-1)`, keeping up to `window` of them under way; resolves once all are done and
 * rejects with the first failure (after the ones under way have settled). Stops starting new ones on abort.
 */
export async function windowed(
  count: number,
  window: number,
  signal: AbortSignal,
  work: (i: number) => Promise<unknown>,
): Promise<void> {
  let next = 0;
  let failure: { err: unknown } | undefined;
  const lane = async () => {
    while (next < count && failure === undefined && !signal.aborted) {
      const i = next++;
      try {
        await work(i);
      } catch (err) {
        failure ??= { err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(window, count) }, lane));
  if (failure) throw failure.err;
  signal.throwIfAborted();
}
