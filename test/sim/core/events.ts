// Kubernetes events, aggregated as client-go's event recorder does (same object, type,
// reason and message: one event with a count).
import type { VirtualClock } from './clock.js';

export interface SimEvent {
  cluster: string;
  object: string;
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
  count: number;
  first: string;
  last: string;
}

export class EventLog {
  readonly events: SimEvent[] = [];
  private readonly index = new Map<string, SimEvent>();

  constructor(private readonly clock: VirtualClock) {}

  record(
    cluster: string,
    object: string,
    type: 'Normal' | 'Warning',
    reason: string,
    message: string,
  ): void {
    const key = `${cluster}\u0000${object}\u0000${type}\u0000${reason}\u0000${message}`;
    const now = this.clock.stamp();
    const prev = this.index.get(key);
    if (prev) {
      prev.count++;
      prev.last = now;
      return;
    }
    const ev: SimEvent = {
      cluster,
      object,
      type,
      reason,
      message,
      count: 1,
      first: now,
      last: now,
    };
    this.events.push(ev);
    this.index.set(key, ev);
  }

  about(object: string): SimEvent[] {
    return this.events.filter((e) => e.object === object);
  }
}
