// What dispatch adds to the cores' answers: each composed resource's readiness, and a FATAL
// result for a kind no core composes. That the codec carries the same answers byte for byte is
// codec/sdk-equivalence.test.ts.
import { Ready, RunFunctionRequest } from '@crossplane-org/function-sdk-typescript';
import { describe, expect, it } from 'vitest';
import { composeModelCacheReplica } from './modelcachereplica/compose.js';
import { runFunction } from './dispatch.js';
import type { Json } from './k8s/object.js';
import * as f from '../test/support/fixtures.js';
import { toRunFunctionRequest } from '../test/support/requests.js';
import { silentLogger } from '../test/support/codecs.js';

const silent = silentLogger;

describe('composed resource readiness', () => {
  it('is READY_TRUE exactly where provider-kubernetes reports the Object Ready', () => {
    const req = f.replicaRequest(
      f.modelCache(f.HF_WEIGHTS),
      f.inferenceClusterXR('a', { storageClassName: 'nfs', classExists: true }),
    );
    const created = composeModelCacheReplica(req);
    if ('fatal' in created) throw new Error(created.fatal);
    const ns = created.resources['namespace'] as Json;
    // Everything but the namespace is composed once the namespace exists.
    req.observed = { namespace: f.synced(ns) };
    const first = composeModelCacheReplica(req);
    if ('fatal' in first) throw new Error(first.fatal);
    const pvc = first.resources['pvc'] as Json;
    req.observed = {
      pvc: f.observedObject(pvc, { status: { phase: 'Bound' } }, [
        { type: 'Ready', status: 'True', reason: 'Available' },
      ]),
      namespace: f.observedObject(ns, undefined, [
        { type: 'Ready', status: 'False', reason: 'Creating' },
      ]),
    };
    const rsp = runFunction(RunFunctionRequest.fromPartial(toRunFunctionRequest(req)), silent);
    const ready = Object.fromEntries(
      Object.entries(rsp.desired?.resources ?? {}).map(([k, r]) => [k, r.ready]),
    );
    expect(ready).toEqual({
      namespace: Ready.READY_UNSPECIFIED,
      pvc: Ready.READY_TRUE,
      credentials: Ready.READY_UNSPECIFIED,
      'reporter-serviceaccount': Ready.READY_UNSPECIFIED,
      'reporter-role': Ready.READY_UNSPECIFIED,
      'reporter-rolebinding': Ready.READY_UNSPECIFIED,
      [Object.keys(first.resources).find((k) => k.startsWith('fetch-')) ?? '']:
        Ready.READY_UNSPECIFIED,
    });
  });

  it('a replica is READY_TRUE on its parent once Crossplane reports the replica Ready', () => {
    const cache = f.modelCache(f.HF_WEIGHTS);
    const a = f.inferenceClusterXR('a', { storageClassName: 'nfs', classExists: true });
    const b = f.inferenceClusterXR('b', { storageClassName: 'nfs', classExists: true });
    const req = f.request(cache, [a, b], {
      a: {
        ...f.modelCacheReplica(cache, a),
        status: { conditions: [{ type: 'Ready', status: 'True', reason: 'Available' }] },
      },
      b: f.modelCacheReplica(cache, b),
    });
    const rsp = runFunction(RunFunctionRequest.fromPartial(toRunFunctionRequest(req)), silent);
    const ready = Object.fromEntries(
      Object.entries(rsp.desired?.resources ?? {}).map(([k, r]) => [k, r.ready]),
    );
    expect(ready).toEqual({ a: Ready.READY_TRUE, b: Ready.READY_UNSPECIFIED });
  });
});

describe('kinds the Function does not compose', () => {
  it.each(['constructor', '__proto__', 'toString', 'hasOwnProperty', 'Unknown'])(
    'issue13 #9: an XR of kind %s gets the clear FATAL, not an internal error',
    (kind) => {
      const req = RunFunctionRequest.fromPartial({
        meta: { tag: 't' },
        observed: {
          composite: {
            resource: { apiVersion: 'x.io/v1', kind, metadata: { name: 'x', namespace: 'y' } },
          },
        },
      });
      const rsp = runFunction(req, silent);
      expect(rsp.results.map((r) => [r.severity, r.reason, r.message])).toEqual([
        [
          1,
          'InvalidInput',
          `function-modelcache composes ModelCache, ModelCacheReplica, InferenceCluster, ModelDeployment, not "${kind}": check the Composition's compositeTypeRef, or give the step an input of kind MountCaches to mount caches into another XR's workloads`,
        ],
      ]);
    },
  );
});
