import { JOB_UNSYNCED_CALLS_MAX, REASON } from '../../constants.js';
import {
  conditionsAt,
  objectReady,
  objectSyncFailed,
  remoteManifest,
  stringAt,
  type Json,
} from '../../k8s/object.js';
import {
  credentialsObject,
  filesObject,
  jobObject,
  namespaceObject,
  pvcObject,
  reporterObjects,
} from '../manifests.js';
import type { ClusterContext, ClusterResult, ClusterStatus, Progress } from '../model.js';
import {
  ROLE_CREDENTIALS,
  ROLE_FILES,
  ROLE_NAMESPACE,
  ROLE_PVC,
  ROLE_REPORTER_ACCOUNT,
  ROLE_REPORTER_BINDING,
  ROLE_REPORTER_ROLE,
  isJobRole,
  jobRole,
} from '../roles.js';
import { claimPhase, holdRoles, observeJob, oneLine } from './observe.js';

/** A provider's error as a status message may quote it: one line, bounded. */
function providerError(observedObject: Json | undefined): string | undefined {
  const synced = conditionsAt(observedObject, 'status', 'conditions').find(
    (c) => c.type === 'Synced' && c.status === 'False',
  );
  return synced === undefined
    ? undefined
    : oneLine(synced.message ?? synced.reason ?? 'not synced');
}

function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? String(v) : v.toFixed(1)} ${units[i] ?? 'B'}`;
}

/**
 * The PVC backend: a ReadWriteMany claim per cluster, filled once by a prefetch Job.
 * Ready and FetchFailed are latched to the identity (source + refetch token), so a
 * cleaned-up Job neither un-readies the cluster nor starts a second download.
 */
export function composePvc(ctx: ClusterContext): ClusterResult {
  const { cache, cluster, observed, latched, blocker, input } = ctx;
  const ns = cache.namespace;
  const claim = cache.names.claim;
  const job = `${ns}/${cache.names.job}`;
  const volume = { persistentVolumeClaim: { claimName: claim, readOnly: true } };
  const status = (
    phase: ClusterStatus['phase'],
    reason: string,
    message: string,
    extra: {
      progress?: Progress;
      resolvedRevision?: string;
      claimUID?: string;
      jobUnsyncedCalls?: number;
    } = {},
  ): ClusterStatus => ({
    name: cluster.name,
    phase,
    reason,
    message,
    namespace: ns,
    claimName: claim,
    ...extra,
    identity: cache.identity,
  });

  // The class is fixed when the claim is created: keep the observed one so a later change
  // to the InferenceCluster never turns into an update of an immutable field.
  const observedClass = stringAt(
    observed[ROLE_PVC],
    'spec',
    'forProvider',
    'manifest',
    'spec',
    'storageClassName',
  );
  const overrideClass = cache.spec.storage.pvc?.storageClassName;
  const storageClass = observedClass ?? overrideClass ?? cluster.storageClassName;
  const jobKey = jobRole(cache.identity);
  const observedJobRoles = Object.keys(observed).filter(isJobRole);
  const base = (): Record<string, Json> => {
    const out: Record<string, Json> = { [ROLE_NAMESPACE]: namespaceObject(cache, cluster) };
    if (storageClass !== undefined) out[ROLE_PVC] = pvcObject(cache, cluster, storageClass);
    else Object.assign(out, holdRoles(observed, [ROLE_PVC]));
    return out;
  };

  const claimState = claimPhase(observed[ROLE_PVC]);
  const claimUID = stringAt(remoteManifest(observed[ROLE_PVC]), 'metadata', 'uid');
  if (claimState === 'Lost') {
    return {
      resources: base(),
      status: status(
        'Failed',
        REASON.ClaimLost,
        `PersistentVolumeClaim ${ns}/${claim} is Lost: its volume is gone; delete the claim on cluster ${cluster.name} to have it re-created and staged again`,
      ),
      volume,
    };
  }
  // Ready holds only for the claim it was staged into: if the claim's Object is gone, or the
  // claim was re-created (another UID), the new volume is empty and is staged again.
  const sameClaim =
    observed[ROLE_PVC] !== undefined &&
    (latched?.claimUID === undefined || claimUID === undefined || claimUID === latched.claimUID);
  if (latched?.phase === 'Ready' && sameClaim) {
    // A fast Job can complete before the provider reads the created claim back: the UID is
    // recorded when first seen, so a later re-creation of the claim is still noticed.
    const stagedInto = latched.claimUID ?? claimUID;
    return {
      resources: base(),
      status: status('Ready', REASON.Staged, latched.message, {
        ...(latched.resolvedRevision !== undefined
          ? { resolvedRevision: latched.resolvedRevision }
          : {}),
        ...(stagedInto !== undefined ? { claimUID: stagedInto } : {}),
      }),
      volume,
    };
  }
  if (
    latched?.phase === 'Failed' &&
    (latched.reason === REASON.FetchFailed || latched.reason === REASON.JobNotCreated)
  ) {
    // The failed Job stays for its logs while it exists, observed only: if it is removed
    // it is not created again (that would rerun a failed download); a refetch deletes it.
    const resources = base();
    if (remoteManifest(observed[jobKey]) !== undefined) {
      resources[jobKey] = jobObject(cache, cluster, input, ['Observe', 'Delete']);
    }
    return { resources, status: status('Failed', latched.reason, latched.message), volume };
  }
  if (blocker) {
    return {
      resources: holdRoles(observed, [ROLE_NAMESPACE, ROLE_PVC, ...observedJobRoles]),
      status: status('Failed', blocker.reason, blocker.message),
      volume,
    };
  }
  if (observed[ROLE_PVC] === undefined) {
    const fail = (message: string): ClusterResult => ({
      resources: holdRoles(observed, [ROLE_NAMESPACE, ...observedJobRoles]),
      status: status('Failed', REASON.NoRWXStorageClass, message),
      volume,
    });
    if (storageClass === undefined) {
      return fail(
        `InferenceCluster ${cluster.name} has no spec.storage.storageClassName and the cache sets no spec.storage.pvc.storageClassName`,
      );
    }
    if (overrideClass === undefined && cluster.classExists === false) {
      return fail(`StorageClass ${storageClass} does not exist on cluster ${cluster.name}`);
    }
  }

  // The namespace first: every other Object lives in it, and one applied before it exists
  // fails to sync and converges only by the provider's retries. Once anything else has been
  // observed it is kept whatever the namespace's Object reports.
  const namespaceExists =
    remoteManifest(observed[ROLE_NAMESPACE]) !== undefined || objectReady(observed[ROLE_NAMESPACE]);
  if (!namespaceExists && Object.keys(observed).every((role) => role === ROLE_NAMESPACE)) {
    // An unreachable cluster shows here first: say what the provider says.
    const why = providerError(observed[ROLE_NAMESPACE]);
    return {
      resources: { [ROLE_NAMESPACE]: namespaceObject(cache, cluster) },
      status: status(
        'Pending',
        REASON.NamespacePending,
        why === undefined
          ? `waiting for namespace ${ns} to exist on cluster ${cluster.name}`
          : `namespace ${ns} cannot be created on cluster ${cluster.name} yet: ${why}`,
      ),
      volume,
    };
  }

  const resources = base();
  const credentials = credentialsObject(cache, cluster);
  if (credentials) resources[ROLE_CREDENTIALS] = credentials;
  const filesCopy = filesObject(cache, cluster);
  if (filesCopy) resources[ROLE_FILES] = filesCopy;
  const [account, role, binding] = reporterObjects(cache, cluster);
  if (account && role && binding) {
    resources[ROLE_REPORTER_ACCOUNT] = account;
    resources[ROLE_REPORTER_ROLE] = role;
    resources[ROLE_REPORTER_BINDING] = binding;
  }
  resources[jobKey] = jobObject(cache, cluster, input);

  const jobState = observeJob(observed[jobKey]);
  switch (jobState.state) {
    case 'complete': {
      const rev = jobState.resolvedRevision;
      return {
        resources,
        status: status(
          'Ready',
          REASON.Staged,
          `staged ${cache.parts.summary}${rev !== undefined ? ` at ${rev}` : ''}`,
          {
            ...(rev !== undefined ? { resolvedRevision: rev } : {}),
            ...(claimUID !== undefined ? { claimUID } : {}),
          },
        ),
        volume,
      };
    }
    case 'failed':
      return {
        resources,
        status: status(
          'Failed',
          REASON.FetchFailed,
          `prefetch Job ${job} failed: ${jobState.message}; set annotation modelplane.ai/refetch to a new value to retry`,
        ),
        volume,
      };
    case 'running': {
      const p = jobState.progress;
      return {
        resources,
        status: status(
          'Hydrating',
          REASON.Downloading,
          p
            ? `staging ${cache.parts.summary}: ${formatBytes(p.bytesDone)} of ${formatBytes(p.bytesTotal)}`
            : `staging ${cache.parts.summary}`,
          p ? { progress: p } : {},
        ),
        volume,
      };
    }
    case 'absent':
    case 'waiting':
      break;
    default: {
      const unreachable: never = jobState;
      return unreachable;
    }
  }
  // A Job the cluster will not create leaves nothing to wait for: refused as invalid, it is
  // Failed at once; failing to sync for another reason, after a bounded number of reconciles.
  const jobError =
    remoteManifest(observed[jobKey]) === undefined ? providerError(observed[jobKey]) : undefined;
  const unsyncedCalls = jobError !== undefined ? (latched?.jobUnsyncedCalls ?? 0) + 1 : 0;
  if (
    jobError !== undefined &&
    (/\bis invalid\b/.test(jobError) || unsyncedCalls >= JOB_UNSYNCED_CALLS_MAX)
  ) {
    return {
      resources: base(),
      status: status(
        'Failed',
        REASON.JobNotCreated,
        `prefetch Job ${job} could not be created on cluster ${cluster.name}: ${jobError}; set annotation modelplane.ai/refetch to a new value to retry`,
      ),
      volume,
    };
  }
  const pendingExtra = unsyncedCalls > 0 ? { jobUnsyncedCalls: unsyncedCalls } : {};
  if (claimState !== 'Bound') {
    return {
      resources,
      status: status(
        'Pending',
        REASON.PVCPending,
        `PersistentVolumeClaim ${ns}/${claim} (class ${storageClass ?? 'unknown'}) is ${claimState ?? 'not observed yet'}; waiting for it to bind`,
        pendingExtra,
      ),
      volume,
    };
  }
  // A copy provider-kubernetes cannot make (the control-plane object is missing) keeps the
  // Job's pod from starting; say which object to create.
  const creds = cache.parts.credentials;
  const files = cache.parts.files;
  const copies = [
    {
      role: ROLE_CREDENTIALS,
      reason: REASON.WaitingForCredentials,
      what: creds && `Secret ${ns}/${creds.secretName}`,
    },
    {
      role: ROLE_FILES,
      reason: REASON.WaitingForConfigMap,
      what: files?.from === 'configMap' ? `ConfigMap ${ns}/${files.name}` : undefined,
    },
  ];
  const blocked = copies.find((c) => c.what !== undefined && objectSyncFailed(observed[c.role]));
  if (blocked?.what !== undefined) {
    return {
      resources,
      status: status(
        'Pending',
        blocked.reason,
        `${blocked.what} cannot be copied to cluster ${cluster.name} yet; check that it exists`,
        pendingExtra,
      ),
      volume,
    };
  }
  return {
    resources,
    status: status(
      'Pending',
      REASON.JobPending,
      jobError !== undefined
        ? `prefetch Job ${job} is not created on cluster ${cluster.name} yet (${String(unsyncedCalls)}/${String(JOB_UNSYNCED_CALLS_MAX)}): ${jobError}`
        : `prefetch Job ${job} is waiting to start`,
      pendingExtra,
    ),
    volume,
  };
}
