// Exponential backoff with full jitter, honouring the server's Retry-After.
import { setTimeout as sleep } from 'node:timers/promises';

export interface RetryOptions {
  /** Attempts in a row without progress before a file fails. */
  attempts: number;
  /** First backoff; doubles each attempt. */
  baseMs: number;
  /** Ceiling of one computed backoff. */
  maxMs: number;
  /** Ceiling of a server-requested wait (Retry-After), so a hostile header cannot park the Job. */
  maxRetryAfterMs: number;
}

export const DEFAULT_RETRY: RetryOptions = {
  attempts: 8,
  baseMs: 1_000,
  maxMs: 60_000,
  maxRetryAfterMs: 300_000,
};

/**
 * How long to wait before attempt `attempt` (1-based count of failures so far). Full
 * jitter spreads the herd of parallel downloads; a Retry-After is a floor, not a hint.
 */
export function backoffMs(
  opts: RetryOptions,
  attempt: number,
  retryAfterMs?: number,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(opts.maxMs, opts.baseMs * 2 ** Math.max(0, attempt - 1));
  const jittered = Math.round(ceiling / 2 + (random() * ceiling) / 2);
  if (retryAfterMs === undefined) return jittered;
  // The server's wait exactly, plus a little jitter so parallel downloads do not return together.
  return Math.min(retryAfterMs, opts.maxRetryAfterMs) + Math.round((random() * opts.baseMs) / 4);
}

/** Sleep `ms`; an abort rejects with the signal's own reason (what stopped the run). */
export async function wait(ms: number, signal?: AbortSignal): Promise<void> {
  try {
    await sleep(ms, undefined, signal ? { signal } : {});
  } catch (err) {
    throw signal?.aborted === true ? signal.reason : err;
  }
}
