// Per-cluster memo of the storage backend, across calls.
//
// Crossplane calls the Function on every reconcile of a ModelCache, and between two calls most
// of its clusters observe exactly what they observed before (one Job reported progress, one
// claim bound). The backend is a pure function of its ClusterContext, so a cluster whose context
// is unchanged gets the result it got last time, frozen, which the codec then copies as the
// bytes it encoded the first time instead of building and encoding it again.
//
// "Unchanged" is decided on the wire bytes of the cluster's observed resources (recorded by the
// fast codec; compared with a memcmp) plus the small derived inputs as JSON. Where a resource's
// bytes are unknown (another codec, a test calling the core directly), the cluster is computed.
// Only the last call of each ModelCache is kept, and all of them within a byte budget, least
// recently called first out.

import { objectReady } from '../k8s/object.js';
import { frozenCopy, sourceBytesOf, type SourceSpan } from '../k8s/source-bytes.js';
import type { ClusterContext, ClusterResult } from './model.js';

/** What the memo may hold across all ModelCaches (inputs kept for comparison plus results). */
export const MEMO_BUDGET_BYTES = 48 * 2 ** 20;

/** Results are held as objects and encoded bytes: about this many times the observed bytes. */
const RESULT_BYTES_PER_INPUT_BYTE = 2;

interface ClusterEntry {
  /** The cluster's view, latched status and blocker, as JSON. */
  context: string;
  roles: string[];
  /** Copies of the observed resources' bytes, by role in `roles` order. */
  inputs: Buffer[];
  result: ClusterResult;
  /** Whether each role's observed Object is Ready (read once from the bytes compared). */
  observedReady: Readonly<Record<string, boolean>>;
  bytes: number;
}

interface CacheEntry {
  /** Everything shared by the call's clusters (spec, metadata, input), as JSON. */
  call: string;
  clusters: Map<string, ClusterEntry>;
  bytes: number;
}

export interface MemoStats {
  hits: number;
  misses: number;
  /** Clusters computed without the memo because a resource's bytes were unknown. */
  unkeyed: number;
}

export interface MemoResult {
  result: ClusterResult;
  /** Whether each observed role's Object is Ready; absent when the memo could not key it. */
  observedReady?: Readonly<Record<string, boolean>>;
}

/** One call for one ModelCache: look up or compute each cluster, then `end()`. */
export interface MemoCall {
  cluster(ctx: ClusterContext, compute: (ctx: ClusterContext) => ClusterResult): MemoResult;
  end(): void;
}

export class ClusterMemo {
  private readonly caches = new Map<string, CacheEntry>();
  private total = 0;
  readonly stats: MemoStats = { hits: 0, misses: 0, unkeyed: 0 };

  constructor(private readonly budget = MEMO_BUDGET_BYTES) {}

  /** Bytes held now. */
  get heldBytes(): number {
    return this.total;
  }

  clear(): void {
    this.caches.clear();
    this.total = 0;
  }

  begin(cacheKey: string, call: string): MemoCall {
    const before = this.caches.get(cacheKey);
    const previous = before?.call === call ? before.clusters : undefined;
    const next = new Map<string, ClusterEntry>();
    let bytes = 0;
    let keyed = 0;
    return {
      cluster: (ctx, compute) => {
        const key = inputsOf(ctx);
        if (key === undefined) {
          this.stats.unkeyed++;
          return { result: compute(ctx) };
        }
        keyed++;
        const old = previous?.get(ctx.cluster.name);
        if (old !== undefined && sameInputs(old, key)) {
          this.stats.hits++;
          next.set(ctx.cluster.name, old);
          bytes += old.bytes;
          return old;
        }
        this.stats.misses++;
        const computed = compute(ctx);
        const result: ClusterResult = frozenCopy(computed);
        const observedReady: Record<string, boolean> = {};
        for (const role of key.roles) observedReady[role] = objectReady(ctx.observed[role]);
        const inputBytes = key.inputs.reduce((n, b) => n + b.end - b.start, 0);
        const entry: ClusterEntry = {
          context: key.context,
          roles: key.roles,
          inputs: key.inputs.map((b) => Buffer.from(b.buf.subarray(b.start, b.end))),
          result,
          observedReady: Object.freeze(observedReady),
          bytes: inputBytes * (1 + RESULT_BYTES_PER_INPUT_BYTE) + key.context.length,
        };
        next.set(ctx.cluster.name, entry);
        bytes += entry.bytes;
        return entry;
      },
      end: () => {
        // A call that could key nothing (no wire bytes) says nothing about the last one's inputs.
        if (keyed === 0) return;
        if (before !== undefined) {
          this.caches.delete(cacheKey);
          this.total -= before.bytes;
        }
        if (bytes > this.budget) return;
        // Map order is insertion order: re-inserting makes this cache the most recent.
        this.caches.set(cacheKey, { call, clusters: next, bytes });
        this.total += bytes;
        for (const [k, v] of this.caches) {
          if (this.total <= this.budget) break;
          this.caches.delete(k);
          this.total -= v.bytes;
        }
      },
    };
  }
}

interface Inputs {
  context: string;
  roles: string[];
  inputs: SourceSpan[];
}

function inputsOf(ctx: ClusterContext): Inputs | undefined {
  const roles = Object.keys(ctx.observed).sort();
  const inputs: SourceSpan[] = [];
  for (const role of roles) {
    const span = sourceBytesOf(ctx.observed[role]);
    if (span === undefined) return undefined;
    inputs.push(span);
  }
  const context = JSON.stringify([ctx.cluster, ctx.latched ?? null, ctx.blocker ?? null]);
  return { context, roles, inputs };
}

function sameInputs(entry: ClusterEntry, key: Inputs): boolean {
  if (entry.context !== key.context || entry.roles.length !== key.roles.length) return false;
  for (let i = 0; i < key.roles.length; i++) {
    const held = entry.inputs[i];
    const now = key.inputs[i];
    if (entry.roles[i] !== key.roles[i] || held === undefined || now === undefined) return false;
    const len = now.end - now.start;
    if (held.length !== len || held.compare(now.buf, now.start, now.end) !== 0) return false;
  }
  return true;
}
