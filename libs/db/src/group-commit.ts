export interface GroupCommitOptions<I, R> {
  /** Most requests one batch carries (bounds a transaction's statements and the locks it holds). */
  maxBatch: number;
  /** Batches stored at once; requests that arrive while this many run wait for the next one. */
  concurrency: number;
  /**
   * Stores a batch (typically in one transaction) and settles each request: `results[i]` is the
   * outcome of `items[i]`. A rejection fails every request of the batch with that error.
   */
  store: (items: I[]) => Promise<PromiseSettledResult<R>[]>;
}

interface Waiting<I, R> {
  item: I;
  resolve: (value: R) => void;
  reject: (reason: unknown) => void;
}

/**
 * Group commit: requests that arrive while earlier batches are being stored are stored together, so
 * under load one transaction (one commit, a handful of statements) carries many of them. A request
 * that finds fewer than `concurrency` batches running starts one at once: nothing ever waits on a
 * timer, and a lone request costs what it did without batching.
 *
 * @example
 *   const enqueues = new GroupCommit({ maxBatch: 64, concurrency: 2, store: (items) => storeAll(items) });
 *   const stored = await enqueues.submit(request);
 */
export class GroupCommit<I, R> {
  readonly #opts: GroupCommitOptions<I, R>;
  #queue: Waiting<I, R>[] = [];
  #running = 0;

  constructor(opts: GroupCommitOptions<I, R>) {
    if (!(opts.maxBatch >= 1 && opts.concurrency >= 1)) throw new RangeError('maxBatch and concurrency must be ≥ 1');
    this.#opts = opts;
  }

  /** Requests waiting for a batch (not those being stored). */
  get waiting(): number {
    return this.#queue.length;
  }

  submit(item: I): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.#queue.push({ item, resolve, reject });
      this.#startBatches();
    });
  }

  #startBatches(): void {
    while (this.#running < this.#opts.concurrency && this.#queue.length > 0) {
      const batch = this.#queue.splice(0, this.#opts.maxBatch);
      this.#running++;
      void this.#store(batch).finally(() => {
        this.#running--;
        this.#startBatches();
      });
    }
  }

  async #store(batch: Waiting<I, R>[]): Promise<void> {
    let results: PromiseSettledResult<R>[];
    try {
      results = await this.#opts.store(batch.map((w) => w.item));
      if (results.length !== batch.length) {
        throw new Error(`group commit: store settled ${results.length} of ${batch.length} requests`);
      }
    } catch (err) {
      for (const w of batch) w.reject(err);
      return;
    }
    for (const [i, w] of batch.entries()) {
      const result = results[i] as PromiseSettledResult<R>;
      if (result.status === 'fulfilled') w.resolve(result.value);
      else w.reject(result.reason);
    }
  }
}
