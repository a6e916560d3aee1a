// Crossplane's watch circuit breaker, one per XR controller, on virtual time
// (crossplane/crossplane v2.3.4 internal/circuit: token_bucket.go, mapfunc.go; wired in
// internal/controller/apiextensions/definition/reconciler.go around the XR's self watch
// and its composed-resource watch; defaults from cmd/crossplane/core/core.go).
//  - every watch event mapped to an XR takes a token from that XR's bucket (burst 100,
//    refilled at 1/s); with none left the circuit opens for the cooldown (5 min);
//  - while open, events are dropped except one every half-open interval (30 s);
//  - events of an object being deleted always pass and are not counted; a deleting XR's own
//    event resets its state (NewSelfDeleteResetMapFunc);
//  - the reconciler reports the state as the XR's Responsive condition. Requeues the
//    reconciler asks for itself (the TTL) do not pass through it.
import type { VirtualClock } from '../core/clock.js';

export interface BreakerOptions {
  burst: number;
  refillPerSecond: number;
  cooldownMs: number;
  halfOpenMs: number;
}

export const DEFAULT_BREAKER: BreakerOptions = {
  burst: 100,
  refillPerSecond: 1,
  cooldownMs: 5 * 60_000,
  halfOpenMs: 30_000,
};

interface TargetState {
  tokens: number;
  lastRefill: number;
  recent: string[];
  isOpen: boolean;
  openedAt: number;
  lastAllowed: number;
  triggeredBy: string;
}

export interface BreakerState {
  isOpen: boolean;
  nextAllowedAt: number;
  triggeredBy: string;
}

/** When a circuit opened, for whom, and the watched object seen most in its last 16 events. */
export interface Opening {
  target: string;
  at: number;
  triggeredBy: string;
}

const RECENT = 16;

export class CircuitBreaker {
  private readonly targets = new Map<string, TargetState>();
  readonly openings: Opening[] = [];
  dropped = 0;
  /** Watch events mapped to each target (admitted or dropped, deletions excluded). */
  readonly counted = new Map<string, number>();

  constructor(
    private readonly clock: VirtualClock,
    private readonly opts: BreakerOptions = DEFAULT_BREAKER,
  ) {}

  state(target: string): BreakerState {
    const s = this.targets.get(target);
    if (!s?.isOpen) return { isOpen: false, nextAllowedAt: 0, triggeredBy: '' };
    return {
      isOpen: true,
      nextAllowedAt: s.lastAllowed + this.opts.halfOpenMs,
      triggeredBy: s.triggeredBy,
    };
  }

  reset(target: string): void {
    this.targets.delete(target);
  }

  /** NewMapFunc for one mapped request: whether the event reaches the work queue. */
  admit(target: string, source: string, deleting: boolean): boolean {
    if (deleting) return true;
    this.counted.set(target, (this.counted.get(target) ?? 0) + 1);
    const st = this.state(target);
    if (!st.isOpen) {
      this.record(target, source, false);
      return true;
    }
    if (this.clock.now() > st.nextAllowedAt) {
      this.record(target, source, true);
      return true;
    }
    this.record(target, source, false);
    this.dropped++;
    return false;
  }

  private record(target: string, source: string, halfOpenAllowed: boolean): void {
    const now = this.clock.now();
    let s = this.targets.get(target);
    if (!s) {
      s = {
        tokens: this.opts.burst,
        lastRefill: now,
        recent: [],
        isOpen: false,
        openedAt: 0,
        lastAllowed: 0,
        triggeredBy: '',
      };
      this.targets.set(target, s);
    }
    const elapsed = (now - s.lastRefill) / 1000;
    s.tokens = Math.min(this.opts.burst, s.tokens + this.opts.refillPerSecond * elapsed);
    s.lastRefill = now;
    s.recent.push(source);
    if (s.recent.length > RECENT) s.recent.shift();
    if (s.isOpen) {
      if (halfOpenAllowed) s.lastAllowed = now;
      if (now - s.openedAt < this.opts.cooldownMs) return;
      s.isOpen = false;
      s.recent = [];
    }
    if (s.tokens >= 1) {
      s.tokens -= 1;
      return;
    }
    s.isOpen = true;
    s.openedAt = now;
    s.lastAllowed = now;
    const counts = new Map<string, number>();
    let max = 0;
    for (const src of s.recent) {
      const n = (counts.get(src) ?? 0) + 1;
      counts.set(src, n);
      if (n >= max) {
        max = n;
        s.triggeredBy = src;
      }
    }
    this.openings.push({ target, at: now, triggeredBy: s.triggeredBy });
  }
}
