import { asJson, at, stringAt, type Json } from '../k8s/object.js';

/** Where each workload kind keeps its pod templates' specs. */
const POD_SPEC_PATHS: Record<string, string[][]> = {
  'apps/v1/Deployment': [['spec', 'template', 'spec']],
  'apps/v1/StatefulSet': [['spec', 'template', 'spec']],
  'batch/v1/Job': [['spec', 'template', 'spec']],
  'leaderworkerset.x-k8s.io/v1/LeaderWorkerSet': [
    ['spec', 'leaderWorkerTemplate', 'leaderTemplate', 'spec'],
    ['spec', 'leaderWorkerTemplate', 'workerTemplate', 'spec'],
  ],
};

/** provider-kubernetes Object kinds that wrap a remote manifest. */
const OBJECT_API_VERSIONS = new Set([
  'kubernetes.m.crossplane.io/v1alpha1',
  'kubernetes.crossplane.io/v1alpha2',
]);
const MANIFEST_PATH = ['spec', 'forProvider', 'manifest'];

export interface WorkloadShape {
  /** "Deployment", "LeaderWorkerSet", ... */
  kind: string;
  /** Path from the resource to the workload manifest: [] when raw, into the Object otherwise. */
  manifestPath: string[];
  /** The Object's provider config (undefined for a raw workload). */
  providerConfigRef: { kind: string; name: string } | undefined;
}

function kindKey(manifest: unknown): string | undefined {
  const apiVersion = stringAt(manifest, 'apiVersion');
  const kind = stringAt(manifest, 'kind');
  return apiVersion !== undefined && kind !== undefined ? `${apiVersion}/${kind}` : undefined;
}

/** The workload a desired resource is (raw) or wraps (in an Object), if any. */
export function workloadShape(resource: Json): WorkloadShape | undefined {
  const raw = kindKey(resource);
  if (raw !== undefined && POD_SPEC_PATHS[raw]) {
    return { kind: String(resource['kind']), manifestPath: [], providerConfigRef: undefined };
  }
  if (
    !OBJECT_API_VERSIONS.has(stringAt(resource, 'apiVersion') ?? '') ||
    resource['kind'] !== 'Object'
  ) {
    return undefined;
  }
  const manifest = at(resource, ...MANIFEST_PATH);
  const inner = kindKey(manifest);
  if (inner === undefined || !POD_SPEC_PATHS[inner]) return undefined;
  const name = stringAt(resource, 'spec', 'providerConfigRef', 'name');
  return {
    kind: stringAt(manifest, 'kind') ?? '',
    manifestPath: MANIFEST_PATH,
    providerConfigRef:
      name === undefined
        ? undefined
        : {
            kind:
              stringAt(resource, 'spec', 'providerConfigRef', 'kind') ?? 'ClusterProviderConfig',
            name,
          },
  };
}

/** A copy of `value` with the object at `path` replaced by `fn` of it; copies only along the path. */
function updateAt(value: Json, path: string[], fn: (node: Json) => Json): Json {
  const [head, ...rest] = path;
  if (head === undefined) return fn(value);
  const child = asJson(value[head]);
  if (child === undefined) return value;
  return { ...value, [head]: updateAt(child, rest, fn) };
}

/** Apply `fn` to every pod spec of the workload in `resource`; the input is not modified. */
export function mapPodSpecs(
  resource: Json,
  shape: WorkloadShape,
  fn: (podSpec: Json) => Json,
): Json {
  return updateAt(resource, shape.manifestPath, (manifest) => {
    const key = kindKey(manifest) ?? '';
    return (POD_SPEC_PATHS[key] ?? []).reduce((m, path) => updateAt(m, path, fn), manifest);
  });
}
