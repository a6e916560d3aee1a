// Every name, label, annotation, condition type and reason the Function and its
// consumers agree on. Changing one is an API change: other compositions read them.

import { API_GROUP } from './contract/job.js';

// Names the fetch program spells too are defined in the contract (function/contract/job.ts):
// API_GROUP, the annotations the fetch program writes, ENV_FETCH_PLAN, AWS_SECRET_KEYS, and the
// exit status the Job's podFailurePolicy keys on with the container it names.
export {
  API_GROUP,
  ANNOTATION_BYTES_DONE,
  ANNOTATION_BYTES_TOTAL,
  ANNOTATION_FETCH_ERROR,
  ANNOTATION_RESOLVED_REVISION,
  AWS_SECRET_KEYS,
  ENV_FETCH_PLAN,
  EXIT_PERMANENT,
  FETCH_CONTAINER,
} from './contract/job.js';

/** The one served version in v0.1. */
export const API_VERSION = `${API_GROUP}/v1alpha1`;

/** Namespaced XR owned by ML teams: one artifact staged on many clusters. */
export const KIND_MODEL_CACHE = 'ModelCache';
/** Cluster-scoped XR owned by the platform team: one workload cluster. */
export const KIND_INFERENCE_CLUSTER = 'InferenceCluster';
/**
 * Namespaced XR a ModelCache composes per matched cluster: it owns that cluster's Objects and
 * latch, so each Function response and each XR's watch events stay one cluster's size.
 */
export const KIND_MODEL_CACHE_REPLICA = 'ModelCacheReplica';

/** provider-kubernetes' namespaced managed resource; namespaced XRs may only compose namespaced kinds. */
export const OBJECT_API_VERSION = 'kubernetes.m.crossplane.io/v1alpha1';
export const OBJECT_KIND = 'Object';
/** Provider config kinds an InferenceCluster may name; ProviderConfig is looked up in the Object's namespace. */
export const PROVIDER_CONFIG_KINDS = ['ClusterProviderConfig', 'ProviderConfig'] as const;
export type ProviderConfigKind = (typeof PROVIDER_CONFIG_KINDS)[number];

/** apiVersion/kind of the Function's own input in a Composition step. */
export const INPUT_API_VERSION = 'modelcache.fn.modelplane.ai/v1alpha1';
export const INPUT_KIND = 'Input';

/** Changing its value asks for a re-stage of the same source (a new version is a new ModelCache). */
export const ANNOTATION_REFETCH = `${API_GROUP}/refetch`;
/** On remote objects: which cache and cluster they serve, so operators can find them with kubectl. */
export const ANNOTATION_CACHE = `${API_GROUP}/cache`;
export const ANNOTATION_CLUSTER = `${API_GROUP}/cluster`;
/** Identity (source + refetch token) a remote object was composed for. */
export const ANNOTATION_IDENTITY = `${API_GROUP}/identity`;

/** Standard label so remote objects are attributable to this product. */
export const LABEL_MANAGED_BY = 'app.kubernetes.io/managed-by';
export const MANAGED_BY = 'modelcache';
/** Standard component label distinguishing the prefetch Job and its pods from workloads. */
export const LABEL_COMPONENT = 'app.kubernetes.io/component';

/** Required-resource key under which Crossplane returns the matching InferenceClusters. */
export const REQUIRE_CLUSTERS = 'inference-clusters';
/** Required-resource keys for provider configs: existence is checked so a typo fails fast. */
export const REQUIRE_CLUSTER_PROVIDER_CONFIGS = 'cluster-provider-configs';
export const REQUIRE_PROVIDER_CONFIGS = 'provider-configs';
/** Required-resource keys of a ModelCacheReplica: its parent cache, its cluster, that cluster's provider config. */
export const REQUIRE_PARENT_CACHE = 'cache';
export const REQUIRE_CLUSTER = 'inference-cluster';
export const REQUIRE_PROVIDER_CONFIG = 'provider-config';

/** Per-cluster lifecycle of a cache, in the order a healthy cluster walks it. */
export const PHASES = ['Pending', 'Hydrating', 'Ready', 'Failed'] as const;
export type Phase = (typeof PHASES)[number];

/** Why a cluster is in its phase; CamelCase as Kubernetes reasons are. */
export const REASON = {
  /** The cache's namespace is being created on the cluster; nothing else is applied before it exists. */
  NamespacePending: 'NamespacePending',
  /** The claim exists (or is being created) but is not Bound yet. */
  PVCPending: 'PVCPending',
  /** The claim is Bound; the prefetch Job has not started moving bytes yet. */
  JobPending: 'JobPending',
  /** The credential Secret could not be copied to the workload cluster yet. */
  WaitingForCredentials: 'WaitingForCredentials',
  /** The files ConfigMap could not be copied to the workload cluster yet. */
  WaitingForConfigMap: 'WaitingForConfigMap',
  /** The prefetch Job is running. */
  Downloading: 'Downloading',
  /** The artifact is staged and verified; the completion marker is written. */
  Staged: 'Staged',
  /** An existing claim (ExistingPVC backend) is Bound and used as is. */
  ClaimBound: 'ClaimBound',
  /** An existing claim (ExistingPVC backend) was not found or is not Bound. */
  ClaimNotBound: 'ClaimNotBound',
  /** Neither the InferenceCluster nor the cache names a ReadWriteMany class, or it does not exist. */
  NoRWXStorageClass: 'NoRWXStorageClass',
  /** The InferenceCluster's provider config does not exist on the control plane. */
  ProviderConfigNotFound: 'ProviderConfigNotFound',
  /** The InferenceCluster does not parse; its own status says why. */
  InvalidInferenceCluster: 'InvalidInferenceCluster',
  /** The claim lost its volume (phase Lost): the staged bytes are gone. */
  ClaimLost: 'ClaimLost',
  /** The prefetch Job failed for good; a new refetch token retries. */
  FetchFailed: 'FetchFailed',
  /**
   * The workload cluster refused to create the prefetch Job (it is invalid there, or was not
   * created after JOB_UNSYNCED_CALLS_MAX reconciles); latched like FetchFailed.
   */
  JobNotCreated: 'JobNotCreated',
  /** What the Function needs to decide was not observed this call; the last known state is kept. */
  Unknown: 'Unknown',
  /** The cluster's ModelCacheReplica has not reported for the cache's current identity yet. */
  ReplicaPending: 'ReplicaPending',
} as const;
export type Reason = (typeof REASON)[keyof typeof REASON];

/** Custom XR condition types; Crossplane owns Ready and Synced and drops them from function output. */
export const CONDITION_CLUSTERS_MATCHED = 'ClustersMatched';
export const CONDITION_ARTIFACT_READY = 'ArtifactReady';
export const CONDITION_STORAGE_CLASS_FOUND = 'StorageClassFound';
/**
 * On a ModelCacheReplica: whether its parent cache, InferenceCluster and provider config were
 * all observed and valid this call. False means the replica holds everything as it was.
 */
export const CONDITION_INPUTS_OBSERVED = 'InputsObserved';
/** Condition reasons for InputsObserved. */
export const INPUTS_REASON = {
  /** Parent, InferenceCluster and provider config were read and parse. */
  Observed: 'Observed',
  /** Crossplane has not fetched a required resource yet this reconcile. */
  Resolving: 'Resolving',
  /** The parent ModelCache is absent (being deleted) or its spec does not parse. */
  CacheUnavailable: 'CacheUnavailable',
  /** The replica's identity differs from the one its parent computes: an update is in flight. */
  IdentityMismatch: 'IdentityMismatch',
  /** The InferenceCluster is absent or does not parse; its own status says why. */
  InvalidInferenceCluster: 'InvalidInferenceCluster',
  /** Ready and nothing changed since every input was last read: none is read (status.steady). */
  Steady: 'Steady',
} as const;

/** Condition reasons for ClustersMatched. */
export const REASON_MATCHED = 'Matched';
export const REASON_NO_CLUSTERS = 'NoClustersMatched';
export const REASON_WAITING_FOR_CLUSTERS = 'WaitingForClusters';
/** Condition reasons for ArtifactReady beyond the per-cluster ones. */
export const REASON_ALL_STAGED = 'AllClustersStaged';
export const REASON_STAGING = 'Staging';
export const REASON_SOME_FAILED = 'SomeClustersFailed';
/** Condition reasons for StorageClassFound on an InferenceCluster. */
export const REASON_CLASS_FOUND = 'Found';
export const REASON_CLASS_NOT_FOUND = 'NotFound';
export const REASON_CLASS_NOT_SET = 'NotSet';
export const REASON_CLASS_UNKNOWN = 'NotObservedYet';

/**
 * Reconciles in a row a prefetch Job's Object may fail to sync before the cluster is Failed: at
 * the default TTL about ten minutes, long past a provider restart or a brief outage.
 */
export const JOB_UNSYNCED_CALLS_MAX = 10;
/** How much of a provider's error a status message quotes. */
export const PROVIDER_ERROR_MAX = 400;

/** How often Crossplane re-runs the Function without other triggers: required resources are not watched. */
export const DEFAULT_TTL_SECONDS = 60;
/** Where the prefetch Job mounts the volume it writes. */
export const FETCH_VOLUME_MOUNT = '/cache';
/** Where inline and ConfigMap files are mounted into the prefetch Job. */
export const FETCH_FILES_MOUNT = '/var/run/modelcache/files';
/** Environment variable carrying an HTTP bearer token into the prefetch Job. */
export const ENV_HTTP_TOKEN = 'MODELCACHE_HTTP_TOKEN';
/** Environment variable carrying an OCI source's docker config (JSON) into the prefetch Job. */
export const ENV_OCI_DOCKER_CONFIG = 'MODELCACHE_OCI_DOCKER_CONFIG';
/** The key of a kubernetes.io/dockerconfigjson Secret that holds the docker config. */
export const OCI_DOCKER_CONFIG_KEY = '.dockerconfigjson';
/** Environment variable the Hugging Face clients read their token from. */
export const ENV_HF_TOKEN = 'HF_TOKEN';
/** uid/gid the project's image runs as (Crossplane runs function pods as 2000 too). */
export const RUN_AS_ID = 2000;

/** Namespaced XR: an inference engine placed where every cache it references is Ready. */
export const KIND_MODEL_DEPLOYMENT = 'ModelDeployment';
/** Required-resource key prefix for each referenced ModelCache (one requirement per cache). */
export const REQUIRE_CACHE_PREFIX = 'cache-';
/** Deployment conditions: are the referenced caches usable, and was anything placed. */
export const CONDITION_CACHES_READY = 'CachesReady';
export const CONDITION_SCHEDULED = 'Scheduled';
/** Why a deployment (or one of its clusters) is waiting; carried through from cache status. */
export const DEPLOY_REASON = {
  /** A referenced ModelCache does not exist in the namespace. */
  CacheNotFound: 'CacheNotFound',
  /** Two referenced caches would mount at the same path. */
  MountPathConflict: 'MountPathConflict',
  /** A reference declares a kind the cache does not hold, or a gang has no Weights cache. */
  CacheKindMismatch: 'CacheKindMismatch',
  /** A cache is Pending or Hydrating on a cluster (or has no status yet). */
  WaitingForCache: 'WaitingForCache',
  /** A cache cannot stage on a cluster: it has no ReadWriteMany class. */
  NoRWXStorageClass: 'NoRWXStorageClass',
  /** A cache failed on a cluster for another reason. */
  CacheFailed: 'CacheFailed',
  /** A cache's clusterSelector does not match a cluster the deployment selects. */
  NotMatchedByCache: 'NotMatchedByCache',
  /** Every cache is Ready everywhere the deployment is placed. */
  Ready: 'Ready',
  /** Nothing could be placed. */
  NoEligibleClusters: 'NoEligibleClusters',
  /** Replicas were placed (per-cluster: this cluster runs replicas). */
  Placed: 'Placed',
  /** A running workload kept while a cache re-stages or reports briefly nothing. */
  Held: 'Held',
  /** Eligible, but every replica already went to a cluster earlier in name order. */
  NoReplicasLeft: 'NoReplicasLeft',
  /** The selected InferenceCluster does not parse: nothing new is placed there (a running workload is held). */
  InvalidInferenceCluster: 'InvalidInferenceCluster',
} as const;

/** CachesReady reasons only the mount step writes (it also uses the deployment's). */
export const MOUNT_REASON = {
  /** Nothing says which InferenceCluster a workload runs on. */
  WorkloadClusterUnknown: 'WorkloadClusterUnknown',
  /** The workload is in another namespace than the cache's claim: the claim cannot be mounted. */
  WorkloadNamespaceMismatch: 'WorkloadNamespaceMismatch',
} as const;

/** Input kind that turns the Function into a mount step for other authors' pipelines. */
export const MOUNT_STEP_INPUT_KIND = 'MountCaches';
