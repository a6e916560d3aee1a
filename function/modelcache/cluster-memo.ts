// Per-cluster memo of the storage backend, across calls.
//
// Crossplane calls the Function on every reconcile of a ModelCache, and between two calls most
// of its clusters observe exactly what they observed before (one Job reported progress, one
// claim bound). The backend is a pure function of its ClusterContext, so a cluster whose context
// is unchanged gets the result it got last time. The memo holds that result's resources as the
// Struct bytes encoded for them and hands them back as objects over those bytes, which the codec
// copies through untouched: nothing is built or encoded again, and the heap holds a few buffers
// per cluster rather than object graphs for the garbage collector to trace.
//
// "Unchanged" is decided on the wire bytes of the cluster's observed resources (the fast codec
// hands them over still undecoded; compared with a memcmp) plus the small derived inputs (the
// cluster's view, latched status and blocker), compared as JSON values. Where a resource's bytes
// are unknown (another codec, a test calling the core directly, an object already read), the
// cluster is computed.
//
// A result is kept only once a cluster's inputs were seen unchanged on two calls in a row: the
// first sighting keeps only the inputs, so a call where every cluster changed costs what it would
// without the memo (plus copying the inputs), and a cluster that changes on every call is never
// encoded twice. Only the last call of each ModelCache is kept, and all of them within a byte
// budget, least recently called first out.

import { encodeStructsEndToEnd, encodedStruct, undecodedSpan, type Span } from '../codec/struct.js';
import { frozenCopy } from '../k8s/frozen.js';
import { objectReady, type Json } from '../k8s/object.js';
import type { ClusterContext, ClusterResult } from './model.js';

/** What the memo may hold across all ModelCaches (inputs kept for comparison plus results). */
export const MEMO_BUDGET_BYTES = 48 * 2 ** 20;

/** Bytes held per cluster besides its buffers (status, role names, the derived inputs). */
const ENTRY_OVERHEAD_BYTES = 2048;

interface ClusterEntry {
  /** The cluster's view, latched status and blocker (copies: callers' objects are theirs). */
  context: Context;
  roles: string[];
  /** The observed resources' bytes, by role in `roles` order, end to end... */
  inputs: Buffer;
  /** ...and where each ends in `inputs`. */
  inputEnds: number[];
  /** The result, once the inputs were seen twice in a row. */
  held: Held | undefined;
  bytes: number;
}

interface Held {
  /** The desired resources' Struct bytes, end to end, and each one's role and end. */
  outputs: Buffer;
  outputRoles: string[];
  outputEnds: number[];
  status: ClusterResult['status'];
  volume: Json;
  /** Whether each role's observed Object is Ready (read once from the bytes compared). */
  observedReady: Readonly<Record<string, boolean>>;
}

interface CacheEntry {
  /** Everything shared by the call's clusters (spec, metadata, input), as JSON. */
  call: string;
  clusters: Map<string, ClusterEntry>;
  bytes: number;
}

export interface MemoStats {
  /** Clusters answered from a held result. */
  hits: number;
  /** Clusters computed (first sightings of new inputs, and second sightings being kept). */
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
        const unchanged = old !== undefined && sameInputs(old, key);
        if (unchanged && old.held !== undefined) {
          this.stats.hits++;
          next.set(ctx.cluster.name, old);
          bytes += old.bytes;
          return { result: resultOf(old.held), observedReady: old.held.observedReady };
        }
        this.stats.misses++;
        const result = compute(ctx);
        if (!unchanged) {
          const entry = sighting(key);
          next.set(ctx.cluster.name, entry);
          bytes += entry.bytes;
          return { result };
        }
        const held = hold(ctx, key, result);
        const entry = { ...old, held, bytes: old.bytes + held.outputs.length };
        next.set(ctx.cluster.name, entry);
        bytes += entry.bytes;
        return { result: resultOf(held), observedReady: held.observedReady };
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

/** What the backend reads besides the observed resources and the call's shared inputs. */
type Context = readonly [
  ClusterContext['cluster'],
  ClusterContext['latched'],
  ClusterContext['blocker'],
];

interface Inputs {
  context: Context;
  roles: string[];
  inputs: Span[];
}

function inputsOf(ctx: ClusterContext): Inputs | undefined {
  const roles = Object.keys(ctx.observed).sort();
  const inputs: Span[] = [];
  for (const role of roles) {
    const span = undecodedSpan(ctx.observed[role]);
    if (span === undefined) return undefined;
    inputs.push(span);
  }
  return { context: [ctx.cluster, ctx.latched, ctx.blocker], roles, inputs };
}

/** A first sighting of these inputs: a copy of their bytes to compare the next call with. */
function sighting(key: Inputs): ClusterEntry {
  const inputEnds: number[] = [];
  let end = 0;
  for (const span of key.inputs) inputEnds.push((end += span.end - span.start));
  const inputs = Buffer.allocUnsafe(end);
  key.inputs.forEach((span, i) => {
    span.buf.copy(inputs, inputEnds[i - 1] ?? 0, span.start, span.end);
  });
  return {
    context: frozenCopy(key.context),
    roles: key.roles,
    inputs,
    inputEnds,
    held: undefined,
    bytes: inputs.length + ENTRY_OVERHEAD_BYTES,
  };
}

/** Keep a computed result as bytes (see the top of this file). */
function hold(ctx: ClusterContext, key: Inputs, result: ClusterResult): Held {
  const outputRoles = Object.keys(result.resources);
  const { bytes: outputs, ends: outputEnds } = encodeStructsEndToEnd(
    outputRoles.map((role) => result.resources[role] ?? {}),
  );
  const observedReady: Record<string, boolean> = {};
  for (const role of key.roles) observedReady[role] = objectReady(ctx.observed[role]);
  return {
    outputs,
    outputRoles,
    outputEnds,
    status: frozenCopy(result.status),
    volume: frozenCopy(result.volume),
    observedReady: Object.freeze(observedReady),
  };
}

/** The held result: fresh objects over the held bytes, shared frozen status. */
function resultOf(held: Held): ClusterResult {
  const resources: Record<string, Json> = {};
  held.outputRoles.forEach((role, i) => {
    resources[role] = encodedStruct(
      held.outputs,
      held.outputEnds[i - 1] ?? 0,
      held.outputEnds[i] ?? 0,
    );
  });
  return { resources, status: held.status, volume: held.volume };
}

function sameInputs(entry: ClusterEntry, key: Inputs): boolean {
  if (entry.roles.length !== key.roles.length || !sameJson(entry.context, key.context))
    return false;
  for (let i = 0; i < key.roles.length; i++) {
    const now = key.inputs[i];
    if (entry.roles[i] !== key.roles[i] || now === undefined) return false;
    const start = entry.inputEnds[i - 1] ?? 0;
    const end = entry.inputEnds[i] ?? 0;
    if (end - start !== now.end - now.start) return false;
    if (entry.inputs.compare(now.buf, now.start, now.end, start, end) !== 0) return false;
  }
  return true;
}

/**
 * Deep equality of JSON values (plain objects, arrays, primitives; undefined members ignored),
 * key order included: a result may carry an input's keys in the order they came.
 */
function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a) && Array.isArray(b)) {
    return a.length === b.length && a.every((v, i) => sameJson(v, b[i]));
  }
  const x = a as Record<string, unknown>;
  const y = b as Record<string, unknown>;
  const xs = Object.keys(x).filter((k) => x[k] !== undefined);
  const ys = Object.keys(y).filter((k) => y[k] !== undefined);
  return xs.length === ys.length && xs.every((k, i) => k === ys[i] && sameJson(x[k], y[k]));
}
