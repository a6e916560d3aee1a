import { REASON } from '../../constants.js';
import { objectSyncFailed, providerObject } from '../../k8s/object.js';
import type { ClusterContext, ClusterResult, ClusterStatus } from '../model.js';
import { ROLE_PVC } from '../roles.js';
import { claimPhase } from './observe.js';

/**
 * The ExistingPVC backend: mount a claim someone else populated. The claim is only
 * observed (never created, changed or deleted) and there is no prefetch Job.
 */
export function composeExistingPvc(ctx: ClusterContext): ClusterResult {
  const { cache, cluster, observed, blocker } = ctx;
  const claim = cache.spec.storage.existingPVC?.claimName ?? cache.names.claim;
  const volume = { persistentVolumeClaim: { claimName: claim, readOnly: true } };
  const status = (
    phase: ClusterStatus['phase'],
    reason: string,
    message: string,
  ): ClusterStatus => ({
    name: cluster.name,
    phase,
    reason,
    message,
    namespace: cache.namespace,
    claimName: claim,
    identity: cache.identity,
  });
  if (blocker)
    return { resources: {}, status: status('Failed', blocker.reason, blocker.message), volume };
  const resources = {
    [ROLE_PVC]: providerObject({
      providerConfigRef: cluster.providerConfigRef,
      managementPolicies: ['Observe'],
      readinessCel: 'object.status.phase == "Bound"',
      // Seen when the claim binds, not at the provider's next re-observe (~30 s on).
      watch: true,
      manifest: {
        apiVersion: 'v1',
        kind: 'PersistentVolumeClaim',
        metadata: { name: claim, namespace: cache.namespace },
      },
    }),
  };
  const phase = claimPhase(observed[ROLE_PVC]);
  if (phase === 'Bound') {
    return {
      resources,
      status: status(
        'Ready',
        REASON.ClaimBound,
        `existing claim ${cache.namespace}/${claim} is Bound`,
      ),
      volume,
    };
  }
  const why = objectSyncFailed(observed[ROLE_PVC])
    ? 'was not found'
    : `is ${phase ?? 'not observed yet'}`;
  return {
    resources,
    status: status(
      'Pending',
      REASON.ClaimNotBound,
      `existing claim ${cache.namespace}/${claim} ${why}`,
    ),
    volume,
  };
}
