import {
  inferenceCluster,
  type InferenceCluster,
  type ProviderConfigRef,
} from './api/inferencecluster.js';
import { API_VERSION, KIND_INFERENCE_CLUSTER } from './constants.js';
import type { CoreSelector } from './core.js';
import { undecodedSpan } from './codec/struct.js';
import { frozenCopy } from './k8s/frozen.js';
import { stringAt, type Json } from './k8s/object.js';

/** What cores need to know about one InferenceCluster. */
export interface ClusterView {
  name: string;
  providerConfigRef: ProviderConfigRef;
  /** The class the cluster offers for ReadWriteMany volumes, if any. */
  storageClassName: string | undefined;
  /** true/false when the InferenceCluster observed the class; undefined when not yet known. */
  classExists: boolean | undefined;
}

export function clusterView(ic: InferenceCluster): ClusterView {
  return {
    name: ic.metadata.name,
    providerConfigRef: ic.status?.providerConfigRef ?? ic.spec.providerConfigRef,
    storageClassName: ic.spec.storage?.storageClassName,
    classExists: ic.status?.storage?.classExists,
  };
}

/** The requirement for the InferenceClusters a selector matches (empty labels: all of them). */
export function clusterRequirement(matchLabels: Record<string, string> | undefined): CoreSelector {
  return {
    apiVersion: API_VERSION,
    kind: KIND_INFERENCE_CLUSTER,
    matchLabels: { ...(matchLabels ?? {}) },
  };
}

type ParsedCluster = {
  name: string;
  raw: Json;
  parsed: ReturnType<typeof inferenceCluster.safeParse>;
};

/**
 * Valid InferenceClusters already parsed, by their wire bytes (as a latin1 string): every call of
 * every XR that selects them lists them again, mostly unchanged. Frozen, since calls share them.
 */
const parsedByBytes = new Map<string, { name: string; data: InferenceCluster }>();
/** Beyond this many distinct InferenceClusters (or versions of them) the cache starts over. */
const PARSED_MAX = 4096;

function parseCluster(raw: Json): ParsedCluster | undefined {
  const span = undecodedSpan(raw);
  const key = span?.buf.toString('latin1', span.start, span.end);
  const hit = key === undefined ? undefined : parsedByBytes.get(key);
  if (hit !== undefined) return { name: hit.name, raw, parsed: { success: true, data: hit.data } };
  const name = stringAt(raw, 'metadata', 'name');
  if (name === undefined || name.includes('/')) return undefined;
  const parsed = inferenceCluster.safeParse(raw);
  if (key !== undefined && parsed.success) {
    if (parsedByBytes.size >= PARSED_MAX) parsedByBytes.clear();
    parsedByBytes.set(key, { name, data: frozenCopy(parsed.data) });
  }
  return { name, raw, parsed };
}

/** Required InferenceClusters, parsed, sorted by name; those without a usable name are dropped. */
export function parseClusters(list: Json[]): ParsedCluster[] {
  return list
    .flatMap((raw) => parseCluster(raw) ?? [])
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
