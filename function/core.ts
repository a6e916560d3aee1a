import type { z } from 'zod';
import { conditionsAt, type Json } from './k8s/object.js';

// The pure boundary every XR kind's core implements: plain JSON in, plain JSON out. The
// gRPC layer (dispatch.ts) converts to and from protobuf; the cores never see the SDK.

export interface CoreRequest {
  /** The observed XR: metadata, spec and status. */
  composite: Json;
  /** Observed composed resources, keyed by composition resource name. */
  observed: Record<string, Json>;
  /** Required resources by requirement name; undefined = not fetched yet, [] = none exist. */
  required: Record<string, Json[] | undefined>;
  /** The Composition step's input, unparsed. */
  input: unknown;
  /** Desired composed resources from earlier pipeline steps (absent: none). */
  desired?: Record<string, Json>;
}

export type ConditionStatus = 'True' | 'False' | 'Unknown';

export interface CoreCondition {
  type: string;
  status: ConditionStatus;
  reason: string;
  message: string;
}

/** Becomes a Kubernetes event on the XR; only emitted on transitions. */
export interface CoreEvent {
  severity: 'Normal' | 'Warning';
  reason: string;
  message: string;
}

export interface CoreSelector {
  apiVersion: string;
  kind: string;
  matchLabels?: Record<string, string>;
  matchName?: string;
  namespace?: string;
}

export interface CoreResponse {
  /** Desired composed resources this core owns, keyed by composition resource name. */
  resources: Record<string, Json>;
  /** The XR status fields this core owns, rebuilt whole on every call. */
  status: Json;
  /** Explicit XR readiness (overrides Crossplane's derived readiness); undefined: no opinion. */
  ready: boolean | undefined;
  /** Keys of earlier steps' desired resources to leave out (workloads held back). */
  withheld?: string[];
  conditions: CoreCondition[];
  events: CoreEvent[];
  requirements: Record<string, CoreSelector>;
  ttlSeconds: number;
}

/** Bad input: reported as a FATAL result naming the field; nothing is applied. */
export interface CoreFatal {
  fatal: string;
}

export type CoreResult = CoreResponse | CoreFatal;

export function isFatal(r: CoreResult): r is CoreFatal {
  return 'fatal' in r;
}

/** "spec.artifact.source.s3.uri: must be s3://bucket/prefix; spec.mount.path: ..." */
export function describeIssues(prefix: string, error: z.ZodError): string {
  return error.issues
    .map((i) => {
      const path = [prefix, ...i.path.map(String)].filter((p) => p !== '').join('.');
      // A record key that fails says only "Invalid key in record": say what is wrong with it.
      const inner = i.code === 'invalid_key' ? i.issues.map((k) => k.message).join(', ') : '';
      return `${path}: ${inner !== '' ? inner : i.message}`;
    })
    .join('; ');
}

/**
 * The conditions of the given types as last written on the XR: re-sent unchanged when a
 * core cannot decide this call (inputs not fetched yet), so they are not lost.
 */
export function previousConditions(status: unknown, types: ReadonlySet<string>): CoreCondition[] {
  return conditionsAt(status, 'conditions').flatMap((c) =>
    types.has(c.type) && (c.status === 'True' || c.status === 'False' || c.status === 'Unknown')
      ? [{ type: c.type, status: c.status, reason: c.reason ?? '', message: c.message ?? '' }]
      : [],
  );
}
