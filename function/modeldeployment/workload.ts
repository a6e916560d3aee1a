import { LABEL_COMPONENT, LABEL_MANAGED_BY, MANAGED_BY, RUN_AS_ID } from '../constants.js';
import type { ModelDeploymentSpec } from '../api/modeldeployment.js';
import type { ClusterView } from '../clusters.js';
import { injectCaches, type CacheMount } from '../consumers/inject.js';
import { providerObject, type Json } from '../k8s/object.js';

/** GPU resource engines ask for; tensor parallelism is GPUs per pod. */
export const GPU_RESOURCE = 'nvidia.com/gpu';
/** Label on pods so Services and PodMonitors can find a deployment's pods. */
export const LABEL_NAME = 'app.kubernetes.io/name';

const DEPLOYMENT_READY_CEL =
  'has(object.status.availableReplicas) && object.status.availableReplicas >= object.spec.replicas';
const LWS_READY_CEL =
  'has(object.status.conditions) && object.status.conditions.exists(c, c.type == "Available" && c.status == "True")';

function resources(spec: ModelDeploymentSpec): Json {
  const requests: Record<string, string | number> = { ...(spec.engine.resources?.requests ?? {}) };
  const limits: Record<string, string | number> = { ...(spec.engine.resources?.limits ?? {}) };
  // The user's own GPU figure wins; otherwise tensor parallelism decides it.
  if (limits[GPU_RESOURCE] === undefined && requests[GPU_RESOURCE] === undefined) {
    limits[GPU_RESOURCE] = String(spec.topology.tensor);
    requests[GPU_RESOURCE] = String(spec.topology.tensor);
  }
  return { requests, limits };
}

/** The engine pod: hardened, with writable scratch only where engines need it. */
function podSpec(spec: ModelDeploymentSpec, mounts: CacheMount[]): Json {
  const container: Json = {
    name: 'engine',
    image: spec.engine.image,
    ...(spec.engine.command ? { command: spec.engine.command } : {}),
    ...(spec.engine.args ? { args: spec.engine.args } : {}),
    // Engines write caches under $HOME; the root filesystem is read-only, /tmp is not.
    env: [
      ...((spec.engine.env ?? []).some((e) => e.name === 'HOME')
        ? []
        : [{ name: 'HOME', value: '/tmp' }]),
      ...(spec.engine.env ?? []),
    ],
    ports: [{ name: 'http', containerPort: spec.engine.port }],
    resources: resources(spec),
    volumeMounts: [
      { name: 'tmp', mountPath: '/tmp' },
      { name: 'dshm', mountPath: '/dev/shm' },
    ],
    securityContext: {
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      runAsNonRoot: true,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    },
  };
  const pod: Json = {
    ...(spec.engine.imagePullSecrets ? { imagePullSecrets: spec.engine.imagePullSecrets } : {}),
    securityContext: {
      runAsNonRoot: true,
      runAsUser: RUN_AS_ID,
      runAsGroup: RUN_AS_ID,
      fsGroup: RUN_AS_ID,
      seccompProfile: { type: 'RuntimeDefault' },
    },
    containers: [container],
    volumes: [
      { name: 'tmp', emptyDir: {} },
      // NCCL and PyTorch use shared memory between GPU workers; the default 64 MiB is too small.
      { name: 'dshm', emptyDir: { medium: 'Memory' } },
    ],
  };
  return injectCaches(pod, mounts);
}

export interface WorkloadTarget {
  cluster: ClusterView;
  namespace: string;
  name: string;
  replicas: number;
  mounts: CacheMount[];
}

/** The workload on one cluster: a Deployment, or a LeaderWorkerSet gang of `pipeline` pods. */
export function workloadObject(spec: ModelDeploymentSpec, t: WorkloadTarget): Json {
  const labels = {
    [LABEL_NAME]: t.name,
    [LABEL_MANAGED_BY]: MANAGED_BY,
    [LABEL_COMPONENT]: 'inference',
  };
  const template = { metadata: { labels }, spec: podSpec(spec, t.mounts) };
  const metadata = { name: t.name, namespace: t.namespace, labels };
  const gang = spec.topology.strategy === 'TensorPipeline';
  const manifest = gang
    ? {
        apiVersion: 'leaderworkerset.x-k8s.io/v1',
        kind: 'LeaderWorkerSet',
        metadata,
        spec: {
          replicas: t.replicas,
          leaderWorkerTemplate: {
            size: spec.topology.pipeline,
            // One pod of a gang restarting invalidates the others' shards: restart together.
            restartPolicy: 'RecreateGroupOnPodRestart',
            leaderTemplate: template,
            workerTemplate: template,
          },
        },
      }
    : {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata,
        spec: {
          replicas: t.replicas,
          selector: { matchLabels: { [LABEL_NAME]: t.name } },
          template,
        },
      };
  return providerObject({
    providerConfigRef: t.cluster.providerConfigRef,
    readinessCel: gang ? LWS_READY_CEL : DEPLOYMENT_READY_CEL,
    manifest,
  });
}
