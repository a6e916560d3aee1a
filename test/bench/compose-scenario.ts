// The compose benchmark's scenario: one ModelCache matching N clusters, mid-hydration, with
// every composed Object observed as provider-kubernetes reports it (remote object included).
import { RunFunctionRequest } from '@crossplane-org/function-sdk-typescript';

import type { CoreRequest } from '../../function/core.js';
import { isFatal } from '../../function/core.js';
import type { Json } from '../../function/k8s/object.js';
import { composeModelCache } from '../../function/modelcache/compose.js';
import * as f from '../support/fixtures.js';
import { toRunFunctionRequest } from '../support/requests.js';

/** Bytes the fetch Job has reported on the cluster at this index (clusters are named in order). */
export type Progress = (clusterIndex: number) => number;

const MiB = 2 ** 20;
const GiB = 2 ** 30;
/** What every fetch Job has reported unless a scenario says otherwise. */
const BASE_DONE = 5 * GiB;

export function midHydration(clusters: number, done: Progress = () => BASE_DONE): CoreRequest {
  const ics = Array.from({ length: clusters }, (_, i) =>
    f.inferenceClusterXR(`cluster-${String(i).padStart(4, '0')}`, {
      storageClassName: 'nfs-rwx',
      classExists: true,
    }),
  );
  const first = composeModelCache(f.request(f.modelCache(f.HF_WEIGHTS), ics));
  if (isFatal(first)) throw new Error(first.fatal);
  const observed: Record<string, Json> = {};
  for (const [key, desired] of Object.entries(first.resources)) {
    if (key.endsWith('/pvc')) observed[key] = f.pvcObserved(desired, 'Bound');
    else if (key.includes('/fetch-')) {
      observed[key] = f.jobObserved(desired, {
        state: 'running',
        done: done(Number(/^cluster-(\d+)\//.exec(key)?.[1] ?? '0')),
        total: 16 * GiB,
      });
    } else observed[key] = f.synced(desired);
  }
  const xr = f.modelCache(f.HF_WEIGHTS, {
    status: { ...first.status, conditions: first.conditions },
  });
  return f.request(xr, ics, observed);
}

/**
 * How the requests of a run differ from call to call:
 *   repeat    the same request every call: a poll or a requeue where nothing changed;
 *   progress  each call, the Job of one cluster reports new progress (at most two clusters differ
 *             from the call before): what Crossplane sends while a fleet hydrates;
 *   cold      every cluster's Job differs from the call before: nothing can be reused.
 */
export const SCENARIO_NAMES = ['repeat', 'progress', 'cold'] as const;
export type ScenarioName = (typeof SCENARIO_NAMES)[number];

function encode(n: number, done?: Progress): Buffer {
  return Buffer.from(
    RunFunctionRequest.encode(toRunFunctionRequest(midHydration(n, done))).finish(),
  );
}

/** The RunFunctionRequest bytes a scenario sends in turn (call i sends [i % length]). */
export function scenarioRequests(scenario: ScenarioName, n: number): Buffer[] {
  switch (scenario) {
    case 'repeat':
      return [encode(n)];
    case 'progress':
      // Request j: the cluster at (37 j mod n) has reported j+1 MiB more than the others.
      return Array.from({ length: 8 }, (_, j) =>
        encode(n, (i) => BASE_DONE + (i === (37 * j) % n ? (j + 1) * MiB : 0)),
      );
    case 'cold':
      return [0, 1].map((j) => encode(n, () => BASE_DONE + j * MiB));
    default: {
      const unreachable: never = scenario;
      return unreachable;
    }
  }
}
