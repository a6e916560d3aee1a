// The time rules every request of the fetch program runs under. A request that receives
// nothing for the stall timeout is dropped; a body must keep up a minimum rate over every
// window of the stall timeout (a trickle of one byte a second never looks idle, yet never
// finishes); a metadata request (a listing page, a HEAD, a hub API call) must also complete
// within the request deadline, body included. All three are transient: the engine retries.

export interface RequestLimits {
  /** Nothing received for this long is a stall; also the window the minimum rate is measured over. */
  stallTimeoutMs: number;
  /** Bytes per second a body must average over every window. */
  minBytesPerSecond: number;
  /** A metadata request completes within this, body included. */
  requestTimeoutMs: number;
}

export const DEFAULT_REQUEST_LIMITS: RequestLimits = {
  stallTimeoutMs: 60_000,
  minBytesPerSecond: 1024,
  requestTimeoutMs: 300_000,
};

const seconds = (ms: number): number => ms / 1000;

/** Bytes a body must deliver in each window of the stall timeout. */
export function minWindowBytes(limits: RequestLimits): number {
  return Math.max(1, Math.ceil((limits.minBytesPerSecond * limits.stallTimeoutMs) / 1000));
}

/** No bytes, or too few, within the stall timeout. */
export class StallError extends Error {
  private constructor(message: string) {
    super(message);
    this.name = 'StallError';
  }

  static silent(limits: RequestLimits): StallError {
    return new StallError(`nothing received for ${seconds(limits.stallTimeoutMs)}s (stalled)`);
  }

  static slow(limits: RequestLimits): StallError {
    return new StallError(
      `less than ${minWindowBytes(limits)} bytes in ${seconds(limits.stallTimeoutMs)}s, under the minimum of ${limits.minBytesPerSecond} bytes/s (stalled)`,
    );
  }
}

/** A metadata request that did not complete within the request deadline. */
export class DeadlineError extends Error {
  constructor(limits: RequestLimits) {
    super(`not complete within ${seconds(limits.requestTimeoutMs)}s (request deadline)`);
    this.name = 'DeadlineError';
  }
}

/**
 * One request's abort signal: the caller's, plus timers that abort it with a reason of
 * ours. `reason` tells afterwards whether one of them (rather than the caller) fired.
 */
export class Watch {
  private readonly own = new AbortController();
  private readonly timers = new Set<NodeJS.Timeout>();
  readonly signal: AbortSignal;

  constructor(outer: AbortSignal) {
    this.signal = AbortSignal.any([outer, this.own.signal]);
  }

  /** Abort with `reason()` after `ms`, unless the returned cancel is called first. */
  after(ms: number, reason: () => Error): () => void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      this.abort(reason());
    }, ms);
    timer.unref();
    this.timers.add(timer);
    return () => {
      clearTimeout(timer);
      this.timers.delete(timer);
    };
  }

  abort(reason: Error): void {
    this.own.abort(reason);
  }

  /** The rule that fired, when one did. */
  get reason(): Error | undefined {
    return this.own.signal.aborted ? (this.own.signal.reason as Error) : undefined;
  }

  dispose(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }
}

/**
 * The minimum-throughput rule over one body: `feed` every chunk; at the end of each window
 * of the stall timeout, fewer than minWindowBytes bytes aborts the watch.
 */
export class Throughput {
  private bytes = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly limits: RequestLimits,
    watch: Watch,
  ) {
    const min = minWindowBytes(limits);
    this.timer = setInterval(() => {
      if (this.bytes < min) {
        this.stop();
        watch.abort(this.bytes === 0 ? StallError.silent(this.limits) : StallError.slow(limits));
      }
      this.bytes = 0;
    }, limits.stallTimeoutMs);
    this.timer.unref();
  }

  feed(n: number): void {
    this.bytes += n;
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

/** The reason a watched operation failed: the rule that fired, else the error itself. */
export function watched(watch: Watch, err: unknown): unknown {
  return watch.reason ?? err;
}
