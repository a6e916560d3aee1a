import {
  inferenceCluster,
  type InferenceCluster,
  type ProviderConfigRef,
} from './api/inferencecluster.js';
import { API_VERSION, KIND_INFERENCE_CLUSTER } from './constants.js';
import type { CoreSelector } from './core.js';
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

/**
 * The provider config that reaches the cluster: what the InferenceCluster reports it resolved
 * (status), else what it asks for (spec). Every core and the mount step use this one rule.
 */
export function effectiveProviderConfig(ic: InferenceCluster): ProviderConfigRef {
  return ic.status?.providerConfigRef ?? ic.spec.providerConfigRef;
}

export function clusterView(ic: InferenceCluster): ClusterView {
  return {
    name: ic.metadata.name,
    providerConfigRef: effectiveProviderConfig(ic),
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

function parseCluster(raw: Json): ParsedCluster | undefined {
  const name = stringAt(raw, 'metadata', 'name');
  if (name === undefined || name.includes('/')) return undefined;
  return { name, raw, parsed: inferenceCluster.safeParse(raw) };
}

/** Required InferenceClusters, parsed, sorted by name; those without a usable name are dropped. */
export function parseClusters(list: Json[]): ParsedCluster[] {
  return list
    .flatMap((raw) => parseCluster(raw) ?? [])
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
