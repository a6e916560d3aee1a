import { describe, expect, it } from 'vitest';
import type { CoreRequest } from '../core.js';
import type { Json } from '../k8s/object.js';
import * as f from '../../test/support/fixtures.js';
import { golden, wire } from '../../test/support/golden.js';
import { composeInferenceCluster, STORAGE_CLASS_KEY } from './compose.js';

function req(xr: Json, observed?: Json): CoreRequest {
  return {
    composite: xr,
    observed: observed ? { [STORAGE_CLASS_KEY]: observed } : {},
    required: {},
    input: undefined,
  };
}

/** The StorageClass Object this core composes, as provider-kubernetes reports it back. */
function classObject(exists: boolean): Json {
  const first = composeInferenceCluster(
    req(f.inferenceClusterXR('c', { storageClassName: 'nfs-rwx' })),
  );
  if ('fatal' in first) throw new Error(first.fatal);
  const desired = first.resources[STORAGE_CLASS_KEY] as Json;
  return exists
    ? f.observedObject(desired, {
        apiVersion: 'storage.k8s.io/v1',
        kind: 'StorageClass',
        metadata: { name: 'nfs-rwx' },
        provisioner: 'nfs.csi.k8s.io',
      })
    : f.syncFailed(desired, 'observe failed: external resource does not exist');
}

const withStatus = (xr: Json, status: Json): Json => ({ ...xr, status });

const cases: { name: string; reason: string; req: CoreRequest }[] = [
  {
    name: 'no-class',
    reason: 'no class configured: nothing to observe, StorageClassFound False/NotSet, still Ready',
    req: req(f.inferenceClusterXR('edge-1')),
  },
  {
    name: 'class-not-observed-yet',
    reason:
      'a class is named: an observe-only Object in the configured namespace, status Unknown, not Ready',
    req: req(f.inferenceClusterXR('us-east', { storageClassName: 'nfs-rwx' })),
  },
  {
    name: 'class-found',
    reason: 'the class exists on the cluster: classExists true with its provisioner, Ready',
    req: req(f.inferenceClusterXR('us-east', { storageClassName: 'nfs-rwx' }), classObject(true)),
  },
  {
    name: 'class-missing',
    reason: 'the class is absent: classExists false, a Warning event, not Ready',
    req: req(f.inferenceClusterXR('us-east', { storageClassName: 'nfs-rwx' }), classObject(false)),
  },
  {
    name: 'namespaced-provider-config',
    reason: 'a namespaced ProviderConfig is reported as the effective provider config',
    req: req(
      f.inferenceClusterXR('on-prem', {
        storageClassName: 'cephfs',
        providerConfig: { kind: 'ProviderConfig', name: 'on-prem' },
      }),
    ),
  },
];

describe('composeInferenceCluster: whole responses', () => {
  it.each(cases)('$name: $reason', ({ name, req: r }) => {
    const actual = wire(composeInferenceCluster(r));
    expect(actual).toEqual(golden(`inferencecluster/${name}`, actual));
  });
});

describe('composeInferenceCluster: events only on transitions', () => {
  it('emits nothing when the condition reason is unchanged', () => {
    const xr = withStatus(f.inferenceClusterXR('us-east', { storageClassName: 'nfs-rwx' }), {
      conditions: [{ type: 'StorageClassFound', status: 'True', reason: 'Found' }],
    });
    const res = composeInferenceCluster(req(xr, classObject(true)));
    expect('fatal' in res ? res : res.events).toEqual([]);
  });

  it('rejects a spec without a provider config, naming the field', () => {
    const xr = { ...f.inferenceClusterXR('x'), spec: { storage: { storageClassName: 'a' } } };
    expect(composeInferenceCluster(req(xr))).toEqual({
      fatal:
        'invalid InferenceCluster: spec.providerConfigRef: Invalid input: expected object, received undefined',
    });
  });
});
