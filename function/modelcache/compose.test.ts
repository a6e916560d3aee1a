import { describe, expect, it } from 'vitest';
import { API_VERSION, REQUIRE_CLUSTERS } from '../constants.js';
import { isFatal, type CoreRequest, type CoreResponse } from '../core.js';
import type { Json } from '../k8s/object.js';
import * as f from '../../test/support/fixtures.js';
import { golden, wire } from '../../test/support/golden.js';
import { composeModelCache } from './compose.js';

const NFS = { storageClassName: 'nfs-rwx', classExists: true };
const HF = f.modelCache(f.HF_WEIGHTS);
const IDENTITY = '89d2e539f5e2a14dde9396eecb2f6b294644c9f84543bcdafbc3b4044d771188';
/** The first 16 hex digits of the cache's spec and refetch token digest (cacheModel). */
const DIGEST = 'bd036cd4de2eb271';

function compose(req: CoreRequest): CoreResponse {
  const res = composeModelCache(req);
  if (isFatal(res)) throw new Error(res.fatal);
  return res;
}

/** A replica as Crossplane observes it: what the cache asked for, with Crossplane's fields and a status. */
function observedReplica(cache: Json, cluster: Json, status: Json | undefined): Json {
  const r = f.modelCacheReplica(cache, cluster, status);
  return {
    ...r,
    spec: {
      ...(r['spec'] as Json),
      crossplane: {
        compositionRef: { name: 'modelcachereplica' },
        resourceRefs: [
          { apiVersion: 'kubernetes.m.crossplane.io/v1alpha1', kind: 'Object', name: 'x' },
        ],
      },
    },
  };
}

function replicaStatus(phase: string, reason: string, extra: Json = {}): Json {
  return {
    phase,
    reason,
    message: `${phase} (${reason})`,
    namespace: 'team-a',
    claimName: 'modelcache-llama',
    identity: IDENTITY,
    ...extra,
  };
}

const US_EAST = f.inferenceClusterXR('us-east', NFS);
const US_WEST = f.inferenceClusterXR('us-west', NFS);
const EU_WEST = f.inferenceClusterXR('eu-west', NFS);
const EDGE = f.inferenceClusterXR('edge-1');

const cases: { name: string; reason: string; req: CoreRequest }[] = [
  {
    name: 'first-call-three-clusters',
    reason:
      'a new cache composes one small replica per matched cluster, nothing else, and reports each Pending until its replica reports',
    req: f.request(HF, [US_WEST, US_EAST, EDGE]),
  },
  {
    name: 'three-clusters-mixed',
    reason:
      'replica reports aggregate into compact entries, summary, summed progress and conditions: one hydrating, one failed, one ready',
    req: f.request(HF, [US_WEST, US_EAST, EU_WEST], {
      'us-east': observedReplica(
        HF,
        US_EAST,
        replicaStatus('Hydrating', 'Downloading', {
          progress: { bytesDone: 5 * 2 ** 30, bytesTotal: 16 * 2 ** 30 },
        }),
      ),
      'eu-west': observedReplica(HF, EU_WEST, replicaStatus('Failed', 'FetchFailed')),
      'us-west': observedReplica(HF, US_WEST, replicaStatus('Ready', 'Staged')),
    }),
  },
  {
    name: 'refetch-in-flight',
    reason:
      'a new refetch token changes every replica identity; a replica still reporting the old identity is Pending/ReplicaPending',
    req: f.request(
      f.modelCache(f.HF_WEIGHTS, { annotations: { 'modelplane.ai/refetch': '2' } }),
      [US_EAST],
      {
        'us-east': observedReplica(HF, US_EAST, replicaStatus('Ready', 'Staged')),
      },
    ),
  },
  {
    name: 'all-ready',
    reason: 'every matched replica Ready: the cache is Ready and ArtifactReady is True',
    req: f.request(HF, [US_EAST, US_WEST], {
      'us-east': observedReplica(HF, US_EAST, replicaStatus('Ready', 'Staged')),
      'us-west': observedReplica(HF, US_WEST, replicaStatus('Ready', 'Staged')),
    }),
  },
  {
    name: 'existing-pvc',
    reason: 'an ExistingPVC cache names the user claim at the top of its status',
    req: f.request(
      f.modelCache({
        artifact: { kind: 'Weights', source: { huggingFace: { repo: 'org/m' } } },
        storage: { backend: 'ExistingPVC', existingPVC: { claimName: 'shared-weights' } },
      }),
      [US_EAST],
    ),
  },
  {
    name: 'no-clusters',
    reason: 'no matching cluster: ClustersMatched False and the XR is not Ready',
    req: f.request(
      f.modelCache({ ...f.HF_WEIGHTS, clusterSelector: { matchLabels: { region: 'mars' } } }),
      [],
    ),
  },
  {
    name: 'requirements-unresolved',
    reason: 'the first call asks for the clusters and composes nothing',
    req: { composite: HF, observed: {}, required: {}, input: undefined },
  },
];

describe('composeModelCache: whole responses', () => {
  it.each(cases)('$name: $reason', ({ name, req }) => {
    const actual = wire(composeModelCache(req));
    expect(actual).toEqual(golden(`modelcache/${name}`, actual));
  });
});

describe('composeModelCache: replicas are kept through transient inputs', () => {
  const observed = {
    'us-east': observedReplica(HF, US_EAST, replicaStatus('Ready', 'Staged')),
    'us-west': observedReplica(HF, US_WEST, replicaStatus('Hydrating', 'Downloading')),
  };
  const steady = compose(f.request(HF, [US_EAST, US_WEST], observed));
  const withStatus = (req: CoreRequest): CoreRequest => ({
    ...req,
    composite: { ...req.composite, status: steady.status },
  });

  it('unresolved clusters: every replica held as asked for (Crossplane fields left out), status kept', () => {
    const res = compose(withStatus({ composite: HF, observed, required: {}, input: undefined }));
    expect(res.resources).toEqual(steady.resources);
    expect(res.status).toEqual(steady.status);
    expect(res.events).toEqual([]);
    expect(res.ready).toBe(false);
  });

  it('a malformed InferenceCluster keeps its replica exactly as observed and its reported phase', () => {
    const broken = { ...US_EAST, spec: { providerConfigRef: { kind: 'Nope' } } };
    const res = compose(withStatus(f.request(HF, [broken, US_WEST], observed)));
    expect(res.resources).toEqual(steady.resources);
    expect(res.status).toEqual(steady.status);
    expect(res.events).toEqual([]);
  });

  it('a malformed InferenceCluster that never had a replica gets one that will report why', () => {
    const broken = { ...EDGE, spec: {} };
    const res = compose(f.request(HF, [broken]));
    expect(res.resources).toEqual({
      'edge-1': {
        apiVersion: API_VERSION,
        kind: 'ModelCacheReplica',
        metadata: { name: 'llama-edge-1' },
        spec: {
          cacheRef: { name: 'llama' },
          cluster: 'edge-1',
          identity: IDENTITY,
          cacheDigest: DIGEST,
        },
      },
    });
    expect((res.status as { clusters: unknown }).clusters).toEqual([
      { name: 'edge-1', phase: 'Failed', reason: 'InvalidInferenceCluster' },
    ]);
  });

  it('only a cluster that definitively leaves the selection loses its replica, with an event', () => {
    const res = compose(withStatus(f.request(HF, [US_WEST], observed)));
    expect(Object.keys(res.resources)).toEqual(['us-west']);
    expect(res.events).toEqual([
      {
        severity: 'Normal',
        reason: 'ClusterDeselected',
        message:
          'cluster us-east: no longer matched; its ModelCacheReplica, cache volume and Objects are removed',
      },
    ]);
  });
});

describe('composeModelCache: bad input is fatal and names the field', () => {
  const bad: { reason: string; spec: Json; fatal: string }[] = [
    {
      reason: 'two sources set',
      spec: {
        artifact: {
          kind: 'Weights',
          source: { huggingFace: { repo: 'a/b' }, s3: { uri: 's3://bkt/x' } },
        },
        storage: { pvc: { sizeGiB: 1 } },
      },
      fatal:
        'invalid ModelCache: spec.artifact.source: exactly one of huggingFace, s3, http, oci, inline, configMap must be set (found huggingFace, s3)',
    },
    {
      reason: 'Weights from inline text',
      spec: { artifact: { kind: 'Weights', source: { inline: { files: { a: 'b' } } } } },
      fatal:
        'invalid ModelCache: spec.artifact.source.inline: inline and configMap sources are for Tokenizer and Bytes artifacts, not Weights',
    },
    {
      reason: 'remote source without a size',
      spec: { artifact: { kind: 'Weights', source: { huggingFace: { repo: 'a/b' } } } },
      fatal:
        'invalid ModelCache: spec.storage.pvc.sizeGiB: is required for huggingFace sources: the volume is sized before the download starts',
    },
    {
      reason: 'a v0.2 artifact kind',
      spec: {
        artifact: { kind: 'Adapter', source: { huggingFace: { repo: 'a/b' } } },
        storage: { pvc: { sizeGiB: 1 } },
      },
      fatal:
        'invalid ModelCache: spec.artifact.kind: Adapter artifacts arrive in v0.2; v0.1 stages Weights, Tokenizer or Bytes',
    },
    {
      reason: "issue13 #13: an inline path starting with '..' (Kubernetes refuses the volume item)",
      spec: { artifact: { kind: 'Tokenizer', source: { inline: { files: { '..data/x': 'a' } } } } },
      fatal:
        'invalid ModelCache: spec.artifact.source.inline.files...data/x: must not start with ".." (Kubernetes refuses such volume item paths)',
    },
    {
      reason: "issue13 #13: a ConfigMap item key starting with '..'",
      spec: {
        artifact: { kind: 'Bytes', source: { configMap: { name: 'p', items: ['..data'] } } },
      },
      fatal:
        'invalid ModelCache: spec.artifact.source.configMap.items.0: must be a ConfigMap key that is not "." and does not start with ".." (Kubernetes refuses such volume item paths)',
    },
    {
      reason: 'an OCI reference without a registry host',
      spec: {
        artifact: { kind: 'Weights', source: { oci: { ref: 'library/ubuntu:22.04' } } },
        storage: { pvc: { sizeGiB: 1 } },
      },
      fatal:
        'invalid ModelCache: spec.artifact.source.oci.ref: must be registry/repository:tag, registry/repository@sha256:<64 hex digits> or both, e.g. ghcr.io/org/model:v1',
    },
    {
      reason: 'an OCI layout that is not artifact or image',
      spec: {
        artifact: {
          kind: 'Weights',
          source: { oci: { ref: 'ghcr.io/org/model:v1', layout: 'modelkit' } },
        },
        storage: { pvc: { sizeGiB: 1 } },
      },
      fatal: 'invalid ModelCache: spec.artifact.source.oci.layout: must be artifact or image',
    },
    {
      reason: 'a relative mount path',
      spec: { ...f.HF_WEIGHTS, mount: { path: 'mnt/model' } },
      fatal: 'invalid ModelCache: spec.mount.path: must be an absolute path',
    },
  ];
  it.each(bad)('$reason', ({ spec, fatal }) => {
    expect(composeModelCache(f.request(f.modelCache(spec), []))).toEqual({ fatal });
  });
});

describe('composeModelCache: status.source, one line per source', () => {
  const sources: { reason: string; source: Json; line: string }[] = [
    {
      reason: 'an OCI source shows its reference as written (a tag, resolved per cluster)',
      source: { oci: { ref: 'ghcr.io/org/granite:v1', layout: 'image' } },
      line: 'oci://ghcr.io/org/granite:v1',
    },
    {
      reason: 'an OCI source pinned by digest shows the digest',
      source: { oci: { ref: `ghcr.io/org/granite@sha256:${'a'.repeat(64)}` } },
      line: `oci://ghcr.io/org/granite@sha256:${'a'.repeat(64)}`,
    },
    {
      reason: 'a Hugging Face source shows repo and revision',
      source: { huggingFace: { repo: 'a/b', revision: 'v2' } },
      line: 'hf://a/b@v2',
    },
  ];
  it.each(sources)('$reason', ({ source, line }) => {
    const xr = f.modelCache({
      artifact: { kind: 'Weights', source },
      storage: { pvc: { sizeGiB: 1 } },
    });
    const res = compose(f.request(xr, []));
    expect((res.status as { source: unknown }).source).toEqual(line);
  });
});

describe('composeModelCache: requirements', () => {
  it('selects InferenceClusters by the cache selector, identically on every call, and nothing else', () => {
    const xr = f.modelCache({ ...f.HF_WEIGHTS, clusterSelector: { matchLabels: { gpu: 'h100' } } });
    const first = compose({ composite: xr, observed: {}, required: {}, input: undefined });
    const second = compose(
      f.request(xr, [f.inferenceClusterXR('a', { ...NFS, labels: { gpu: 'h100' } })]),
    );
    expect(first.requirements).toEqual({
      [REQUIRE_CLUSTERS]: {
        apiVersion: API_VERSION,
        kind: 'InferenceCluster',
        matchLabels: { gpu: 'h100' },
      },
    });
    expect(second.requirements).toEqual(first.requirements);
  });
});
