import type { ModelCacheSpec } from '../api/modelcache.js';
import { FETCH_FILES_MOUNT } from '../constants.js';
import { canonicalJson, dnsLabel, sha256Hex } from '../k8s/names.js';
import type { Json } from '../k8s/object.js';
import type { CacheModel } from './model.js';
import { sourceOf, sourceParts } from './sources/index.js';

/** Bumped when what goes into the identity changes, so every cache re-stages once. */
const IDENTITY_VERSION = 1;

/**
 * Everything derived from a cache's spec and metadata. The ModelCache core computes it to
 * write each replica's identity; each replica computes it again from its parent, and works
 * only when both agree.
 */
export function cacheModel(
  name: string,
  namespace: string,
  spec: ModelCacheSpec,
  refetch: string | undefined,
): CacheModel {
  const source = sourceOf(spec.artifact.source);
  const base = `modelcache-${name}`;
  const remoteSecretName = dnsLabel(base, '-credentials');
  const parts = sourceParts(source, { namespace, remoteSecretName, filesDir: FETCH_FILES_MOUNT });
  const identity = sha256Hex(
    canonicalJson({
      v: IDENTITY_VERSION,
      kind: spec.artifact.kind,
      source: { type: source.type, ...(parts.identity as Json) },
      refetch: refetch ?? '',
    }),
  );
  const claim = dnsLabel(base);
  return {
    name,
    namespace,
    spec,
    source,
    parts,
    identity,
    digest: sha256Hex(canonicalJson({ spec, refetch: refetch ?? '' })).slice(0, 16),
    names: {
      claim,
      // ExistingPVC mounts someone else's claim; every other backend creates its own.
      mounted:
        spec.storage.backend === 'ExistingPVC'
          ? (spec.storage.existingPVC?.claimName ?? claim)
          : claim,
      secret: remoteSecretName,
      files: dnsLabel(base, '-files'),
      job: dnsLabel(base, `-fetch-${identity.slice(0, 8)}`),
      reporter: dnsLabel(base, '-fetch'),
    },
  };
}

/** The ModelCacheReplica a cache composes for one cluster: `<cache>-<cluster>`, a DNS label. */
export function replicaName(cache: string, cluster: string): string {
  return dnsLabel(`${cache}-${cluster}`);
}
