import { Ready, RunFunctionRequest } from '@crossplane-org/function-sdk-typescript';
import { describe, expect, it } from 'vitest';
import { composeModelCache } from './modelcache/compose.js';
import { runFunction } from './dispatch.js';
import type { Json } from './k8s/object.js';
import * as f from '../test/support/fixtures.js';
import { toRunFunctionRequest } from '../test/support/requests.js';
import { silentLogger } from '../test/support/codecs.js';

const silent = silentLogger;

describe('composed resource readiness', () => {
  it('is READY_TRUE exactly where provider-kubernetes reports the Object Ready', () => {
    const req = f.request(f.modelCache(f.HF_WEIGHTS), [
      f.inferenceClusterXR('a', { storageClassName: 'nfs', classExists: true }),
    ]);
    const first = composeModelCache(req);
    if ('fatal' in first) throw new Error(first.fatal);
    const pvc = first.resources['a/pvc'] as Json;
    const ns = first.resources['a/namespace'] as Json;
    req.observed = {
      'a/pvc': f.observedObject(pvc, { status: { phase: 'Bound' } }, [
        { type: 'Ready', status: 'True', reason: 'Available' },
      ]),
      'a/namespace': f.observedObject(ns, undefined, [
        { type: 'Ready', status: 'False', reason: 'Creating' },
      ]),
    };
    const rsp = runFunction(RunFunctionRequest.fromPartial(toRunFunctionRequest(req)), silent);
    const ready = Object.fromEntries(
      Object.entries(rsp.desired?.resources ?? {}).map(([k, r]) => [k, r.ready]),
    );
    expect(ready).toEqual({
      'a/namespace': Ready.READY_UNSPECIFIED,
      'a/pvc': Ready.READY_TRUE,
      'a/credentials': Ready.READY_UNSPECIFIED,
      'a/reporter-serviceaccount': Ready.READY_UNSPECIFIED,
      'a/reporter-role': Ready.READY_UNSPECIFIED,
      'a/reporter-rolebinding': Ready.READY_UNSPECIFIED,
      [Object.keys(first.resources).find((k) => k.startsWith('a/fetch-')) ?? '']:
        Ready.READY_UNSPECIFIED,
    });
  });
});
