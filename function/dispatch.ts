import {
  Ready,
  Severity,
  Status,
  Target,
  type Condition,
  type Requirements,
  type Resource,
  type Result,
  type RunFunctionRequest,
  type RunFunctionResponse,
} from '@crossplane-org/function-sdk-typescript';
import type { Logger } from 'pino';
import {
  KIND_INFERENCE_CLUSTER,
  KIND_MODEL_CACHE,
  KIND_MODEL_CACHE_REPLICA,
  KIND_MODEL_DEPLOYMENT,
  MOUNT_STEP_INPUT_KIND,
} from './constants.js';
import { NO_CONNECTION_DETAILS } from './codec/request.js';
import { isFatal, type CoreRequest, type CoreResponse, type CoreResult } from './core.js';
import { composeInferenceCluster } from './inferencecluster/compose.js';
import { asJson, objectReady, type Json } from './k8s/object.js';
import { composeModelCache } from './modelcache/compose.js';
import { composeModelCacheReplica } from './modelcachereplica/compose.js';
import { composeModelDeployment } from './modeldeployment/compose.js';
import { composeMountStep } from './mountstep/compose.js';

// The thin layer between protobuf and the pure cores: it reads the request once into
// plain JSON, picks the core by the observed XR's kind, and builds a fresh response.
// It never mutates the request and never uses the SDK's deep-merge helpers.

// A Map, not an object literal: a kind named "constructor" or "__proto__" must find no core.
const CORES: ReadonlyMap<string, (req: CoreRequest) => CoreResult> = new Map([
  [KIND_MODEL_CACHE, composeModelCache],
  [KIND_MODEL_CACHE_REPLICA, composeModelCacheReplica],
  [KIND_INFERENCE_CLUSTER, composeInferenceCluster],
  [KIND_MODEL_DEPLOYMENT, composeModelDeployment],
]);

export function toCoreRequest(req: RunFunctionRequest): CoreRequest {
  // Keyed loops, not Object.entries: a ModelCache on 1000 clusters observes 7000 resources.
  const observed: Record<string, Json> = {};
  const observedResources = req.observed?.resources ?? {};
  for (const key of Object.keys(observedResources)) {
    const body = asJson(observedResources[key]?.resource);
    if (body) observed[key] = body;
  }
  const required: Record<string, Json[] | undefined> = {};
  // Crossplane before v2 answers requirements under extraResources; v2 under requiredResources.
  // eslint-disable-next-line @typescript-eslint/no-deprecated -- read for older Crossplane
  for (const source of [req.extraResources, req.requiredResources]) {
    for (const [key, list] of Object.entries(source)) {
      required[key] = list.items.flatMap((i) => {
        const body = asJson(i.resource);
        return body ? [body] : [];
      });
    }
  }
  const desired: Record<string, Json> = {};
  const desiredResources = req.desired?.resources ?? {};
  for (const key of Object.keys(desiredResources)) {
    const body = asJson(desiredResources[key]?.resource);
    if (body) desired[key] = body;
  }
  return {
    composite: asJson(req.observed?.composite?.resource) ?? {},
    observed,
    required,
    input: req.input,
    desired,
  };
}

function resource(body: Json, ready: Ready = Ready.READY_UNSPECIFIED): Resource {
  return { resource: body, connectionDetails: NO_CONNECTION_DETAILS, ready };
}

const CONDITION_STATUS: Record<string, Status> = {
  True: Status.STATUS_CONDITION_TRUE,
  False: Status.STATUS_CONDITION_FALSE,
  Unknown: Status.STATUS_CONDITION_UNKNOWN,
};

function toRequirements(core: CoreResponse): Requirements {
  const resources: Requirements['resources'] = {};
  for (const [key, sel] of Object.entries(core.requirements)) {
    resources[key] = {
      apiVersion: sel.apiVersion,
      kind: sel.kind,
      ...(sel.matchName !== undefined ? { matchName: sel.matchName } : {}),
      ...(sel.matchLabels !== undefined ? { matchLabels: { labels: sel.matchLabels } } : {}),
      ...(sel.namespace !== undefined ? { namespace: sel.namespace } : {}),
    };
  }
  // eslint-disable-next-line @typescript-eslint/no-deprecated -- the field is required by the type
  return { extraResources: {}, resources, schemas: {} };
}

function fatalResponse(
  req: RunFunctionRequest,
  message: string,
  ttlSeconds: number,
): RunFunctionResponse {
  return {
    meta: { tag: req.meta?.tag ?? '', ttl: { seconds: ttlSeconds, nanos: 0 } },
    desired: req.desired,
    results: [
      {
        severity: Severity.SEVERITY_FATAL,
        message,
        reason: 'InvalidInput',
        target: Target.TARGET_COMPOSITE,
      },
    ],
    conditions: [],
    requirements: undefined,
    context: req.context,
    output: undefined,
  };
}

/** TTL of a fatal response: short, so a fixed input is picked up soon. */
const FATAL_TTL_SECONDS = 60;

export function runFunction(req: RunFunctionRequest, log: Logger): RunFunctionResponse {
  const core = toCoreRequest(req);
  const kind = typeof core.composite['kind'] === 'string' ? core.composite['kind'] : '';
  // The mount step serves any XR kind: the input, not the XR, selects it.
  const compose =
    asJson(core.input)?.['kind'] === MOUNT_STEP_INPUT_KIND ? composeMountStep : CORES.get(kind);
  if (compose === undefined) {
    return fatalResponse(
      req,
      `function-modelcache composes ${[...CORES.keys()].join(', ')}, not "${kind}": check the Composition's compositeTypeRef, or give the step an input of kind ${MOUNT_STEP_INPUT_KIND} to mount caches into another XR's workloads`,
      FATAL_TTL_SECONDS,
    );
  }
  const result = compose(core);
  if (isFatal(result)) {
    log.info({ kind, fatal: result.fatal }, 'rejected input');
    return fatalResponse(req, result.fatal, FATAL_TTL_SECONDS);
  }
  return toResponse(req, core.composite, result);
}

export function toResponse(
  req: RunFunctionRequest,
  composite: Json,
  core: CoreResponse,
): RunFunctionResponse {
  // Desired state from earlier pipeline steps passes through; ours is added beside it.
  const withheld = new Set(core.withheld ?? []);
  const resources: Record<string, Resource> = {};
  const earlier = req.desired?.resources ?? {};
  for (const key of Object.keys(earlier)) {
    const res = earlier[key];
    if (res !== undefined && !withheld.has(key)) resources[key] = res;
  }
  const observed = req.observed?.resources ?? {};
  for (const key of Object.keys(core.resources)) {
    const body = core.resources[key] ?? {};
    // Ready when provider-kubernetes says so (its readiness policy, e.g. our CEL queries);
    // otherwise keep an earlier step's verdict on a resource this step only amended.
    // Crossplane counts an unspecified composed resource as not ready and says so each call.
    const observedReady = objectReady(observed[key]?.resource);
    resources[key] = resource(body, observedReady ? Ready.READY_TRUE : resources[key]?.ready);
  }
  const prior = asJson(req.desired?.composite?.resource) ?? {};
  const priorStatus = asJson(prior['status']) ?? {};
  const compositeBody: Json = {
    ...prior,
    apiVersion: composite['apiVersion'],
    kind: composite['kind'],
    status: { ...priorStatus, ...core.status },
  };
  const results: Result[] = core.events.map((e) => ({
    severity: e.severity === 'Warning' ? Severity.SEVERITY_WARNING : Severity.SEVERITY_NORMAL,
    message: e.message,
    reason: e.reason,
    target: Target.TARGET_COMPOSITE,
  }));
  const conditions: Condition[] = core.conditions.map((c) => ({
    type: c.type,
    status: CONDITION_STATUS[c.status] ?? Status.STATUS_CONDITION_UNKNOWN,
    reason: c.reason,
    message: c.message,
    target: Target.TARGET_COMPOSITE,
  }));
  return {
    meta: { tag: req.meta?.tag ?? '', ttl: { seconds: core.ttlSeconds, nanos: 0 } },
    desired: {
      composite: {
        resource: compositeBody,
        connectionDetails: req.desired?.composite?.connectionDetails ?? {},
        ready:
          core.ready === undefined
            ? (req.desired?.composite?.ready ?? Ready.READY_UNSPECIFIED)
            : core.ready
              ? Ready.READY_TRUE
              : Ready.READY_FALSE,
      },
      resources,
    },
    results,
    conditions,
    requirements: toRequirements(core),
    context: req.context,
    output: undefined,
  };
}
