// A controller-runtime work queue on virtual time: keys are deduplicated, a key being
// reconciled is marked dirty and reconciled again afterwards, `requeueAfter` forgets the
// key's failures and adds it after the delay, and `requeue`/errors go through the
// per-item exponential failure rate limiter (client-go workqueue
// ItemExponentialFailureRateLimiter, as crossplane-runtime pkg/ratelimiter NewController
// configures it: 1 s doubling to 60 s; Crossplane's XR controllers cap it at 30 s,
// internal/controller/apiextensions/definition/reconciler.go).
import type { Timer, VirtualClock } from './clock.js';

export interface Result {
  /** Requeue through the rate limiter (backoff). */
  requeue?: boolean;
  /** Requeue after this long; the key's failures are forgotten. */
  requeueAfter?: number;
  /** A reconcile error: requeued through the rate limiter. */
  error?: string;
}

export interface RateLimit {
  baseMs: number;
  maxMs: number;
}

export class Controller {
  private readonly timers = new Map<string, Timer>();
  private readonly failures = new Map<string, number>();
  private readonly processing = new Set<string>();
  private readonly dirty = new Set<string>();
  reconciles = 0;
  errors = 0;
  /** Last error per key, for diagnostics. */
  readonly lastError = new Map<string, string>();

  constructor(
    private readonly clock: VirtualClock,
    readonly name: string,
    private readonly reconcile: (key: string) => Promise<Result>,
    private readonly limit: RateLimit = { baseMs: 1_000, maxMs: 60_000 },
  ) {}

  /** Add `key` to be reconciled after `delayMs` (earliest request wins). */
  enqueue(key: string, delayMs = 0): void {
    if (this.processing.has(key) && delayMs === 0) {
      this.dirty.add(key);
      return;
    }
    const at = this.clock.now() + delayMs;
    const t = this.timers.get(key);
    if (t !== undefined && t.at <= at) return;
    t?.cancel();
    this.timers.set(
      key,
      this.clock.schedule(delayMs, `${this.name} ${key}`, () => this.process(key)),
    );
  }

  forget(key: string): void {
    this.failures.delete(key);
  }

  private rateLimited(key: string): number {
    const n = this.failures.get(key) ?? 0;
    this.failures.set(key, n + 1);
    return Math.min(this.limit.maxMs, this.limit.baseMs * 2 ** n);
  }

  private async process(key: string): Promise<void> {
    this.timers.delete(key);
    this.processing.add(key);
    this.reconciles++;
    let result: Result;
    try {
      result = await this.reconcile(key);
    } catch (err) {
      result = { error: err instanceof Error ? err.message : String(err) };
    }
    this.processing.delete(key);
    if (result.error !== undefined) {
      this.errors++;
      this.lastError.set(key, result.error);
    } else this.lastError.delete(key);
    if (result.error !== undefined || result.requeue === true) {
      this.enqueue(key, this.rateLimited(key));
    } else {
      this.forget(key);
      if (result.requeueAfter !== undefined && result.requeueAfter > 0) {
        this.enqueue(key, result.requeueAfter);
      }
    }
    if (this.dirty.delete(key)) this.enqueue(key, 0);
  }
}
