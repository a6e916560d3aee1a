import type { ModelCacheSpec } from '../api/modelcache.js';
import type { Phase } from '../constants.js';
import type { FunctionInput } from '../api/input.js';
import type { Json } from '../k8s/object.js';
import type { Source, SourceParts } from './sources/index.js';

/** A parsed ModelCache with everything derived from it once per call. */
export interface CacheModel {
  name: string;
  namespace: string;
  spec: ModelCacheSpec;
  source: Source;
  parts: SourceParts;
  /** sha256 of the source identity and the refetch token: what Ready is latched to. */
  identity: string;
  /** 16 hex digits of the whole spec and the refetch token: what a steady replica was made from. */
  digest: string;
  /**
   * Names of the remote objects on every workload cluster (the same on each). claim: the one
   * a PVC backend creates; mounted: the one consumers mount (ExistingPVC: the user's own);
   * reporter: ServiceAccount, Role and RoleBinding that let the Job report on itself.
   */
  names: {
    claim: string;
    mounted: string;
    secret: string;
    files: string;
    job: string;
    reporter: string;
  };
}

export type { ClusterView } from '../clusters.js';
import type { ClusterView } from '../clusters.js';

/** Progress of a running prefetch, as the fetch program reports it. */
export interface Progress {
  bytesDone: number;
  bytesTotal: number;
}

/** One entry of status.clusters[]: the contract other compositions read. */
export interface ClusterStatus {
  name: string;
  phase: Phase;
  reason: string;
  message: string;
  namespace: string;
  claimName: string;
  progress?: Progress;
  resolvedRevision?: string;
  identity: string;
  /** The claim the bytes were staged into: a re-created (empty) claim has another UID. */
  claimUID?: string;
  /** Reconciles in a row the Job's Object has failed to sync (bounded by JOB_UNSYNCED_CALLS_MAX). */
  jobUnsyncedCalls?: number;
}

/** Why a cluster cannot be worked on this call, decided before the backend runs. */
export interface Blocker {
  reason: string;
  message: string;
}

export interface ClusterContext {
  cache: CacheModel;
  cluster: ClusterView;
  /** Observed composed Objects of this cluster, keyed by role. */
  observed: Record<string, Json>;
  /** The previous status entry for this cluster when it was for the same identity. */
  latched: ClusterStatus | undefined;
  blocker: Blocker | undefined;
  input: FunctionInput;
}

export interface ClusterResult {
  /** Desired composed resources of this cluster, keyed by role. */
  resources: Record<string, Json>;
  status: ClusterStatus;
  /** The pod volume source consumers mount, read-only. */
  volume: Json;
}

/** A storage backend: one module per spec.storage.backend value. */
export type StorageBackend = (ctx: ClusterContext) => ClusterResult;
