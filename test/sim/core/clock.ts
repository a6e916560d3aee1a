// Virtual time. Every controller of the simulation (Crossplane, provider-kubernetes, the
// workload clusters' controllers and kubelets) schedules its work here, so minutes of
// cluster time run in milliseconds: when nothing real is happening the clock jumps to the
// next scheduled event. While something real runs (a fetch program child process moving
// bytes), virtual time is paced against wall time at `rate` virtual ms per real ms, so
// polls, TTLs and backoffs keep their proportions to the download.
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';

export const SECOND = 1_000;
export const MINUTE = 60 * SECOND;
export const HOUR = 60 * MINUTE;

export interface Timer {
  readonly at: number;
  readonly label: string;
  cancel(): void;
}

interface Entry {
  at: number;
  seq: number;
  label: string;
  fn: () => void | Promise<void>;
  cancelled: boolean;
}

export type RunOutcome = 'done' | 'idle' | 'virtual-timeout' | 'real-timeout' | 'livelock';

/** Events at one virtual instant beyond which the simulation is stuck in a loop. */
const LIVELOCK_EVENTS = 20_000;
/** Events between yields to the I/O loop (child process exits, loopback HTTP). */
const YIELD_EVERY = 100;

export interface RunLimits {
  /** Stop after this much virtual time (from now). */
  virtualMs: number;
  /** Stop after this much wall time, whatever the virtual clock says. */
  realMs?: number;
}

/** Binary heap ordered by (at, seq): events at the same instant run in the order scheduled. */
class Heap {
  private readonly items: Entry[] = [];
  get size(): number {
    return this.items.length;
  }
  peek(): Entry | undefined {
    return this.items[0];
  }
  private less(a: Entry, b: Entry): boolean {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq);
  }
  push(e: Entry): void {
    const items = this.items;
    items.push(e);
    let i = items.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const parent = items[p];
      const cur = items[i];
      if (parent === undefined || cur === undefined || !this.less(cur, parent)) break;
      items[p] = cur;
      items[i] = parent;
      i = p;
    }
  }
  pop(): Entry | undefined {
    const items = this.items;
    const top = items[0];
    const last = items.pop();
    if (top === undefined || last === undefined) return undefined;
    if (items.length === 0) return top;
    items[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      const li = items[l];
      const ri = items[r];
      const mi = items[m];
      if (li !== undefined && mi !== undefined && this.less(li, mi)) m = l;
      const mm = items[m];
      if (ri !== undefined && mm !== undefined && this.less(ri, mm)) m = r;
      if (m === i) break;
      const a = items[i];
      const b = items[m];
      if (a === undefined || b === undefined) break;
      items[i] = b;
      items[m] = a;
      i = m;
    }
    return top;
  }
}

export class VirtualClock {
  private nowMs = 0;
  private seq = 0;
  private readonly heap = new Heap();
  private readonly activity = new Map<string, number>();
  private horizon = 0;
  /** Errors thrown by scheduled work: a simulator bug, reported by the scenario. */
  readonly errors: string[] = [];
  /** How many scheduled events ran (for the summary). */
  events = 0;

  constructor(
    /** Virtual ms per real ms while real work (a child process) is in flight. */
    public rate = 50,
    /** Wall-clock ms between pacing steps. */
    private readonly tickMs = 10,
    /** What virtual time 0 is, for timestamps written on objects. */
    readonly epochMs = Date.UTC(2026, 0, 1),
  ) {}

  now(): number {
    return this.nowMs;
  }

  /** RFC 3339 timestamp of the virtual now, as the API server writes it. */
  iso(offsetMs = 0): string {
    return new Date(this.epochMs + this.nowMs + offsetMs).toISOString().replace(/\.\d{3}Z$/, 'Z');
  }

  /** "+00:03:20": elapsed virtual time, for logs and the demo. */
  stamp(): string {
    const s = Math.floor(this.nowMs / 1000);
    const hh = String(Math.floor(s / 3600)).padStart(2, '0');
    const mm = String(Math.floor((s % 3600) / 60)).padStart(2, '0');
    const ss = String(s % 60).padStart(2, '0');
    return `+${hh}:${mm}:${ss}`;
  }

  schedule(delayMs: number, label: string, fn: () => void | Promise<void>): Timer {
    const entry: Entry = {
      // Whole milliseconds: fractional instants let `now + tiny` round back to `now` and a
      // controller waiting out a sub-millisecond remainder would spin at one instant.
      at: this.nowMs + Math.ceil(Math.max(0, delayMs)),
      seq: this.seq++,
      label,
      fn,
      cancelled: false,
    };
    this.heap.push(entry);
    return {
      at: entry.at,
      label,
      cancel: () => {
        entry.cancelled = true;
      },
    };
  }

  /** Mark real work in flight (a running process); virtual time is paced until released. */
  hold(key: string): () => void {
    this.activity.set(key, (this.activity.get(key) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const n = (this.activity.get(key) ?? 1) - 1;
      if (n <= 0) this.activity.delete(key);
      else this.activity.set(key, n);
    };
  }

  get busy(): boolean {
    return this.activity.size > 0;
  }

  private sameInstant = { at: -1, count: 0, labels: new Map<string, number>() };
  private sinceYield = 0;

  private async runEntry(e: Entry): Promise<void> {
    this.events++;
    if (this.nowMs !== this.sameInstant.at) {
      this.sameInstant = { at: this.nowMs, count: 0, labels: new Map() };
    }
    this.sameInstant.count++;
    const label = e.label.replace(/ .*/, '');
    this.sameInstant.labels.set(label, (this.sameInstant.labels.get(label) ?? 0) + 1);
    if (++this.sinceYield >= YIELD_EVERY) {
      this.sinceYield = 0;
      await new Promise((resolve) => setImmediate(resolve));
    }
    try {
      await e.fn();
    } catch (err) {
      const msg = err instanceof Error ? (err.stack ?? err.message) : String(err);
      this.errors.push(`[${this.stamp()}] ${e.label}: ${msg}`);
    }
  }

  /**
   * Process events until `until()` holds, nothing is left to do (and nothing real runs), or
   * a limit is reached. `until` is checked after every event.
   */
  async run(until: () => boolean, limits: RunLimits): Promise<RunOutcome> {
    const endVirtual = this.nowMs + limits.virtualMs;
    const realStart = performance.now();
    this.horizon = Math.max(this.horizon, this.nowMs);
    for (;;) {
      if (until()) return 'done';
      if (limits.realMs !== undefined && performance.now() - realStart > limits.realMs) {
        return 'real-timeout';
      }
      const head = this.heap.peek();
      if (head?.cancelled === true) {
        this.heap.pop();
        continue;
      }
      const reach = Math.min(Math.max(this.nowMs, this.horizon), endVirtual);
      if (head !== undefined && head.at <= reach) {
        this.heap.pop();
        this.nowMs = Math.max(this.nowMs, head.at);
        await this.runEntry(head);
        if (this.sameInstant.count > LIVELOCK_EVENTS) {
          const top = [...this.sameInstant.labels]
            .sort((a, b) => b[1] - a[1])
            .slice(0, 5)
            .map(([l, n]) => `${l} x${n}`)
            .join(', ');
          this.errors.push(
            `[${this.stamp()}] livelock: ${this.sameInstant.count} events at one instant (${top})`,
          );
          return 'livelock';
        }
        continue;
      }
      if (this.horizon > this.nowMs) {
        this.nowMs = Math.min(this.horizon, endVirtual);
        if (this.nowMs >= endVirtual) return until() ? 'done' : 'virtual-timeout';
        continue;
      }
      if (this.nowMs >= endVirtual) return 'virtual-timeout';
      if (this.busy) {
        const t0 = performance.now();
        await sleep(this.tickMs);
        this.horizon = this.nowMs + Math.max(1, Math.round((performance.now() - t0) * this.rate));
        continue;
      }
      if (head !== undefined) {
        if (head.at > endVirtual) {
          this.nowMs = endVirtual;
          return until() ? 'done' : 'virtual-timeout';
        }
        this.nowMs = head.at;
        continue;
      }
      // Nothing scheduled and nothing running: time passes with nothing happening.
      this.nowMs = endVirtual;
      return until() ? 'done' : 'idle';
    }
  }

  /** Let `ms` of virtual time pass, processing everything due meanwhile. */
  async advance(ms: number, realMs?: number): Promise<void> {
    await this.run(() => false, { virtualMs: ms, ...(realMs !== undefined ? { realMs } : {}) });
  }
}
