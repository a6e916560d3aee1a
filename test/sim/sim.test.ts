// Unit tests of the simulator's own rules: each checks one upstream behaviour the fleet
// scenarios rely on (virtual time, server-side apply, garbage collection, the
// required-resource loop, management policies, CEL readiness, RBAC on the Job API).
import {
  Ready,
  RunFunctionResponse,
  type RunFunctionRequest,
} from '@crossplane-org/function-sdk-typescript';
import { describe, expect, it } from 'vitest';

import { celReadiness } from './core/cel.js';
import { MINUTE, SECOND, VirtualClock } from './core/clock.js';
import { EventLog } from './core/events.js';
import { getValue, setValue } from './core/fieldpath.js';
import { Controller } from './core/queue.js';
import { applyConfig, type FieldSets } from './core/ssa.js';
import { Store, isApiError } from './core/store.js';
import { ApiServer } from './cluster/apiserver.js';
import { rewritePlan } from './cluster/pods.js';
import { CircuitBreaker } from './crossplane/circuit.js';
import { CompositeController, type PipelineRunner } from './crossplane/composite.js';
import { ObjectController, OBJECT_API_VERSION } from './provider/object.js';

describe('virtual clock', () => {
  it('jumps to the next event when nothing real runs, in (time, order) order', async () => {
    const clock = new VirtualClock();
    const seen: string[] = [];
    clock.schedule(10 * MINUTE, 'b', () => {
      seen.push(`b@${clock.now()}`);
    });
    clock.schedule(1 * MINUTE, 'a', () => {
      seen.push(`a@${clock.now()}`);
    });
    clock.schedule(10 * MINUTE, 'c', () => {
      seen.push(`c@${clock.now()}`);
    });
    const t0 = Date.now();
    expect(await clock.run(() => seen.length === 3, { virtualMs: 1 * MINUTE * 60 })).toBe('done');
    expect(seen).toEqual(['a@60000', 'b@600000', 'c@600000']);
    expect(Date.now() - t0).toBeLessThan(500);
  });

  it('paces virtual time against wall time while real work is held', async () => {
    const clock = new VirtualClock(100);
    const release = clock.hold('pod');
    setTimeout(release, 200);
    await clock.run(() => false, { virtualMs: 1 * MINUTE });
    // About 200 ms of wall time at 100x: some 20 s of virtual time, then the jump to the limit.
    expect(clock.now()).toBe(1 * MINUTE);
    const clock2 = new VirtualClock(100);
    const release2 = clock2.hold('pod');
    setTimeout(release2, 200);
    let at = 0;
    clock2.schedule(10 * SECOND, 'during', () => {
      at = Date.now();
    });
    const t0 = Date.now();
    await clock2.run(() => at !== 0, { virtualMs: 1 * MINUTE });
    expect(at - t0).toBeGreaterThanOrEqual(80);
  });
});

describe('field paths (crossplane-runtime fieldpath)', () => {
  it('reads and writes bracketed keys', () => {
    const secret = { data: { HF_TOKEN: 'aGY=' } };
    expect(getValue(secret, 'data[HF_TOKEN]')).toBe('aGY=');
    expect(() => getValue(secret, 'data[OTHER]')).toThrow('data[OTHER]: no such field');
    const obj: Record<string, unknown> = {};
    setValue(obj, 'spec.forProvider.manifest.data[HF_TOKEN]', 'aGY=');
    expect(obj).toEqual({ spec: { forProvider: { manifest: { data: { HF_TOKEN: 'aGY=' } } } } });
  });
});

describe('CEL readiness (provider-kubernetes checkDeriveFromCelQuery)', () => {
  it('is ready only for a true result; errors and non-bool queries are reported', () => {
    const q = 'object.status.phase == "Bound"';
    expect(celReadiness(q, { status: { phase: 'Bound' } })).toEqual({ ready: true });
    expect(celReadiness(q, { status: { phase: 'Pending' } })).toEqual({ ready: false });
    expect(celReadiness(q, { status: {} })).toEqual({
      error: 'failed to eval the program: no such key: phase',
    });
    expect(celReadiness('object.status.phase', {})).toEqual({
      error: 'celQuery does not return a bool type',
    });
    expect(celReadiness('', {})).toEqual({ error: 'cel query cannot be empty' });
  });
});

describe('server-side apply', () => {
  it('removes a field its manager stops sending, keeps fields another manager wrote', () => {
    const sets: FieldSets = new Map();
    let o = applyConfig({}, { status: { a: 1, b: { c: 2 } } }, 'xr', sets);
    o['status'] = { ...(o['status'] as object), other: 'kept' };
    sets.set('someone', new Set(['status\u0001other']));
    o = applyConfig(o, { status: { a: 3 } }, 'xr', sets);
    expect(o).toEqual({ status: { a: 3, other: 'kept' } });
  });
});

describe('store', () => {
  const clock = new VirtualClock();
  it('skips no-op writes, bumps generation on spec changes, honours finalizers', () => {
    const s = new Store('t', clock);
    s.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'ns' } });
    const events: string[] = [];
    s.watch((e) => events.push(`${e.type} ${e.obj.kind}`));
    const cm = s.create({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'c', namespace: 'ns', finalizers: ['x'] },
      data: { a: '1' },
    });
    s.update(cm);
    expect(events).toEqual(['ADDED ConfigMap']);
    const changed = s.update({ ...cm, data: { a: '2' } });
    expect(changed.metadata.generation).toBe(2);
    s.delete({ apiVersion: 'v1', kind: 'ConfigMap', name: 'c', namespace: 'ns' });
    expect(
      s.get({ apiVersion: 'v1', kind: 'ConfigMap', name: 'c', namespace: 'ns' })?.metadata
        .deletionTimestamp,
    ).toBeDefined();
    const cur = s.mustGet({ apiVersion: 'v1', kind: 'ConfigMap', name: 'c', namespace: 'ns' });
    s.update({ ...cur, metadata: { ...cur.metadata, finalizers: [] } });
    expect(
      s.get({ apiVersion: 'v1', kind: 'ConfigMap', name: 'c', namespace: 'ns' }),
    ).toBeUndefined();
  });

  it('refuses objects in a missing namespace; orphans the pods of a deleted batch/v1 Job', () => {
    const s = new Store('t', clock);
    try {
      s.create({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 's', namespace: 'nope' } });
      expect.unreachable();
    } catch (err) {
      expect(isApiError(err, 'NotFound') && err.message).toBe('namespaces "nope" not found');
    }
    s.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'ns' } });
    const job = s.create({
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: { name: 'j', namespace: 'ns' },
    });
    const owner = [
      { apiVersion: 'batch/v1', kind: 'Job', name: 'j', uid: job.metadata.uid, controller: true },
    ];
    s.create({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'p', namespace: 'ns', ownerReferences: owner },
    });
    s.create({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'c', namespace: 'ns', ownerReferences: owner },
    });
    s.delete({ apiVersion: 'batch/v1', kind: 'Job', name: 'j', namespace: 'ns' });
    expect(
      s.get({ apiVersion: 'v1', kind: 'Pod', name: 'p', namespace: 'ns' })?.metadata
        .ownerReferences,
    ).toBeUndefined();
    expect(
      s.get({ apiVersion: 'v1', kind: 'ConfigMap', name: 'c', namespace: 'ns' }),
    ).toBeDefined();
  });

  it("an object's own foregroundDeletion finalizer overrides a Job's orphaning default; an explicit policy drops it", () => {
    const s = new Store('t', clock);
    s.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'ns' } });
    const job = (name: string) =>
      s.create({
        apiVersion: 'batch/v1',
        kind: 'Job',
        metadata: { name, namespace: 'ns', finalizers: ['foregroundDeletion'] },
      });
    const podOf = (j: ReturnType<typeof job>) =>
      s.create({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: {
          name: `${j.metadata.name}-pod`,
          namespace: 'ns',
          finalizers: ['kubelet'],
          ownerReferences: [
            {
              apiVersion: 'batch/v1',
              kind: 'Job',
              name: j.metadata.name,
              uid: j.metadata.uid,
              controller: true,
              blockOwnerDeletion: true,
            },
          ],
        },
      });
    const ref = (kind: string, name: string) => ({
      apiVersion: kind === 'Job' ? 'batch/v1' : 'v1',
      kind,
      name,
      namespace: 'ns',
    });
    podOf(job('a'));
    s.delete(ref('Job', 'a'));
    const pod = s.mustGet(ref('Pod', 'a-pod'));
    expect([
      s.get(ref('Job', 'a'))?.metadata.finalizers,
      pod.metadata.deletionTimestamp !== undefined,
      pod.metadata.ownerReferences?.length,
    ]).toEqual([['foregroundDeletion'], true, 1]);
    s.update({ ...pod, metadata: { ...pod.metadata, finalizers: [] } });
    expect(s.get(ref('Job', 'a'))).toBeUndefined();
    // `kubectl delete job` (Background) removes the finalizer: the Job goes now, its pod after.
    podOf(job('b'));
    s.delete(ref('Job', 'b'), 'Background');
    expect([
      s.get(ref('Job', 'b')),
      s.get(ref('Pod', 'b-pod'))?.metadata.deletionTimestamp !== undefined,
    ]).toEqual([undefined, true]);
  });

  it('foreground: the owner stays, marked, until its blocking dependents are gone', () => {
    const s = new Store('t', clock);
    s.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'ns' } });
    const ref = (kind: string, name: string) => ({ apiVersion: 'v1', kind, name, namespace: 'ns' });
    const owner = s.create({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'owner', namespace: 'ns', finalizers: ['crossplane'] },
    });
    const by = (block: boolean) => [
      {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        name: 'owner',
        uid: owner.metadata.uid,
        controller: true,
        blockOwnerDeletion: block,
      },
    ];
    s.create({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: {
        name: 'blocking',
        namespace: 'ns',
        finalizers: ['provider'],
        ownerReferences: by(true),
      },
    });
    s.create({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'free', namespace: 'ns', ownerReferences: by(false) },
    });
    s.delete(ref('ConfigMap', 'owner'), 'Foreground');
    const marked = s.mustGet(ref('ConfigMap', 'owner'));
    expect([marked.metadata.deletionTimestamp !== undefined, marked.metadata.finalizers]).toEqual([
      true,
      ['crossplane', 'foregroundDeletion'],
    ]);
    expect(s.get(ref('Secret', 'free'))).toBeUndefined();
    const blocking = s.mustGet(ref('Secret', 'blocking'));
    expect(blocking.metadata.deletionTimestamp).toBeDefined();
    // The owner's own controller lets go first (Crossplane removing its finalizer).
    s.update({ ...marked, metadata: { ...marked.metadata, finalizers: ['foregroundDeletion'] } });
    expect(s.get(ref('ConfigMap', 'owner'))?.metadata.finalizers).toEqual(['foregroundDeletion']);
    s.update({ ...blocking, metadata: { ...blocking.metadata, finalizers: [] } });
    expect([s.get(ref('Secret', 'blocking')), s.get(ref('ConfigMap', 'owner'))]).toEqual([
      undefined,
      undefined,
    ]);
  });
});

describe("Crossplane's watch circuit breaker", () => {
  it('opens past the burst, lets one event through per half-open interval, closes after the cooldown', async () => {
    const clock = new VirtualClock();
    const b = new CircuitBreaker(clock);
    const admitted = (n: number, source = 'Object/o (ns)') =>
      Array.from({ length: n }, () => b.admit('xr', source, false)).filter(Boolean).length;
    expect(admitted(100)).toBe(100);
    expect(b.state('xr').isOpen).toBe(false);
    // The 101st event finds the bucket empty: it is let through, and the circuit opens.
    expect(admitted(1, 'Replica/r (ns)')).toBe(1);
    expect(b.openings).toEqual([{ target: 'xr', at: 0, triggeredBy: 'Object/o (ns)' }]);
    expect(admitted(10)).toBe(0);
    // A deleting object's events always pass, uncounted.
    expect(b.admit('xr', 'Object/o (ns)', true)).toBe(true);
    await clock.advance(30_001);
    expect(admitted(3)).toBe(1);
    expect(b.state('xr')).toEqual({
      isOpen: true,
      nextAllowedAt: 60_001,
      triggeredBy: 'Object/o (ns)',
    });
    await clock.advance(5 * MINUTE - 30_001);
    expect(admitted(5)).toBe(5);
    expect([b.state('xr').isOpen, b.dropped, b.openings.length]).toEqual([false, 12, 1]);
  });
});

describe("the XR controller's watches", () => {
  it('charge the breaker twice for an update (old and new object mapped), once for a create', () => {
    const clock = new VirtualClock();
    const store = new Store('cp', clock);
    store.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'ns' } });
    const ctl = new CompositeController(
      clock,
      store,
      { run: () => Promise.reject(new Error('not called')) },
      {
        name: 'c',
        apiVersion: 'modelplane.ai/v1alpha1',
        kind: 'ModelCache',
        pipeline: [],
      },
      new EventLog(clock),
      { realtime: true, pollIntervalMs: 60_000, faults: { failFetches: new Map() } },
    );
    const xr = store.create({
      apiVersion: 'modelplane.ai/v1alpha1',
      kind: 'ModelCache',
      metadata: { name: 'p', namespace: 'ns' },
      spec: {
        crossplane: { resourceRefs: [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'cm' }] },
      },
    });
    const cm = store.create({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'cm', namespace: 'ns' },
      data: { a: '1' },
    });
    store.update({ ...cm, data: { a: '2' } });
    expect([...ctl.breaker.counted]).toEqual([
      [`modelplane.ai/ModelCache/ns/${xr.metadata.name}`, 4],
    ]);
  });
});

describe('an XR composing another XR', () => {
  it('the composed XR gets its own reconciles, requirements and status; its parent observes them', async () => {
    const clock = new VirtualClock();
    const store = new Store('cp', clock);
    store.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'ns' } });
    const requests: { kind: string; req: RunFunctionRequest }[] = [];
    const runner: PipelineRunner = {
      run: (_name, req) => {
        const xr = req.observed?.composite?.resource ?? {};
        const kind = String(xr['kind']);
        requests.push({ kind, req: structuredClone(req) });
        if (kind === 'ModelCache') {
          const child = req.observed?.resources['c1']?.resource;
          const childReady = (
            (child?.['status'] as { conditions?: { type: string; status: string }[] } | undefined)
              ?.conditions ?? []
          ).some((c) => c.type === 'Ready' && c.status === 'True');
          return Promise.resolve(
            RunFunctionResponse.fromPartial({
              desired: {
                composite: {
                  resource: {
                    status: {
                      child: (child?.['status'] as { phase?: string } | undefined)?.phase ?? 'none',
                    },
                  },
                },
                resources: {
                  c1: {
                    resource: {
                      apiVersion: 'modelplane.ai/v1alpha1',
                      kind: 'ModelCacheReplica',
                      metadata: { name: 'p-c1' },
                      spec: { cluster: 'c1' },
                    },
                    ready: childReady ? Ready.READY_TRUE : Ready.READY_UNSPECIFIED,
                  },
                },
              },
              meta: { ttl: { seconds: 60, nanos: 0 } },
            }),
          );
        }
        const parent = req.requiredResources['cache']?.items[0]?.resource;
        return Promise.resolve(
          RunFunctionResponse.fromPartial({
            desired: {
              composite: {
                resource: { status: { phase: parent ? 'Ready' : 'Pending' } },
                ready: parent ? Ready.READY_TRUE : Ready.READY_FALSE,
              },
            },
            requirements: {
              resources: {
                cache: {
                  apiVersion: 'modelplane.ai/v1alpha1',
                  kind: 'ModelCache',
                  matchName: 'p',
                  namespace: 'ns',
                },
              },
            },
            meta: { ttl: { seconds: 60, nanos: 0 } },
          }),
        );
      },
    };
    const opts = { realtime: true, pollIntervalMs: 60_000, faults: { failFetches: new Map() } };
    const pipeline = [{ step: 'compose', functionRef: { name: 'f' } }];
    const events = new EventLog(clock);
    for (const kind of ['ModelCache', 'ModelCacheReplica']) {
      new CompositeController(
        clock,
        store,
        runner,
        { name: kind.toLowerCase(), apiVersion: 'modelplane.ai/v1alpha1', kind, pipeline },
        events,
        opts,
      );
    }
    const parent = store.create({
      apiVersion: 'modelplane.ai/v1alpha1',
      kind: 'ModelCache',
      metadata: { name: 'p', namespace: 'ns' },
      spec: {},
    });
    const get = (kind: string, name: string) =>
      store.get({ apiVersion: 'modelplane.ai/v1alpha1', kind, name, namespace: 'ns' });
    const ready = (o: ReturnType<typeof get>) =>
      (
        (o?.['status'] as { conditions?: { type: string; status: string }[] } | undefined)
          ?.conditions ?? []
      ).find((c) => c.type === 'Ready')?.status;
    expect(
      await clock.run(() => ready(get('ModelCache', 'p')) === 'True', { virtualMs: 5 * MINUTE }),
    ).toBe('done');
    const child = get('ModelCacheReplica', 'p-c1');
    expect({
      labels: child?.metadata.labels,
      owner: child?.metadata.ownerReferences?.map((r) => [r.kind, r.uid, r.controller]),
      finalizers: child?.metadata.finalizers,
      compositionRef: (child?.['spec'] as { crossplane?: { compositionRef?: unknown } }).crossplane
        ?.compositionRef,
      status: (child?.['status'] as { phase?: string }).phase,
      parentStatus: (get('ModelCache', 'p')?.['status'] as { child?: string }).child,
    }).toEqual({
      labels: { 'crossplane.io/composite': 'p' },
      owner: [['ModelCache', parent.metadata.uid, true]],
      finalizers: ['composite.apiextensions.crossplane.io'],
      compositionRef: { name: 'modelcachereplica' },
      status: 'Ready',
      parentStatus: 'Ready',
    });
    // The replica's own loop: a first call without its required parent, then one with it.
    const childCalls = requests.filter((r) => r.kind === 'ModelCacheReplica').slice(0, 2);
    expect(childCalls.map((r) => Object.keys(r.req.requiredResources))).toEqual([[], ['cache']]);
    // Deleting the parent: its replica goes by garbage collection, its finalizer removed by
    // its own controller; no Function runs for either.
    await clock.advance(1_000); // what was already queued at that instant
    const before = requests.length;
    store.delete({
      apiVersion: 'modelplane.ai/v1alpha1',
      kind: 'ModelCache',
      name: 'p',
      namespace: 'ns',
    });
    expect(
      await clock.run(() => get('ModelCacheReplica', 'p-c1') === undefined, { virtualMs: MINUTE }),
    ).toBe('done');
    expect([get('ModelCache', 'p'), requests.length - before]).toEqual([undefined, 0]);
  });
});

describe('work queue', () => {
  it('backs off a failing key exponentially and forgets it on success', async () => {
    const clock = new VirtualClock();
    const at: number[] = [];
    let n = 0;
    const q = new Controller(clock, 'q', () => {
      at.push(clock.now());
      n++;
      return Promise.resolve(n < 4 ? { error: 'boom' } : {});
    });
    q.enqueue('k');
    await clock.run(() => n >= 4, { virtualMs: 1 * MINUTE });
    expect(at).toEqual([0, 1000, 3000, 7000]);
  });
});

describe("Crossplane's required-resource loop", () => {
  function setup(
    requirements: (
      call: number,
    ) => Record<
      string,
      { apiVersion: string; kind: string; matchName?: string; namespace?: string }
    >,
  ) {
    const clock = new VirtualClock();
    const store = new Store('cp', clock);
    store.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'ns' } });
    const seen: RunFunctionRequest[] = [];
    const runner: PipelineRunner = {
      run: (_name, req) => {
        seen.push(structuredClone(req));
        return Promise.resolve(
          RunFunctionResponse.fromPartial({
            desired: { composite: { resource: { status: { ok: true } }, ready: Ready.READY_TRUE } },
            requirements: { resources: requirements(seen.length) },
            meta: { ttl: { seconds: 60, nanos: 0 } },
          }),
        );
      },
    };
    const ctl = new CompositeController(
      clock,
      store,
      runner,
      {
        name: 'c',
        apiVersion: 'modelplane.ai/v1alpha1',
        kind: 'ModelDeployment',
        pipeline: [{ step: 'compose', functionRef: { name: 'f' } }],
      },
      new EventLog(clock),
      { realtime: true, pollIntervalMs: 60_000, faults: { failFetches: new Map() } },
    );
    const xr = store.create({
      apiVersion: 'modelplane.ai/v1alpha1',
      kind: 'ModelDeployment',
      metadata: { name: 'd', namespace: 'ns' },
      spec: {},
    });
    return { clock, store, ctl, seen, key: `modelplane.ai/ModelDeployment/ns/${xr.metadata.name}` };
  }

  it('calls again until requirements repeat; a missing name arrives present and empty', async () => {
    const { ctl, seen, key, store } = setup(() => ({
      cache: {
        apiVersion: 'modelplane.ai/v1alpha1',
        kind: 'ModelCache',
        matchName: 'absent',
        namespace: 'ns',
      },
    }));
    expect(await ctl.reconcile(key)).toEqual({ requeueAfter: expect.any(Number) as number });
    expect(seen).toHaveLength(2);
    expect(seen[0]?.requiredResources).toEqual({});
    expect(seen[1]?.requiredResources).toEqual({ cache: { items: [] } });
    expect(store.list('modelplane.ai/v1alpha1', 'ModelDeployment')[0]?.['status']).toMatchObject({
      ok: true,
    });
  });

  it('gives up after the first call and five more when requirements keep changing', async () => {
    const { ctl, seen, key } = setup((call) => ({
      [`r${call}`]: { apiVersion: 'v1', kind: 'ConfigMap' },
    }));
    const res = await ctl.reconcile(key);
    expect(res.error).toContain(
      "requirements didn't stabilize after the maximum number of iterations (5)",
    );
    expect(seen).toHaveLength(6);
  });
});

describe('provider-kubernetes management policies', () => {
  it('refuses a combination crossplane-runtime does not support', async () => {
    const clock = new VirtualClock();
    const store = new Store('cp', clock);
    store.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'ns' } });
    const ctl = new ObjectController(
      clock,
      store,
      () => {
        throw new Error('no cluster');
      },
      new EventLog(clock),
    );
    store.create({
      apiVersion: OBJECT_API_VERSION,
      kind: 'Object',
      metadata: { name: 'o', namespace: 'ns' },
      spec: { managementPolicies: ['Create'], forProvider: { manifest: {} } },
    });
    await ctl.reconcile(`kubernetes.m.crossplane.io/Object/ns/o`);
    const o = store.mustGet({
      apiVersion: OBJECT_API_VERSION,
      kind: 'Object',
      name: 'o',
      namespace: 'ns',
    });
    expect(JSON.stringify(o['status'])).toContain('which is not supported');
  });
});

describe('the Job API a fetch pod reaches', () => {
  it('authenticates the pod token and authorizes only get/patch of the named Job', () => {
    const clock = new VirtualClock();
    const s = new Store('w', clock);
    s.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'ns' } });
    const sa = s.create({
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: { name: 'fetch', namespace: 'ns' },
    });
    s.create({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'ns' } });
    s.create({ apiVersion: 'batch/v1', kind: 'Job', metadata: { name: 'j', namespace: 'ns' } });
    s.create({ apiVersion: 'batch/v1', kind: 'Job', metadata: { name: 'other', namespace: 'ns' } });
    s.create({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'Role',
      metadata: { name: 'fetch', namespace: 'ns' },
      rules: [
        {
          apiGroups: ['batch'],
          resources: ['jobs'],
          resourceNames: ['j'],
          verbs: ['get', 'patch'],
        },
      ],
    });
    s.create({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: 'fetch', namespace: 'ns' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'fetch' },
      subjects: [{ kind: 'ServiceAccount', name: 'fetch', namespace: 'ns' }],
    });
    const api = new ApiServer(s, () => undefined);
    api.tokens.set('tok', {
      namespace: 'ns',
      serviceAccount: 'fetch',
      saUid: sa.metadata.uid,
      pod: 'p',
    });
    const patch = JSON.stringify({
      metadata: { annotations: { 'modelplane.ai/bytes-done': '5' } },
    });
    const mp = 'application/merge-patch+json';
    expect(
      api.handle('PATCH', '/apis/batch/v1/namespaces/ns/jobs/j', 'Bearer tok', mp, patch).status,
    ).toBe(200);
    expect(
      s.get({ apiVersion: 'batch/v1', kind: 'Job', name: 'j', namespace: 'ns' })?.metadata
        .annotations,
    ).toEqual({ 'modelplane.ai/bytes-done': '5' });
    expect(
      api.handle('PATCH', '/apis/batch/v1/namespaces/ns/jobs/other', 'Bearer tok', mp, patch)
        .status,
    ).toBe(403);
    expect(
      api.handle('PATCH', '/apis/batch/v1/namespaces/ns/jobs/j', 'Bearer nope', mp, patch).status,
    ).toBe(401);
    expect(
      api.handle(
        'PATCH',
        '/apis/batch/v1/namespaces/ns/jobs/j',
        'Bearer tok',
        'application/json',
        patch,
      ).status,
    ).toBe(415);
  });
});

describe('the kubelet mounts volumes into the plan', () => {
  it('rewrites the target and files directories to the pod volumes', () => {
    const plan = JSON.stringify({
      targetDir: '/cache',
      source: { type: 'inline', dir: '/var/run/modelcache/files' },
      report: {},
    });
    expect(
      JSON.parse(
        rewritePlan(plan, {
          '/cache': '/v/pvc',
          '/var/run/modelcache/files': '/v/files',
          '/tmp': '/v/tmp',
        }),
      ),
    ).toEqual({
      targetDir: '/v/pvc',
      source: { type: 'inline', dir: '/v/files' },
      report: {},
    });
  });
});
