// Waiting for work on behalf of a gRPC caller that may give up. The work goes on when
// the caller leaves (its result still serves the next call); the wait ends at the
// caller's abort, or at a budget before its deadline, and leaves no timer and no
// listener behind either way.

export interface CallerWait<T> {
  /** The caller's signal: its abort ends the wait with `cancelled()`. */
  signal?: AbortSignal;
  cancelled: () => Error;
  /** Ends the wait after this many ms with what `atBudget` returns (or throws). */
  budgetMs?: number;
  atBudget?: () => T;
}

export function forCaller<T>(work: Promise<T>, o: CallerWait<T>): Promise<T> {
  if (!o.signal && o.budgetMs === undefined) return work;
  if (o.signal?.aborted) return Promise.reject(o.cancelled());
  return new Promise<T>((resolve, reject) => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const end = () => {
      clearTimeout(timer);
      o.signal?.removeEventListener("abort", aborted);
    };
    const aborted = () => {
      end();
      reject(o.cancelled());
    };
    o.signal?.addEventListener("abort", aborted, { once: true });
    if (o.budgetMs !== undefined && o.atBudget) {
      const atBudget = o.atBudget;
      timer = setTimeout(() => {
        end();
        try {
          resolve(atBudget());
        } catch (e) {
          reject(e as Error);
        }
      }, o.budgetMs);
    }
    work.then(
      (v) => {
        end();
        resolve(v);
      },
      (e: unknown) => {
        end();
        reject(e as Error);
      },
    );
  });
}
