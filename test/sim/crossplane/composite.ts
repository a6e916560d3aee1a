// Crossplane's composite resource (XR) controller, as of crossplane/crossplane v2.3.4:
//   internal/controller/apiextensions/composite/reconciler.go          (Reconcile)
//   internal/controller/apiextensions/composite/composition_functions.go (FunctionComposer.Compose)
//   internal/xfn/required_resources.go                                  (FetchingFunctionRunner)
//   internal/controller/apiextensions/definition/reconciler.go          (realtime watches, rate limit)
//   internal/circuit                                                    (watch circuit breaker)
// Each rule below names the upstream behaviour it follows. One controller runs per XR kind;
// an XR that composes another XR (a ModelCache its ModelCacheReplicas) needs nothing special:
// the composed XR is applied like any composed resource, and its own kind's controller
// reconciles it, with its own Function calls, requirements and status.
import { createHash } from 'node:crypto';

import {
  Ready,
  RunFunctionRequest,
  Severity,
  Status,
  type Requirements,
  type Resource,
  type Resources,
  type ResourceSelector,
  type RunFunctionResponse,
} from '@crossplane-org/function-sdk-typescript';

import type { VirtualClock } from '../core/clock.js';
import { canonical, runWithRequirements } from '../../support/requirements-loop.js';
import { CircuitBreaker, type BreakerOptions } from './circuit.js';
import type { EventLog } from '../core/events.js';
import {
  clone,
  conditions,
  deepEqual,
  isObj,
  setCondition,
  str,
  type Condition,
  type Json,
} from '../core/json.js';
import { Controller, type Result } from '../core/queue.js';
import {
  groupOf,
  isApiError,
  isNamespaced,
  keyOf,
  refOf,
  type KObject,
  type Manifest,
  type Ref,
  type Store,
} from '../core/store.js';
/** How the XR controller calls a Function (FunctionRunner over gRPC, or a fake in unit tests). */
export interface PipelineRunner {
  run(name: string, req: RunFunctionRequest): Promise<RunFunctionResponse>;
}

/** One step of a Composition's function pipeline (read from compositions/*.yaml). */
export interface PipelineStep {
  step: string;
  functionRef: { name: string };
  input?: Json;
}

export interface CompositionDef {
  name: string;
  apiVersion: string;
  kind: string;
  pipeline: PipelineStep[];
}

const FINALIZER = 'composite.apiextensions.crossplane.io';
const LABEL_COMPOSITE = 'crossplane.io/composite';
const ANNOTATION_RESOURCE_NAME = 'crossplane.io/composition-resource-name';
const FIELD_OWNER_XR = 'apiextensions.crossplane.io/composite';
/** xpv2.IsSystemConditionType + apiextensions TypeResponsive (apis/apiextensions/v1/conditions.go). */
const SYSTEM_CONDITIONS = new Set(['Ready', 'Synced', 'Healthy', 'UpToDate', 'Responsive']);

/** ComposedFieldOwnerName: one SSA field manager per XR (composition_functions.go). */
function composedFieldOwner(xr: KObject): string {
  const gk = `${xr.kind}.${xr.apiVersion.split('/')[0] ?? ''}`;
  const h = createHash('sha256')
    .update(xr.metadata.name + gk)
    .digest('hex');
  return `apiextensions.crossplane.io/composed/${h}`;
}

interface Composed {
  name: string;
  ready: boolean;
  synced: boolean;
}

interface ComposeResult {
  composed: Composed[];
  ready: boolean | undefined;
  events: { type: 'Normal' | 'Warning'; reason: string; message: string }[];
  conditions: Condition[];
  ttlMs: number;
}

class ComposeError extends Error {
  constructor(
    message: string,
    readonly partial: Pick<ComposeResult, 'events' | 'conditions'>,
  ) {
    super(message);
  }
}

/** Knobs scenarios use to inject control-plane faults (none by default). */
export interface ControlPlaneFaults {
  /** Fail this many required-resource fetches of this kind (an API server hiccup). */
  failFetches: Map<string, number>;
}

export interface CompositeOptions {
  /** --enable-realtime-compositions (on by default since Crossplane v1.17 beta). */
  realtime: boolean;
  /** --poll-interval when realtime is off. */
  pollIntervalMs: number;
  faults: ControlPlaneFaults;
  /** The watch circuit breaker's settings (--circuit-breaker-*). */
  breaker?: BreakerOptions;
}

export class CompositeController {
  readonly queue: Controller;
  /** Function calls per XR key (for hot-loop checks). */
  readonly calls = new Map<string, number>();
  /** Observers of each completed reconcile (the simulator's invariant checks). */
  readonly afterReconcile: ((xr: KObject) => void)[] = [];
  /** The controller's watch circuit breaker (one per XR kind, state per XR). */
  readonly breaker: CircuitBreaker;

  constructor(
    private readonly clock: VirtualClock,
    private readonly store: Store,
    private readonly runner: PipelineRunner,
    private readonly composition: CompositionDef,
    private readonly events: EventLog,
    private readonly opts: CompositeOptions,
  ) {
    this.breaker = new CircuitBreaker(clock, opts.breaker);
    // The XR reconciler's rate limiter is capped at 30 s (definition/reconciler.go).
    this.queue = new Controller(clock, `xr/${composition.kind}`, (k) => this.reconcile(k), {
      baseMs: 1_000,
      maxMs: 30_000,
    });
    store.watch((ev) => {
      const o = ev.obj;
      const self =
        o.kind === composition.kind && groupOf(o.apiVersion) === groupOf(composition.apiVersion);
      if (self) this.index(keyOf(refOf(o)), ev.type === 'DELETED' ? undefined : o);
      if (!self && !opts.realtime) return;
      // controller-runtime's EnqueueRequestsFromMapFunc maps an update's old AND new object
      // (pkg/handler/enqueue_mapped.go), so the breaker's map function records an update twice;
      // creates and deletes once. Requests are then deduplicated.
      const seen = ev.type === 'MODIFIED' && ev.old ? [ev.old, o] : [o];
      const admitted = new Set<string>();
      for (const x of seen) {
        const deleting = x.metadata.deletionTimestamp !== undefined;
        const source = `${x.kind}/${x.metadata.name}${x.metadata.namespace !== undefined ? ` (${x.metadata.namespace})` : ''}`;
        // Watch on the XR kind itself (SelfMapFunc, through NewSelfDeleteResetMapFunc and the
        // breaker's NewMapFunc).
        if (self) {
          const key = keyOf(refOf(x));
          if (deleting) this.breaker.reset(key);
          if (this.breaker.admit(key, source, deleting)) admitted.add(key);
        }
        // Realtime compositions: a composed resource's events enqueue every XR whose
        // resourceRefs name it (CompositeResourcesMapFunc over the resourceRefs index). A
        // composed XR is watched by its own kind's controller above and by its parent's here.
        if (!opts.realtime) continue;
        for (const key of this.byRef.get(keyOf(refOf(x))) ?? []) {
          if (this.breaker.admit(key, source, deleting)) admitted.add(key);
        }
      }
      for (const key of admitted) this.queue.enqueue(key);
    });
  }

  /** Composed resource key -> keys of the XRs whose resourceRefs name it. */
  private readonly byRef = new Map<string, Set<string>>();
  private readonly refsOf = new Map<string, string[]>();

  /** IndexCompositeResourcesRefs, kept from the XRs' own watch events. */
  private index(xrKey: string, xr: KObject | undefined): void {
    for (const k of this.refsOf.get(xrKey) ?? []) this.byRef.get(k)?.delete(xrKey);
    const keys: string[] = [];
    for (const r of xr ? arrOf(xr, 'spec', 'crossplane', 'resourceRefs') : []) {
      if (!isObj(r) || typeof r['name'] !== 'string') continue;
      const ns =
        xr?.metadata.namespace ?? (typeof r['namespace'] === 'string' ? r['namespace'] : undefined);
      keys.push(
        keyOf({
          apiVersion: String(r['apiVersion']),
          kind: String(r['kind']),
          name: r['name'],
          namespace: ns,
        }),
      );
    }
    this.refsOf.set(xrKey, keys);
    for (const k of keys) {
      let set = this.byRef.get(k);
      if (!set) this.byRef.set(k, (set = new Set()));
      set.add(xrKey);
    }
  }

  private ref(key: string): Ref {
    const [, kind, namespace, name] = key.split('/');
    return {
      apiVersion: this.composition.apiVersion,
      kind: kind ?? '',
      name: name ?? '',
      ...(namespace !== undefined && namespace !== '' ? { namespace } : {}),
    };
  }

  private record(xr: KObject, type: 'Normal' | 'Warning', reason: string, message: string): void {
    const ns = xr.metadata.namespace;
    this.events.record(
      'control-plane',
      `${xr.kind}/${ns !== undefined ? `${ns}/` : ''}${xr.metadata.name}`,
      type,
      reason,
      message,
    );
  }

  async reconcile(key: string): Promise<Result> {
    const ref = this.ref(key);
    let xr = this.store.get(ref);
    if (!xr) return {};
    // Deletion: functions do not run; the finalizer goes and Kubernetes' garbage collector
    // deletes the composed resources through their owner references (reconciler.go).
    // A composed XR deleted in foreground stays (marked Deleting) until the collector has
    // removed what it composes.
    if (xr.metadata.deletionTimestamp !== undefined) {
      const fins = (xr.metadata.finalizers ?? []).filter((f) => f !== FINALIZER);
      if (fins.length !== (xr.metadata.finalizers ?? []).length) {
        xr.metadata.finalizers = fins;
        this.store.update(xr, 'crossplane');
      }
      const left = this.store.get(ref);
      if (left) {
        let conds = conditions(left, 'status', 'conditions');
        conds = setCondition(
          conds,
          { type: 'Ready', status: 'False', reason: 'Deleting' },
          this.clock.iso(),
        );
        conds = setCondition(
          conds,
          { type: 'Synced', status: 'True', reason: 'ReconcileSuccess' },
          this.clock.iso(),
        );
        left['status'] = { ...(isObj(left['status']) ? left['status'] : {}), conditions: conds };
        this.store.updateStatus(left, 'crossplane');
      }
      return {};
    }
    // The breaker's state, reported on every reconcile (reconciler.go, WatchCircuitOpen).
    const circuit = this.breaker.state(key);
    const responsive: Condition = circuit.isOpen
      ? {
          type: 'Responsive',
          status: 'False',
          reason: 'WatchCircuitOpen',
          message: `Too many watch events from ${circuit.triggeredBy}. Allowing events periodically.`,
        }
      : { type: 'Responsive', status: 'True', reason: 'WatchCircuitClosed' };
    // AddFinalizer, the name-prefix label and the Composition reference, before composing.
    const labels = xr.metadata.labels ?? {};
    const spec = isObj(xr['spec']) ? xr['spec'] : {};
    const cpSpec = isObj(spec['crossplane']) ? spec['crossplane'] : {};
    if (
      !(xr.metadata.finalizers ?? []).includes(FINALIZER) ||
      labels[LABEL_COMPOSITE] === undefined ||
      !isObj(cpSpec['compositionRef'])
    ) {
      xr.metadata.finalizers = [
        ...(xr.metadata.finalizers ?? []).filter((f) => f !== FINALIZER),
        FINALIZER,
      ];
      xr.metadata.labels = {
        ...labels,
        [LABEL_COMPOSITE]: labels[LABEL_COMPOSITE] ?? xr.metadata.name,
      };
      // SelectComposition: an XR naming none gets its XRD's defaultCompositionRef (the
      // simulator runs that one Composition per kind).
      const selected = !isObj(cpSpec['compositionRef']);
      xr['spec'] = {
        ...spec,
        crossplane: {
          ...cpSpec,
          compositionRef: isObj(cpSpec['compositionRef'])
            ? cpSpec['compositionRef']
            : { name: this.composition.name },
        },
      };
      xr = this.store.update(xr, 'crossplane');
      if (selected) {
        this.record(
          xr,
          'Normal',
          'SelectComposition',
          `Successfully selected composition: ${this.composition.name}`,
        );
      }
    }
    const chosen = str(xr, 'spec', 'crossplane', 'compositionRef', 'name');
    if (chosen !== this.composition.name) {
      const msg = `cannot fetch composition revision: no CompositionRevision of Composition "${chosen ?? ''}" (the simulator serves only ${this.composition.name} for ${this.composition.kind})`;
      this.record(xr, 'Warning', 'ComposeResources', msg);
      return { error: msg };
    }
    // APIRevisionFetcher.Fetch: the latest revision of the Composition, written to the XR in
    // an update of its own when it changes (automatic update policy).
    const revision = this.revisionName();
    if (str(xr, 'spec', 'crossplane', 'compositionRevisionRef', 'name') !== revision) {
      const cur = isObj(xr['spec']) ? xr['spec'] : {};
      const cp = isObj(cur['crossplane']) ? cur['crossplane'] : {};
      xr['spec'] = { ...cur, crossplane: { ...cp, compositionRevisionRef: { name: revision } } };
      xr = this.store.update(xr, 'crossplane');
    }
    const statusBefore = clone(xr['status']);
    let res: ComposeResult;
    try {
      res = await this.compose(xr);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      const partial = err instanceof ComposeError ? err.partial : { events: [], conditions: [] };
      const now = this.store.get(ref);
      if (!now) return {};
      const msg = `cannot compose resources: ${message}`;
      this.record(now, 'Warning', 'ComposeResources', msg);
      for (const e of partial.events) this.record(now, e.type, e.reason, e.message);
      let conds = setCondition(
        conditions(now, 'status', 'conditions'),
        responsive,
        this.clock.iso(),
      );
      const seen = new Set<string>();
      for (const c of partial.conditions) {
        if (SYSTEM_CONDITIONS.has(c.type)) continue;
        seen.add(c.type);
        conds = setCondition(conds, c, this.clock.iso());
      }
      // Custom conditions the fatal error kept us from hearing about become Unknown.
      for (const c of conds) {
        if (SYSTEM_CONDITIONS.has(c.type) || seen.has(c.type)) continue;
        conds = setCondition(
          conds,
          {
            type: c.type,
            status: 'Unknown',
            reason: 'FatalError',
            message:
              'A fatal error occurred before the status of this condition could be determined.',
          },
          this.clock.iso(),
        );
      }
      conds = setCondition(
        conds,
        { type: 'Synced', status: 'False', reason: 'ReconcileError', message: msg },
        this.clock.iso(),
      );
      now['status'] = { ...(isObj(now['status']) ? now['status'] : {}), conditions: conds };
      this.store.updateStatus(now, 'crossplane');
      return { error: msg };
    }
    const now = this.store.get(ref);
    if (!now) return {};
    for (const e of res.events) this.record(now, e.type, e.reason, e.message);
    let conds = setCondition(conditions(now, 'status', 'conditions'), responsive, this.clock.iso());
    for (const c of res.conditions) {
      if (SYSTEM_CONDITIONS.has(c.type)) continue; // "Do not let users update system conditions."
      conds = setCondition(conds, c, this.clock.iso());
    }
    const unsynced = res.composed
      .filter((c) => !c.synced)
      .map((c) => c.name)
      .sort();
    const unready = res.composed
      .filter((c) => !c.ready)
      .map((c) => c.name)
      .sort();
    for (const id of unsynced)
      this.record(now, 'Normal', 'ComposeResources', `Composed resource "${id}" is not yet valid`);
    for (const id of unready)
      this.record(now, 'Normal', 'ComposeResources', `Composed resource "${id}" is not yet ready`);
    conds = setCondition(
      conds,
      unsynced.length > 0
        ? {
            type: 'Synced',
            status: 'False',
            reason: 'ReconcileError',
            message: `Unsynced resources: ${stableFirstN(unsynced)}`,
          }
        : { type: 'Synced', status: 'True', reason: 'ReconcileSuccess' },
      this.clock.iso(),
    );
    // Readiness: derived from composed resources (a resource whose readiness the function
    // left unspecified counts as not ready), unless the function set the XR's explicitly.
    let ready: Condition =
      unready.length > 0
        ? {
            type: 'Ready',
            status: 'False',
            reason: 'Creating',
            message: `Unready resources: ${stableFirstN(unready)}`,
          }
        : { type: 'Ready', status: 'True', reason: 'Available' };
    if (res.ready !== undefined) {
      ready = res.ready
        ? { type: 'Ready', status: 'True', reason: 'Available' }
        : { type: 'Ready', status: 'False', reason: 'Creating' };
    }
    conds = setCondition(conds, ready, this.clock.iso());
    const status = { ...(isObj(now['status']) ? now['status'] : {}), conditions: conds };
    if (!deepEqual(statusBefore, status)) {
      now['status'] = status;
      this.store.updateStatus(now, 'crossplane');
    }
    const after = this.store.get(ref);
    if (after) for (const fn of this.afterReconcile) fn(after);
    // Realtime compositions turn polling off; a TTL from the pipeline requeues after it,
    // with the reconciler's ±10 % jitter (reconciler.go jitter()).
    if (this.opts.realtime) return res.ttlMs > 0 ? { requeueAfter: this.jitter(res.ttlMs) } : {};
    return unsynced.length + unready.length > 0
      ? { requeue: true }
      : { requeueAfter: this.jitter(this.opts.pollIntervalMs) };
  }

  /** CompositionRevision names: the Composition's name and a digest of its spec. */
  private revisionName(): string {
    const h = createHash('sha256')
      .update(canonical({ pipeline: this.composition.pipeline }))
      .digest('hex');
    return `${this.composition.name}-${h.slice(0, 7)}`;
  }

  private seed = 12345;
  private jitter(ms: number): number {
    this.seed = (this.seed * 1103515245 + 12345) % 2147483648;
    return Math.round(ms + (this.seed / 2147483648 - 0.5) * 2 * ms * 0.1);
  }

  /** ExistingComposedResourceObserver: resourceRefs that exist and that this XR controls. */
  private observe(xr: KObject): Map<string, KObject> {
    const out = new Map<string, KObject>();
    const refs = arrOf(xr, 'spec', 'crossplane', 'resourceRefs');
    for (const r of refs) {
      if (!isObj(r) || typeof r['name'] !== 'string' || r['name'] === '') continue;
      const ref: Ref = {
        apiVersion: String(r['apiVersion']),
        kind: String(r['kind']),
        name: r['name'],
        namespace:
          xr.metadata.namespace ??
          (typeof r['namespace'] === 'string' ? r['namespace'] : undefined),
      };
      const o = this.store.get(ref);
      if (!o) continue; // "We believe we created this resource, but it no longer exists."
      const ctl = (o.metadata.ownerReferences ?? []).find((x) => x.controller === true);
      if (ctl && ctl.uid !== xr.metadata.uid) continue;
      const name = o.metadata.annotations?.[ANNOTATION_RESOURCE_NAME];
      if (name === undefined || name === '') {
        throw new Error(
          'cannot determine composition resource name of an existing composed resource',
        );
      }
      out.set(name, o);
    }
    return out;
  }

  /** FetchingFunctionRunner.RunFunction (test/support/requirements-loop.ts), each call counted. */
  private runWithRequirements(
    fnName: string,
    req: RunFunctionRequest,
    xrKey: string,
  ): Promise<RunFunctionResponse> {
    return runWithRequirements(req, {
      call: (r) => {
        r.meta = { tag: tag(r), capabilities: [] };
        this.calls.set(xrKey, (this.calls.get(xrKey) ?? 0) + 1);
        return this.runner.run(fnName, r);
      },
      fetch: (name, selector) => this.fetchFor(name, selector),
    });
  }

  private fetchFor(name: string, rs: ResourceSelector): Resources {
    try {
      return this.fetch(rs);
    } catch (err) {
      throw new Error(
        `fetching resources for ${name}: ${err instanceof Error ? err.message : String(err)}`,
      );
    }
  }

  /** ExistingRequiredResourcesFetcher.Fetch. */
  private fetch(rs: ResourceSelector): Resources {
    const failing = this.opts.faults.failFetches.get(rs.kind) ?? 0;
    if (failing > 0) {
      this.opts.faults.failFetches.set(rs.kind, failing - 1);
      throw new Error(
        `${rs.matchName !== undefined ? 'cannot get required resource by name' : 'cannot list required resources'}: the server is currently unable to handle the request (get ${rs.kind.toLowerCase()}s.${groupOf(rs.apiVersion)}${rs.matchName !== undefined ? ` ${rs.matchName}` : ''})`,
      );
    }
    if (rs.matchName !== undefined) {
      const o = this.store.get({
        apiVersion: rs.apiVersion,
        kind: rs.kind,
        name: rs.matchName,
        namespace: rs.namespace,
      });
      // Not found: a nil entry, which reaches the function as present and empty.
      return {
        items: o
          ? [
              {
                resource: o,
                connectionDetails: {},
                ready: Ready.READY_UNSPECIFIED,
              },
            ]
          : [],
      };
    }
    const list = this.store.list(rs.apiVersion, rs.kind, {
      namespace: rs.namespace,
      labels: rs.matchLabels?.labels,
    });
    return {
      items: list.map((o) => ({
        resource: o,
        connectionDetails: {},
        ready: Ready.READY_UNSPECIFIED,
      })),
    };
  }

  /** FunctionComposer.Compose. */
  private async compose(xr: KObject): Promise<ComposeResult> {
    const xrKey = keyOf(refOf(xr));
    const observed = this.observe(xr);
    const observedState = {
      composite: {
        resource: stripForState(xr),
        connectionDetails: {},
        ready: Ready.READY_UNSPECIFIED,
      },
      resources: Object.fromEntries(
        [...observed].map(([n, o]) => [
          n,
          { resource: stripForState(o), connectionDetails: {}, ready: Ready.READY_UNSPECIFIED },
        ]),
      ),
    };
    // "The Function pipeline starts with empty desired state."
    let desired: RunFunctionResponse['desired'] = { composite: undefined, resources: {} };
    let context: Json = {};
    let ttlMs = 0;
    const events: ComposeResult['events'] = [];
    const conds: Condition[] = [];
    for (const step of this.composition.pipeline) {
      const req = RunFunctionRequest.fromPartial({
        observed: observedState,
        desired,
        context,
        ...(step.input !== undefined ? { input: step.input } : {}),
      });
      let rsp: RunFunctionResponse;
      try {
        rsp = await this.runWithRequirements(step.functionRef.name, req, xrKey);
      } catch (err) {
        throw new ComposeError(
          `cannot run Composition pipeline step "${step.step}": ${err instanceof Error ? err.message : String(err)}`,
          { events, conditions: conds },
        );
      }
      const t = rsp.meta?.ttl;
      const d = t ? t.seconds * 1000 + Math.floor(t.nanos / 1e6) : 0;
      if (d > 0 && (ttlMs === 0 || d < ttlMs)) ttlMs = d;
      desired = rsp.desired ?? { composite: undefined, resources: {} };
      context = rsp.context ?? {};
      for (const c of rsp.conditions) {
        conds.push({
          type: c.type,
          status:
            c.status === Status.STATUS_CONDITION_TRUE
              ? 'True'
              : c.status === Status.STATUS_CONDITION_FALSE
                ? 'False'
                : 'Unknown',
          reason: c.reason,
          ...(c.message !== undefined ? { message: c.message } : {}),
        });
      }
      for (const r of rsp.results) {
        const reason = r.reason !== undefined && r.reason !== '' ? r.reason : 'ComposeResources';
        if (r.severity === Severity.SEVERITY_FATAL) {
          throw new ComposeError(
            `pipeline step "${step.step}" returned a fatal result: ${r.message}`,
            {
              events,
              conditions: conds,
            },
          );
        }
        events.push({
          type: r.severity === Severity.SEVERITY_NORMAL ? 'Normal' : 'Warning',
          reason,
          message: r.message,
        });
      }
    }

    // Load desired composed resources; keep the names of existing ones; render metadata.
    const want = new Map<string, { obj: Manifest; ready: boolean }>();
    for (const [name, dr] of Object.entries(desired.resources)) {
      const body = clone<Json>(dr.resource ?? {});
      const meta = isObj(body['metadata']) ? body['metadata'] : {};
      const cd = { ...body, metadata: meta } as unknown as Manifest;
      const prev = observed.get(name);
      if (prev) {
        cd.metadata.name = prev.metadata.name;
        if (prev.metadata.namespace !== undefined) cd.metadata.namespace = prev.metadata.namespace;
      }
      if (xr.metadata.namespace !== undefined) {
        if ((cd.metadata.namespace ?? '') === '' && !isNamespaced(cd.kind)) {
          throw new ComposeError(
            `cannot apply cluster scoped composed resource "${name}" (${cd.kind}) for a namespaced composite resource`,
            { events, conditions: conds },
          );
        }
        if (
          (cd.metadata.namespace ?? '') !== '' &&
          cd.metadata.namespace !== xr.metadata.namespace
        ) {
          events.push({
            type: 'Warning',
            reason: 'NamespaceOverridden',
            message: `composed resource "${name}" namespace "${cd.metadata.namespace ?? ''}" overridden to "${xr.metadata.namespace}"`,
          });
        }
        cd.metadata.namespace = xr.metadata.namespace;
      }
      // RenderComposedResourceMetadata.
      if ((cd.metadata.name ?? '') === '' && (cd.metadata.generateName ?? '') === '') {
        cd.metadata.generateName = `${xr.metadata.labels?.[LABEL_COMPOSITE] ?? xr.metadata.name}-`;
      }
      cd.metadata.annotations = {
        ...(cd.metadata.annotations ?? {}),
        [ANNOTATION_RESOURCE_NAME]: name,
      };
      cd.metadata.labels = {
        ...(cd.metadata.labels ?? {}),
        [LABEL_COMPOSITE]: xr.metadata.labels?.[LABEL_COMPOSITE] ?? xr.metadata.name,
      };
      cd.metadata.ownerReferences = [
        {
          apiVersion: xr.apiVersion,
          kind: xr.kind,
          name: xr.metadata.name,
          uid: xr.metadata.uid,
          controller: true,
          blockOwnerDeletion: true,
        },
      ];
      want.set(name, { obj: cd, ready: dr.ready === Ready.READY_TRUE });
    }
    // Generate names before anything is created, so a reference is persisted first.
    for (const w of want.values()) {
      if ((w.obj.metadata.name ?? '') !== '') continue;
      const prefix = w.obj.metadata.generateName ?? `${xr.metadata.name}-`;
      for (;;) {
        const candidate = `${prefix}${randomSuffix()}`;
        if (!this.store.get({ ...refOf(w.obj), name: candidate })) {
          w.obj.metadata.name = candidate;
          break;
        }
      }
    }

    // Garbage collect observed resources that left desired state (foreground, and only
    // resources this XR controls; composition_functions.go DeletingComposedResourceGarbageCollector).
    for (const [name, o] of observed) {
      if (want.has(name)) continue;
      const ctl = (o.metadata.ownerReferences ?? []).find((x) => x.controller === true);
      if (ctl && ctl.uid !== xr.metadata.uid) {
        throw new ComposeError(
          `refusing to delete composed resource "${name}" that is controlled by ${ctl.kind} "${ctl.name}"`,
          {
            events,
            conditions: conds,
          },
        );
      }
      // The composite label goes first, so the deletion reads as garbage collection rather
      // than the XR's own deletion; then a foreground delete with a UID precondition
      // ("nested XRs will be deleted bottom up").
      try {
        if (o.metadata.labels?.[LABEL_COMPOSITE] !== undefined) {
          const next = clone(o);
          const labels = { ...(next.metadata.labels ?? {}) };
          Reflect.deleteProperty(labels, LABEL_COMPOSITE);
          next.metadata.labels = labels;
          this.store.update(next, 'crossplane');
        }
        this.store.delete(refOf(o), 'Foreground', o.metadata.uid);
      } catch (err) {
        if (!isApiError(err, 'NotFound')) throw err;
      }
    }

    // Persist resourceRefs before applying (UpdateResourceRefs: sorted, atomic replace).
    const refs = [...want.values()]
      .map((w) => ({
        apiVersion: w.obj.apiVersion,
        kind: w.obj.kind,
        name: w.obj.metadata.name ?? '',
        ...(xr.metadata.namespace === undefined && w.obj.metadata.namespace !== undefined
          ? { namespace: w.obj.metadata.namespace }
          : {}),
      }))
      .sort((a, b) => (a.apiVersion + a.kind + a.name < b.apiVersion + b.kind + b.name ? -1 : 1));
    const cur = this.store.mustGet(refOf(xr));
    const curSpec = isObj(cur['spec']) ? cur['spec'] : {};
    const curCp = isObj(curSpec['crossplane']) ? curSpec['crossplane'] : {};
    if (!deepEqual(curCp['resourceRefs'], refs)) {
      cur['spec'] = { ...curSpec, crossplane: { ...curCp, resourceRefs: refs } };
      this.store.update(cur, FIELD_OWNER_XR);
    }

    // Apply every desired resource with server-side apply, one field owner per XR.
    const composed: Composed[] = [];
    const owner = composedFieldOwner(xr);
    for (const [name, w] of want) {
      try {
        const existing = this.store.get(refOf(w.obj));
        const ctl = (existing?.metadata.ownerReferences ?? []).find((x) => x.controller === true);
        if (existing && ctl && ctl.uid !== xr.metadata.uid) {
          throw new Error(
            `${existing.kind} "${existing.metadata.name}" is already controlled by ${ctl.kind} "${ctl.name}"`,
          );
        }
        this.store.apply(w.obj, owner);
        composed.push({ name, ready: w.ready, synced: true });
      } catch (err) {
        if (isApiError(err, 'Invalid')) {
          events.push({
            type: 'Warning',
            reason: 'ComposeResources',
            message: `cannot apply composed resource "${name}": ${err.message}`,
          });
          composed.push({ name, ready: w.ready, synced: false });
          continue;
        }
        throw new ComposeError(
          `cannot apply composed resource "${name}": ${err instanceof Error ? err.message : String(err)}`,
          {
            events,
            conditions: conds,
          },
        );
      }
    }

    // The XR's status: server-side apply of the function's full intent.
    const dc = desired.composite;
    const desiredStatus = isObj(dc?.resource?.['status']) ? clone<Json>(dc.resource['status']) : {};
    const latest = this.store.mustGet(refOf(xr));
    const keep = conditions(latest, 'status', 'conditions');
    this.store.applyStatus(
      refOf(xr),
      { ...desiredStatus, ...(keep.length > 0 ? { conditions: keep } : {}) },
      FIELD_OWNER_XR,
    );
    const ready =
      dc?.ready === Ready.READY_TRUE ? true : dc?.ready === Ready.READY_FALSE ? false : undefined;
    return { composed, ready, events, conditions: conds, ttlMs };
  }
}

/** resource.StableNAndSomeMore(3, ...). */
function stableFirstN(names: string[], n = 3): string {
  return names.length <= n
    ? names.join(', ')
    : `${names.slice(0, n).join(', ')}, and ${names.length - n} more`;
}

function arrOf(v: unknown, ...path: string[]): unknown[] {
  let cur = v;
  for (const k of path) cur = isObj(cur) ? cur[k] : undefined;
  return Array.isArray(cur) ? cur : [];
}

const ALPHABET = 'bcdfghjklmnpqrstvwxz2456789';
let suffixSeed = 7;
function randomSuffix(): string {
  let s = '';
  for (let i = 0; i < 5; i++) {
    suffixSeed = (suffixSeed * 1103515245 + 12345) % 2147483648;
    s += ALPHABET[suffixSeed % ALPHABET.length] ?? 'x';
  }
  return s;
}

/** The object as it appears in observed state (Crossplane sends what it read from the API). */
function stripForState(o: KObject): Json {
  return clone(o);
}

/** Crossplane's Tag: a digest of the deterministic encoding of the request. */
function tag(req: RunFunctionRequest): string {
  const copy = RunFunctionRequest.fromPartial({ ...req, meta: undefined });
  return createHash('sha256').update(RunFunctionRequest.encode(copy).finish()).digest('hex');
}

export type { Requirements, Resource };
