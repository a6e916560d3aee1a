// The benchmarks' scenario: one ModelCache matching N clusters, mid-hydration. Two kinds of
// call reconcile it (DESIGN.md §3.4): the ModelCache call, which observes the cache's N
// ModelCacheReplicas with their status, and one replica call per cluster, which observes that
// cluster's Objects and reads its parent, its InferenceCluster and its provider config.
//
// Every object is as Crossplane hands it over: built by the Function's own cores, the way the
// cores' tests build theirs (test/support/fixtures.ts), then given what the API server stores
// with it (stored.ts: owner, finalizer, managedFields, Crossplane's spec.crossplane and
// conditions). Only the required resources the Function asked for are sent.
import { RunFunctionRequest } from '@crossplane-org/function-sdk-typescript';

import type { CoreRequest, CoreResponse, CoreResult } from '../../function/core.js';
import { isFatal } from '../../function/core.js';
import type { Json } from '../../function/k8s/object.js';
import { composeModelCache } from '../../function/modelcache/compose.js';
import { composeModelCacheReplica } from '../../function/modelcachereplica/compose.js';
import * as f from '../support/fixtures.js';
import { toRunFunctionRequest } from '../support/requests.js';
import { crossplaneConditions, crossplaneSpec, stored, uidOf, type Owner } from './stored.js';

/** Bytes the fetch Job has reported on the cluster at this index (clusters are named in order). */
export type Progress = (clusterIndex: number) => number;

const MiB = 2 ** 20;
const GiB = 2 ** 30;
/** What every fetch Job has reported unless a scenario says otherwise. */
const BASE_DONE = 5 * GiB;
const TOTAL = 16 * GiB;
const NFS = { storageClassName: 'nfs-rwx', classExists: true };
const PROVIDER = { manager: 'provider-kubernetes', operation: 'Update' } as const;
const COMPOSITE = { manager: 'apiextensions.crossplane.io/composite', operation: 'Apply' } as const;

export function clusterName(i: number): string {
  return `cluster-${String(i).padStart(4, '0')}`;
}

function ok(res: CoreResult): CoreResponse {
  if (isFatal(res)) throw new Error(res.fatal);
  return res;
}

/** Only what the Function asked for: Crossplane fetches the requirements, nothing else. */
function requiredOnly(req: CoreRequest, asked: CoreResponse): CoreRequest {
  const required: CoreRequest['required'] = {};
  for (const key of Object.keys(asked.requirements)) {
    if (req.required[key] !== undefined) required[key] = req.required[key];
  }
  return { ...req, required };
}

const ownerOf = (xr: Json): Owner => {
  const meta = xr['metadata'] as Json;
  return {
    apiVersion: String(xr['apiVersion']),
    kind: String(xr['kind']),
    name: String(meta['name']),
    uid: String(meta['uid']),
  };
};

/** Crossplane names a composed resource the Function did not name: the XR's name and a suffix. */
function named(obj: Json, xrName: string, key: string): Json {
  const meta = (obj['metadata'] ?? {}) as Json;
  if (meta['name'] !== undefined) return obj;
  const suffix = uidOf(key)
    .replace(/[^a-z]/g, '')
    .slice(0, 5)
    .padEnd(5, 'x');
  return { ...obj, metadata: { ...meta, name: `${xrName}-${suffix}` } };
}

/** One cluster's replica call, mid-hydration, and what it answered (its status and Objects). */
export interface ReplicaCall {
  request: CoreRequest;
  response: CoreResponse;
}

/**
 * The replica for `cluster` of `parent` (the ModelCache as stored, its status included),
 * observing its Objects with the PVC Bound and the Job running at `done` bytes.
 */
export function replicaCall(parent: Json, cluster: Json, done: number): ReplicaCall {
  const first = f.replicaRequest(parent, cluster);
  const clusterKey = String((first.composite['spec'] as Json)['cluster']);
  const store = (status: Json | undefined, composed: Json[]): Json =>
    stored(
      { ...first.composite, ...(status !== undefined ? { status } : {}) },
      {
        namespace: f.NS,
        owner: ownerOf(parent),
        resourceName: clusterKey,
        crossplane: crossplaneSpec('modelcachereplica', composed),
        ...(status !== undefined ? { statusManager: COMPOSITE } : {}),
      },
    );
  const fresh = store(undefined, []);
  const name = String((fresh['metadata'] as Json)['name']);
  const owner = ownerOf(fresh);
  const asked = ok(composeModelCacheReplica({ ...first, composite: fresh }));
  const req = requiredOnly({ ...first, composite: fresh }, asked);
  const observe = (key: string, body: Json): Json => {
    const obs = key.startsWith('fetch-')
      ? f.jobObserved(body, { state: 'running', done, total: TOTAL })
      : key === 'pvc'
        ? f.pvcObserved(body, 'Bound', uidOf(`${name}/pvc`))
        : f.synced(body);
    return stored(named({ ...obs, metadata: {} }, name, `${name}/${key}`), {
      namespace: f.NS,
      owner,
      resourceName: key,
      statusManager: PROVIDER,
    });
  };
  // Observe whatever was desired and call again, until nothing new is desired: some Objects are
  // composed only once others exist (the namespace first), as over Crossplane's reconciles.
  const observed: Record<string, Json> = {};
  let desired = asked.resources;
  for (let round = 0; round < 5; round++) {
    const added = Object.keys(desired).filter((key) => observed[key] === undefined);
    if (added.length === 0) break;
    for (const key of added) observed[key] = observe(key, desired[key] ?? {});
    desired = ok(composeModelCacheReplica({ ...req, observed })).resources;
  }
  // The replica as stored once the call before wrote its status, Crossplane's fields with it.
  const before = ok(composeModelCacheReplica({ ...req, observed }));
  const composite = store(
    { ...before.status, conditions: [...before.conditions, ...crossplaneConditions(false)] },
    Object.values(observed),
  );
  const request = { ...req, composite, observed };
  return { request, response: ok(composeModelCacheReplica(request)) };
}

/**
 * The replica for `cluster` once it is steady: its Job completed and removed, a reconcile that
 * read every input found nothing to change, so Crossplane's call carries no required resource
 * (the parent's status, which grows with N, is not in it).
 */
export function steadyReplicaCall(parent: Json, cluster: Json): ReplicaCall {
  const mid = replicaCall(parent, cluster, BASE_DONE);
  let observed: Record<string, Json> = {};
  for (const [key, o] of Object.entries(mid.request.observed)) {
    observed[key] = key.startsWith('fetch-')
      ? {
          ...o,
          ...f.jobObserved(mid.response.resources[key] ?? {}, {
            state: 'complete',
            revision: 'abc',
          }),
          metadata: o['metadata'],
        }
      : o;
  }
  let req: CoreRequest = mid.request;
  for (let round = 0; round < 6; round++) {
    req = { ...req, observed };
    const res = ok(composeModelCacheReplica(req));
    const composite = {
      ...req.composite,
      status: { ...res.status, conditions: [...res.conditions, ...crossplaneConditions(false)] },
    };
    // Crossplane deletes what is no longer desired; everything left stays as observed.
    observed = Object.fromEntries(Object.entries(observed).filter(([k]) => k in res.resources));
    if (Object.keys(res.requirements).length === 0 && round > 0) {
      const request = { ...req, composite: req.composite, required: {} };
      return { request, response: ok(composeModelCacheReplica(request)) };
    }
    req = { ...req, composite };
  }
  throw new Error('the replica did not become steady within 6 reconciles');
}

/** One ModelCache on N clusters mid-hydration, with what its replicas would send and report. */
export interface CacheScenario {
  n: number;
  clusters: Json[];
  /** The ModelCache call with every replica reporting `done(i)` bytes. */
  cacheRequest(done?: Progress): CoreRequest;
  /** The ModelCache as stored (etcd), status and spec.crossplane.resourceRefs included. */
  cacheStored: Json;
  /** Replica call for cluster i, with its Job at `done` bytes. */
  replica(i: number, done?: number): ReplicaCall;
  /** Replica call for cluster i once it is steady (staged, nothing left to change). */
  steadyReplica(i: number): ReplicaCall;
}

export function cacheScenario(n: number): CacheScenario {
  // InferenceClusters are cluster-scoped XRs whose status our Function writes.
  const clusters = Array.from({ length: n }, (_, i) =>
    stored(f.inferenceClusterXR(clusterName(i), NFS), { statusManager: COMPOSITE }),
  );
  const bare = stored(f.modelCache(f.HF_WEIGHTS), { namespace: f.NS });
  const req = f.request(bare, clusters);
  const first = ok(composeModelCache(req));
  const base = requiredOnly(req, first);
  const owner = ownerOf(bare);
  // One replica's report, through the replica core, stands for all (progress set per cluster).
  const sampleCall = replicaCall(bare, clusters[0] ?? {}, BASE_DONE);
  const sample = sampleCall.response;
  const replicaStatus = (done: number): Json => ({
    ...sample.status,
    progress: { bytesDone: done, bytesTotal: TOTAL },
    conditions: [...sample.conditions, ...crossplaneConditions(false)],
  });
  // Names differ per replica, lengths do not: the sample's resourceRefs stand for every one's.
  const replicaSpecCrossplane = crossplaneSpec(
    'modelcachereplica',
    Object.values(sampleCall.request.observed),
  );
  const observed = (done: Progress): Record<string, Json> => {
    const out: Record<string, Json> = {};
    Object.entries(first.resources).forEach(([key, desired], i) => {
      out[key] = stored(
        { ...desired, status: replicaStatus(done(i)) },
        {
          namespace: f.NS,
          owner,
          resourceName: key,
          crossplane: replicaSpecCrossplane,
          statusManager: COMPOSITE,
        },
      );
    });
    return out;
  };
  const replicas = Object.values(first.resources);
  const storeCache = (status: Json): Json =>
    stored(
      { ...f.modelCache(f.HF_WEIGHTS), status },
      {
        namespace: f.NS,
        crossplane: crossplaneSpec('modelcache', replicas),
        statusManager: COMPOSITE,
      },
    );
  // The status the cache wrote on the call before, with every replica reporting.
  const steady = ok(composeModelCache({ ...base, observed: observed(() => BASE_DONE) }));
  const cacheStored = storeCache({
    ...steady.status,
    conditions: [...steady.conditions, ...crossplaneConditions(false)],
  });
  return {
    n,
    clusters,
    cacheStored,
    cacheRequest: (done = () => BASE_DONE) => ({
      ...base,
      composite: cacheStored,
      observed: observed(done),
    }),
    replica: (i, done = BASE_DONE) => replicaCall(cacheStored, clusters[i] ?? {}, done),
    steadyReplica: (i) => steadyReplicaCall(cacheStored, clusters[i] ?? {}),
  };
}

/** The ModelCache call at N clusters mid-hydration (codec tests and bench:load use it too). */
export function midHydration(clusters: number, done?: Progress): CoreRequest {
  return cacheScenario(clusters).cacheRequest(done);
}

/**
 * How the requests of a run differ from call to call:
 *   repeat    the same request every call: a poll or a requeue where nothing changed;
 *   progress  each call, one Job reports new progress (for a ModelCache call: one replica's
 *             status differs from the call before);
 *   cold      every call differs: for a ModelCache call every replica's progress, for a replica
 *             call another cluster's replica (as Crossplane reconciles the N replicas in turn).
 */
export const SCENARIO_NAMES = ['repeat', 'progress', 'cold'] as const;
export type ScenarioName = (typeof SCENARIO_NAMES)[number];

export function encodeRequest(core: CoreRequest): Buffer {
  return Buffer.from(RunFunctionRequest.encode(toRunFunctionRequest(core)).finish());
}

/** The ModelCache call's request bytes a scenario sends in turn (call i sends [i % length]). */
export function cacheRequests(s: CacheScenario, scenario: ScenarioName): Buffer[] {
  switch (scenario) {
    case 'repeat':
      return [encodeRequest(s.cacheRequest())];
    case 'progress':
      // Request j: the cluster at (37 j mod n) has reported j+1 MiB more than the others.
      return Array.from({ length: 8 }, (_, j) =>
        encodeRequest(
          s.cacheRequest((i) => BASE_DONE + (i === (37 * j) % s.n ? (j + 1) * MiB : 0)),
        ),
      );
    case 'cold':
      return [0, 1].map((j) => encodeRequest(s.cacheRequest(() => BASE_DONE + j * MiB)));
    default: {
      const unreachable: never = scenario;
      return unreachable;
    }
  }
}

/** A replica call's request bytes a scenario sends in turn. */
export function replicaRequests(s: CacheScenario, scenario: ScenarioName): Buffer[] {
  switch (scenario) {
    case 'repeat':
      return [encodeRequest(s.replica(0).request)];
    case 'progress':
      return Array.from({ length: 8 }, (_, j) =>
        encodeRequest(s.replica(0, BASE_DONE + (j + 1) * MiB).request),
      );
    case 'cold':
      return Array.from({ length: Math.min(8, s.n) }, (_, j) =>
        encodeRequest(s.replica((37 * j) % s.n).request),
      );
    default: {
      const unreachable: never = scenario;
      return unreachable;
    }
  }
}

/** A steady replica call's request bytes: the same cluster again, or another cluster each call. */
export function steadyRequests(s: CacheScenario, scenario: ScenarioName): Buffer[] {
  switch (scenario) {
    case 'repeat':
      return [encodeRequest(s.steadyReplica(0).request)];
    case 'progress':
      throw new Error('a steady replica reports no progress: no progress scenario for it');
    case 'cold':
      return Array.from({ length: Math.min(8, s.n) }, (_, j) =>
        encodeRequest(s.steadyReplica((37 * j) % s.n).request),
      );
    default: {
      const unreachable: never = scenario;
      return unreachable;
    }
  }
}

/** The old entry point: the ModelCache call's requests for a scenario at N clusters. */
export function scenarioRequests(scenario: ScenarioName, n: number): Buffer[] {
  return cacheRequests(cacheScenario(n), scenario);
}
