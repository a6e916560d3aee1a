// An in-process stand-in for `crossplane composition render` (CLI v2.5 with the core v2.3
// render engine), for the Compositions of this repository and this Function only. It calls
// function/dispatch.ts directly and reproduces what the real composition reconciler does around
// it, closely enough that its documents equal the upstream render's (test/conformance proves it
// on every golden):
//
// - the XR gets XRD defaults (--xrd), a deterministic UID when it has none, the
//   crossplane.io/composite label, its compositionRef, resourceRefs for the observed resources
//   and the Responsive condition before the pipeline runs;
// - each step is called with required resources until its requirements stop changing (at most
//   six calls: test/support/requirements-loop.ts, shared with the fleet simulation), from an
//   in-memory store of the XR, the observed resources and the required resources;
// - composed resources get the XR's namespace, the composition-resource-name annotation, the
//   crossplane.io/composite label, a controller reference and a name derived from the XR's UID
//   (names.ChildName), or keep the observed resource's name; an XR that already carries the
//   label (a ModelCacheReplica, labelled by its parent ModelCache) keeps it, so its composed
//   resources are labelled and named after the parent;
// - the XR comes back as render prints it: name, namespace, resourceRefs and the status the
//   pipeline wrote, with conditions merged as Crossplane merges them (Responsive, the Function's
//   custom conditions, Synced, Ready), every timestamp 2024-01-01T00:00:00Z;
// - events become Results: composition selected, the Function's results prefixed with their
//   step, "Composed resource ... is not yet ready" for every resource not marked ready.
//
// Not emulated: multi-Function pipelines (every step must call function-modelcache), connection
// details, Function credentials and context flags, --include-full-xr, claims.
import { createHash } from 'node:crypto';
import {
  Ready,
  RunFunctionRequest,
  RunFunctionResponse,
  Severity,
  Status,
  type Resource,
  type Resources,
  type ResourceSelector,
} from '@crossplane-org/function-sdk-typescript';
import type { Logger } from 'pino';

import { runWithRequirements } from '../support/requirements-loop.js';

export type Doc = Record<string, unknown>;

/** How one pipeline step is called: the Function's RunFunction, in process. */
export type StepRunner = (
  req: RunFunctionRequest,
  log: Logger,
) => RunFunctionResponse | Promise<RunFunctionResponse>;

export interface RenderInputs {
  xr: Doc;
  composition: Doc;
  /** The XRD whose schema defaults are applied to the XR first (render --xrd). */
  xrd?: Doc | undefined;
  /** Observed composed resources (render -o). */
  observed: Doc[];
  /** Required resources (render -e). */
  required: Doc[];
  /** Function name → runner; every pipeline step's functionRef must be here. */
  functions: Record<string, StepRunner>;
  log: Logger;
}

export type RenderOutput =
  { documents: Doc[]; results: Doc[] } | { fatal: string; step: string; results: Doc[] };

/** The timestamp render writes on every condition. */
export const CONDITION_TIME = '2024-01-01T00:00:00Z';
/** Marks a condition Crossplane set during this reconcile (its timestamp would be "now"). */
const NOW = 'now';
const ANNOTATION_RESOURCE_NAME = 'crossplane.io/composition-resource-name';
const LABEL_COMPOSITE = 'crossplane.io/composite';
const LABEL_CLAIM_NAME = 'crossplane.io/claim-name';
const LABEL_CLAIM_NAMESPACE = 'crossplane.io/claim-namespace';
/** Condition types Crossplane does not let a Function set. */
const SYSTEM_CONDITIONS = new Set(['Ready', 'Synced', 'Healthy', 'UpToDate', 'Responsive']);

// ---------------------------------------------------------------------------------------------
// Small JSON helpers.

function isDoc(v: unknown): v is Doc {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function clone<T>(v: T): T {
  return structuredClone(v);
}

function meta(d: Doc): Doc {
  if (!isDoc(d['metadata'])) d['metadata'] = {};
  return d['metadata'] as Doc;
}

function str(v: unknown): string {
  return typeof v === 'string' ? v : '';
}

function labelsOf(d: Doc): Record<string, string> {
  const l = meta(d)['labels'];
  return isDoc(l) ? (l as Record<string, string>) : {};
}

function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b)) {
    return a.length === b.length && a.every((v, i) => deepEqual(v, b[i]));
  }
  if (isDoc(a) && isDoc(b)) {
    const ka = Object.keys(a);
    return ka.length === Object.keys(b).length && ka.every((k) => k in b && deepEqual(a[k], b[k]));
  }
  return false;
}

/** JSON as a protobuf Struct carries it: undefined dropped, numbers as doubles. */
function wire<T>(v: T): T {
  return JSON.parse(JSON.stringify(v)) as T;
}

// ---------------------------------------------------------------------------------------------
// Names, as Crossplane computes them.

/** uuid.NewSHA1(uuid.Nil, data): an RFC 4122 version 5 UUID in the nil namespace. */
export function uuidV5Nil(data: string): string {
  const h = createHash('sha1')
    .update(Buffer.alloc(16))
    .update(data, 'utf8')
    .digest()
    .subarray(0, 16);
  h[6] = ((h[6] ?? 0) & 0x0f) | 0x50;
  h[8] = ((h[8] ?? 0) & 0x3f) | 0x80;
  const x = h.toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

/** The UID render gives an XR that has none: stable for the same kind, namespace and name. */
export function renderUID(xr: Doc): string {
  const [group, version] = groupVersion(str(xr['apiVersion']));
  const gvk = `${group === '' ? '' : `${group}/`}${version}, Kind=${str(xr['kind'])}`;
  return uuidV5Nil(`${gvk}\u0000${str(meta(xr)['namespace'])}\u0000${str(meta(xr)['name'])}`);
}

function groupVersion(apiVersion: string): [string, string] {
  const i = apiVersion.indexOf('/');
  return i < 0 ? ['', apiVersion] : [apiVersion.slice(0, i), apiVersion.slice(i + 1)];
}

/** names.ChildName: <parent>-<12 hex of sha256(parentUID + childName)>, at most 63 characters. */
export function childName(parentName: string, parentUID: string, child: string): string {
  const suffix = createHash('sha256')
    .update(parentUID + child)
    .digest('hex')
    .slice(0, 12);
  let parent = parentName;
  if (parent !== '' && !parent.endsWith('-')) parent += '-';
  if (parent.length + suffix.length <= 63) return parent + suffix;
  let max = 63 - suffix.length;
  if (max > 0 && !parent.slice(0, max).endsWith('-')) {
    max--;
    return `${parent.slice(0, max)}-${suffix}`;
  }
  return parent.slice(0, max) + suffix;
}

// ---------------------------------------------------------------------------------------------
// XRD defaulting (render --xrd), as Kubernetes' structural defaulting does it.

function versionSchema(xrd: Doc, apiVersion: string): Doc | undefined {
  const spec = isDoc(xrd['spec']) ? xrd['spec'] : {};
  const [, version] = groupVersion(apiVersion);
  const versions = Array.isArray(spec['versions']) ? (spec['versions'] as unknown[]) : [];
  const v = versions.find((x) => isDoc(x) && x['name'] === version);
  if (!isDoc(v) || !isDoc(v['schema'])) return undefined;
  const s = v['schema']['openAPIV3Schema'];
  return isDoc(s) ? s : undefined;
}

export function applyDefaults(value: unknown, schema: Doc): void {
  if (Array.isArray(value)) {
    const items = schema['items'];
    if (isDoc(items)) for (const v of value) applyDefaults(v, items);
    return;
  }
  if (!isDoc(value)) return;
  const props = isDoc(schema['properties']) ? schema['properties'] : {};
  for (const [name, sub] of Object.entries(props)) {
    if (!isDoc(sub)) continue;
    if (!(name in value) && sub['default'] !== undefined) value[name] = clone(sub['default']);
    if (name in value) applyDefaults(value[name], sub);
  }
  const extra = schema['additionalProperties'];
  if (isDoc(extra)) {
    for (const k of Object.keys(value)) if (!(k in props)) applyDefaults(value[k], extra);
  }
}

// ---------------------------------------------------------------------------------------------
// Conditions, merged as crossplane-runtime's ConditionedStatus.SetConditions merges them.

interface Cond {
  type: string;
  status: string;
  lastTransitionTime: string;
  reason: string;
  message?: string;
  observedGeneration?: number;
}

function toCond(v: unknown): Cond | undefined {
  if (!isDoc(v)) return undefined;
  const c: Cond = {
    type: str(v['type']),
    status: str(v['status']),
    lastTransitionTime: str(v['lastTransitionTime']),
    reason: str(v['reason']),
  };
  if (str(v['message']) !== '') c.message = str(v['message']);
  if (typeof v['observedGeneration'] === 'number' && v['observedGeneration'] !== 0) {
    c.observedGeneration = v['observedGeneration'];
  }
  return c;
}

function condEqual(a: Cond, b: Cond): boolean {
  const same =
    a.type === b.type &&
    a.status === b.status &&
    a.reason === b.reason &&
    (a.message ?? '') === (b.message ?? '');
  if (a.observedGeneration === undefined || b.observedGeneration === undefined) return same;
  return same && a.observedGeneration === b.observedGeneration;
}

function setConditions(list: Cond[], ...conds: Cond[]): void {
  for (const c of conds) {
    let exists = false;
    for (let i = 0; i < list.length; i++) {
      const cur = list[i] as Cond;
      if (cur.type !== c.type) continue;
      exists = true;
      if (!condEqual(cur, c)) list[i] = c;
    }
    if (!exists) list.push(c);
  }
}

function conditionsOf(xr: Doc): Cond[] {
  const status = isDoc(xr['status']) ? xr['status'] : {};
  const list = Array.isArray(status['conditions']) ? (status['conditions'] as unknown[]) : [];
  return list.flatMap((c) => {
    const parsed = toCond(c);
    return parsed ? [parsed] : [];
  });
}

function withConditions(status: Doc | undefined, conds: Cond[]): Doc | undefined {
  if (conds.length === 0) return status;
  return { ...(status ?? {}), conditions: conds.map((c) => ({ ...c })) };
}

const CONDITION_STATUS: Record<number, string> = {
  [Status.STATUS_CONDITION_TRUE]: 'True',
  [Status.STATUS_CONDITION_FALSE]: 'False',
};

// ---------------------------------------------------------------------------------------------
// The in-memory store required resources are read from.

function matches(d: Doc, sel: ResourceSelector): boolean {
  const [g, v] = groupVersion(str(d['apiVersion']));
  const [sg, sv] = groupVersion(sel.apiVersion);
  if (g !== sg || str(d['kind']) !== sel.kind) return false;
  if (v !== '' && sv !== '' && v !== sv) return false;
  if (sel.matchName !== undefined) {
    return (
      str(meta(d)['name']) === sel.matchName && str(meta(d)['namespace']) === (sel.namespace ?? '')
    );
  }
  if (
    sel.namespace !== undefined &&
    sel.namespace !== '' &&
    str(meta(d)['namespace']) !== sel.namespace
  ) {
    return false;
  }
  const want = sel.matchLabels?.labels ?? {};
  const have = labelsOf(d);
  return Object.entries(want).every(([k, val]) => have[k] === val);
}

function fetchRequired(store: Doc[], sel: ResourceSelector): Resources {
  const found = store
    .filter((d) => matches(d, sel))
    .sort((a, b) => {
      const ka = `${str(meta(a)['namespace'])}/${str(meta(a)['name'])}`;
      const kb = `${str(meta(b)['namespace'])}/${str(meta(b)['name'])}`;
      return ka < kb ? -1 : ka > kb ? 1 : 0;
    });
  if (sel.matchName !== undefined && found.length === 0) return { items: [] };
  return {
    items: found.map((d) => ({
      resource: wire(d),
      connectionDetails: {},
      ready: Ready.READY_UNSPECIFIED,
    })),
  };
}

function roundTrip(req: RunFunctionRequest): RunFunctionRequest {
  return RunFunctionRequest.decode(RunFunctionRequest.encode(req).finish());
}

function roundTripResponse(rsp: RunFunctionResponse): RunFunctionResponse {
  return RunFunctionResponse.decode(RunFunctionResponse.encode(rsp).finish());
}

/** The requirements loop (test/support/requirements-loop.ts), each message through the wire. */
function runStep(
  run: StepRunner,
  req: RunFunctionRequest,
  store: Doc[],
  log: Logger,
): Promise<RunFunctionResponse> {
  return runWithRequirements(req, {
    call: async (r) => roundTripResponse(await run(roundTrip(r), log)),
    fetch: (_name, selector) => fetchRequired(store, selector),
  });
}

// ---------------------------------------------------------------------------------------------
// The reconcile.

interface Event {
  severity: 'Normal' | 'Warning';
  reason: string;
  message: string;
}

function result(e: Event): Doc {
  return {
    apiVersion: 'render.crossplane.io/v1beta1',
    kind: 'Result',
    severity: e.severity,
    reason: e.reason,
    message: e.message,
  };
}

function stampConditions(d: Doc): Doc {
  const status = d['status'];
  if (!isDoc(status) || !Array.isArray(status['conditions'])) return d;
  return {
    ...d,
    status: {
      ...status,
      conditions: (status['conditions'] as unknown[]).map((c) =>
        isDoc(c) ? { ...c, lastTransitionTime: CONDITION_TIME } : c,
      ),
    },
  };
}

export async function render(inputs: RenderInputs): Promise<RenderOutput> {
  const events: Event[] = [];
  const xr = clone(inputs.xr);
  const apiVersion = str(xr['apiVersion']);
  const kind = str(xr['kind']);
  const name = str(meta(xr)['name']);
  const namespace = str(meta(xr)['namespace']);

  if (inputs.xrd) {
    const schema = versionSchema(inputs.xrd, apiVersion);
    if (!schema)
      throw new Error(`the specified API version '${apiVersion}' does not exist in the XRD`);
    applyDefaults(xr, schema);
  }
  if (str(meta(xr)['uid']) === '') meta(xr)['uid'] = renderUID(xr);
  const uid = str(meta(xr)['uid']);
  meta(xr)['resourceVersion'] = '999';

  // Observed resources the reconciler will find: controlled by this XR (or by nobody) and named.
  const observed: Record<string, Doc> = {};
  for (const o of inputs.observed) {
    const key = str(
      (meta(o)['annotations'] as Record<string, unknown> | undefined)?.[ANNOTATION_RESOURCE_NAME],
    );
    if (key === '')
      throw new Error(
        `observed resource ${str(meta(o)['name'])} has no ${ANNOTATION_RESOURCE_NAME} annotation`,
      );
    if (namespace !== '' && str(meta(o)['namespace']) !== namespace) {
      throw new Error(
        `observed resource ${str(meta(o)['name'])} is not in the same namespace as the XR`,
      );
    }
    observed[key] = o;
  }
  const spec = isDoc(xr['spec']) ? xr['spec'] : (xr['spec'] = {});
  const xp = isDoc(spec['crossplane']) ? spec['crossplane'] : (spec['crossplane'] = {});
  if (inputs.observed.length > 0) {
    xp['resourceRefs'] = inputs.observed.map((o) => ({
      apiVersion: str(o['apiVersion']),
      kind: str(o['kind']),
      name: str(meta(o)['name']),
      ...(namespace === '' && str(meta(o)['namespace']) !== ''
        ? { namespace: str(meta(o)['namespace']) }
        : {}),
    }));
  }

  const statusBefore: unknown = clone(xr['status']);
  const conds = conditionsOf(xr);
  setConditions(conds, {
    type: 'Responsive',
    status: 'True',
    lastTransitionTime: NOW,
    reason: 'WatchCircuitClosed',
  });

  // SelectComposition, then the naming configurator.
  const compName = str(meta(inputs.composition)['name']);
  const compRef = isDoc(xp['compositionRef']) ? str(xp['compositionRef']['name']) : '';
  xp['compositionRef'] = { name: compName };
  if (compRef !== compName) {
    events.push({
      severity: 'Normal',
      reason: 'SelectComposition',
      message: `Successfully selected composition: ${compName}`,
    });
  }
  let configuredUpdate: Doc | undefined;
  if (str(labelsOf(xr)[LABEL_COMPOSITE]) === '') {
    meta(xr)['labels'] = { ...labelsOf(xr), [LABEL_COMPOSITE]: name };
    configuredUpdate = {
      ...clone(xr),
      status: withConditions(isDoc(xr['status']) ? xr['status'] : undefined, conds),
    };
  }
  const composite: Doc = {
    ...xr,
    status: withConditions(isDoc(xr['status']) ? { ...xr['status'] } : undefined, conds),
  };
  if (composite['status'] === undefined) delete composite['status'];

  const store: Doc[] = [composite, ...Object.values(observed), ...inputs.required];

  // The pipeline.
  const compSpec = isDoc(inputs.composition['spec']) ? inputs.composition['spec'] : {};
  const pipeline = Array.isArray(compSpec['pipeline']) ? (compSpec['pipeline'] as unknown[]) : [];
  let desired: RunFunctionRequest['desired'] = { composite: undefined, resources: {} };
  let context: RunFunctionRequest['context'] = {};
  const fnConditions: Cond[] = [];
  const observedState: Record<string, Resource> = {};
  for (const [key, o] of Object.entries(observed)) {
    observedState[key] = {
      resource: wire(o),
      connectionDetails: {},
      ready: Ready.READY_UNSPECIFIED,
    };
  }
  for (const step of pipeline) {
    if (!isDoc(step)) continue;
    const stepName = str(step['step']);
    const fnName = isDoc(step['functionRef']) ? str(step['functionRef']['name']) : '';
    const runner = inputs.functions[fnName];
    if (!runner)
      throw new Error(`pipeline step "${stepName}": no in-process Function named "${fnName}"`);
    const req = RunFunctionRequest.fromPartial({
      meta: { tag: `render-${stepName}` },
      observed: {
        composite: {
          resource: wire(composite),
          connectionDetails: {},
          ready: Ready.READY_UNSPECIFIED,
        },
        resources: observedState,
      },
      desired,
      ...(isDoc(step['input']) ? { input: wire(step['input']) } : {}),
      context,
      requiredResources: {},
    });
    const rsp = await runStep(runner, req, store, inputs.log);
    desired = rsp.desired ?? { composite: undefined, resources: {} };
    context = rsp.context ?? {};
    for (const c of rsp.conditions) {
      const cond: Cond = {
        type: c.type,
        status: CONDITION_STATUS[c.status] ?? 'Unknown',
        lastTransitionTime: NOW,
        reason: c.reason,
      };
      if (c.message !== undefined && c.message !== '') cond.message = c.message;
      fnConditions.push(cond);
    }
    for (const r of rsp.results) {
      const reason = r.reason !== undefined && r.reason !== '' ? r.reason : 'ComposeResources';
      if (r.severity === Severity.SEVERITY_FATAL) {
        return { fatal: r.message, step: stepName, results: events.map(result) };
      }
      const severity = r.severity === Severity.SEVERITY_NORMAL ? 'Normal' : 'Warning';
      const message =
        r.severity === Severity.SEVERITY_NORMAL || r.severity === Severity.SEVERITY_WARNING
          ? `Pipeline step "${stepName}": ${r.message}`
          : `Pipeline step "${stepName}" returned a result of unknown severity (assuming warning): ${r.message}`;
      events.push({ severity, reason, message });
    }
  }

  // Desired composed resources, with the metadata Crossplane derives from the XR.
  const composed: Doc[] = [];
  const unready: string[] = [];
  const composedLabel = str(labelsOf(xr)[LABEL_COMPOSITE]);
  for (const [key, dr] of Object.entries(desired.resources)) {
    const cd = clone(isDoc(dr.resource) ? dr.resource : {});
    const o = observed[key];
    if (o) {
      setOrDelete(meta(cd), 'namespace', str(meta(o)['namespace']));
      setOrDelete(meta(cd), 'name', str(meta(o)['name']));
      setOrDelete(meta(cd), 'generateName', str(meta(o)['generateName']));
    }
    if (
      namespace !== '' &&
      str(meta(cd)['namespace']) !== '' &&
      str(meta(cd)['namespace']) !== namespace
    ) {
      events.push({
        severity: 'Warning',
        reason: 'NamespaceOverridden',
        message: `cannot create composed resource ${JSON.stringify(key)} in namespace ${JSON.stringify(str(meta(cd)['namespace']))}, using XR namespace ${JSON.stringify(namespace)} instead`,
      });
    }
    if (str(meta(cd)['name']) === '' && str(meta(cd)['generateName']) === '') {
      meta(cd)['generateName'] = `${composedLabel}-`;
    }
    if (namespace !== '') meta(cd)['namespace'] = namespace;
    const annotations = meta(cd)['annotations'];
    meta(cd)['annotations'] = {
      ...(isDoc(annotations) ? annotations : {}),
      [ANNOTATION_RESOURCE_NAME]: key,
    };
    const labels: Record<string, string> = { [LABEL_COMPOSITE]: composedLabel };
    const xl = labelsOf(xr);
    if (str(xl[LABEL_CLAIM_NAME]) !== '' && str(xl[LABEL_CLAIM_NAMESPACE]) !== '') {
      labels[LABEL_CLAIM_NAME] = str(xl[LABEL_CLAIM_NAME]);
      labels[LABEL_CLAIM_NAMESPACE] = str(xl[LABEL_CLAIM_NAMESPACE]);
    }
    meta(cd)['labels'] = { ...labelsOf(cd), ...labels };
    const owners = Array.isArray(meta(cd)['ownerReferences'])
      ? (meta(cd)['ownerReferences'] as Doc[])
      : [];
    const other = owners.find((r) => r['controller'] === true && r['uid'] !== uid);
    if (other)
      throw new Error(
        `composed resource ${key} is already controlled by ${str(other['kind'])} ${str(other['name'])}`,
      );
    meta(cd)['ownerReferences'] = [
      ...owners.filter((r) => r['uid'] !== uid),
      { apiVersion, kind, name, uid, controller: true, blockOwnerDeletion: true },
    ];
    if (str(meta(cd)['name']) === '') {
      meta(cd)['name'] = childName(str(meta(cd)['generateName']), uid, key);
    }
    composed.push(cd);
    if (dr.ready !== Ready.READY_TRUE) unready.push(key);
  }
  for (const key of unready) {
    events.push({
      severity: 'Normal',
      reason: 'ComposeResources',
      message: `Composed resource ${JSON.stringify(key)} is not yet ready`,
    });
  }

  // The XR: resourceRefs patched, then the pipeline's status with conditions.
  const refs = composed
    .map((cd) => ({
      apiVersion: str(cd['apiVersion']),
      kind: str(cd['kind']),
      name: str(meta(cd)['name']),
      ...(namespace === '' && str(meta(cd)['namespace']) !== ''
        ? { namespace: str(meta(cd)['namespace']) }
        : {}),
    }))
    .sort((a, b) => {
      const ka = a.apiVersion + a.kind + a.name + (a.namespace ?? '');
      const kb = b.apiVersion + b.kind + b.name + (b.namespace ?? '');
      return ka < kb ? -1 : ka > kb ? 1 : 0;
    });
  const stored: Doc = {
    apiVersion,
    kind,
    metadata: { name, ...(namespace !== '' ? { namespace } : {}) },
    spec: { crossplane: { resourceRefs: refs } },
  };
  const desiredComposite = desired.composite?.resource;
  const desiredStatus =
    isDoc(desiredComposite) && isDoc(desiredComposite['status'])
      ? clone(desiredComposite['status'])
      : undefined;
  const patched = { ...stored, ...(desiredStatus ? { status: desiredStatus } : {}) };
  const patchedStatus = withConditions(
    desiredStatus,
    conds.map((c) => ({ ...c })),
  );
  if (patchedStatus) patched['status'] = patchedStatus;

  const finalConds = conditionsOf(patched);
  for (const c of fnConditions) if (!SYSTEM_CONDITIONS.has(c.type)) setConditions(finalConds, c);
  setConditions(finalConds, {
    type: 'Synced',
    status: 'True',
    lastTransitionTime: NOW,
    reason: 'ReconcileSuccess',
  });
  const ready = desired.composite?.ready;
  const available =
    ready === Ready.READY_TRUE || (ready !== Ready.READY_FALSE && unready.length === 0);
  setConditions(
    finalConds,
    available
      ? { type: 'Ready', status: 'True', lastTransitionTime: NOW, reason: 'Available' }
      : {
          type: 'Ready',
          status: 'False',
          lastTransitionTime: NOW,
          reason: 'Creating',
          ...(ready === Ready.READY_FALSE || unready.length === 0
            ? {}
            : { message: `Unready resources: ${stableNAndSomeMore(unready)}` }),
        },
  );
  const finalStatus = withConditions(
    isDoc(patched['status']) ? patched['status'] : undefined,
    finalConds,
  );

  let outXR: Doc;
  if (!deepEqual(statusBefore, finalStatus)) {
    outXR = { ...stored, ...(finalStatus ? { status: finalStatus } : {}) };
  } else {
    // Nothing changed: render prints the last XR it wrote before the status update it skipped.
    outXR = configuredUpdate ?? patched;
  }

  const documents = [stampConditions(outXR), ...composed.map(stampConditions)].map(wire);
  const docsSorted = [
    documents[0] as Doc,
    ...documents.slice(1).sort((a, b) => {
      const ka = str((meta(a)['annotations'] as Doc)[ANNOTATION_RESOURCE_NAME]);
      const kb = str((meta(b)['annotations'] as Doc)[ANNOTATION_RESOURCE_NAME]);
      return ka < kb ? -1 : ka > kb ? 1 : 0;
    }),
  ];
  return { documents: docsSorted, results: events.map(result) };
}

function setOrDelete(m: Doc, key: string, value: string): void {
  if (value === '') Reflect.deleteProperty(m, key);
  else m[key] = value;
}

/** resource.StableNAndSomeMore(3, names): sorted; "a, b, and c"; "a, b, c, and 2 more". */
function stableNAndSomeMore(names: string[]): string {
  const sorted = [...names].sort();
  const n = 3;
  if (sorted.length > n) return `${sorted.slice(0, n).join(', ')}, and ${sorted.length - n} more`;
  if (sorted.length === n)
    return `${sorted.slice(0, n - 1).join(', ')}, and ${sorted[n - 1] ?? ''}`;
  return sorted.join(', ');
}
