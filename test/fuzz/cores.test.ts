import {
  RunFunctionRequest,
  RunFunctionResponse,
  Severity,
} from '@crossplane-org/function-sdk-typescript';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { runFunction } from '../../function/dispatch.js';
import type { Json } from '../../function/k8s/object.js';
import { silentLogger, viaOwnCodec, viaSdkCodec } from '../support/codecs.js';
import * as f from '../support/fixtures.js';
import { toRunFunctionRequest } from '../support/requests.js';
import { World, type RemoteCluster } from '../support/world.js';
import * as arb from './arbitraries.js';

/** Cases per property: small by default; `FUZZ_RUNS=25000` (CI long mode) gives 125k in all. */
const RUNS = Number(process.env['FUZZ_RUNS'] ?? '250');
/** Generous per-property budget: long mode must not fail on a slow machine's clock. */
const TIMEOUT_MS = 30_000 + RUNS * 10;
// The Function logs each rejected input; thousands of those lines would bury the report.
const log = silentLogger;

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
/** Every FATAL message names what was wrong: a field path, or the Composition wiring. */
const FATAL_SHAPE =
  /^(invalid (function input: input|mount step input: input|ModelCache: (spec|metadata)|ModelCacheReplica: (spec|metadata)|InferenceCluster: spec|ModelDeployment: (spec|metadata)|XR: spec)|function-modelcache composes |the ModelCache mount step needs a namespaced XR)/;

/** The request as the server sees it: through protobuf, ints become doubles, undefined goes. */
function overTheWire(parts: {
  composite: Json;
  observed: Record<string, Json>;
  required: Record<string, Json[]>;
  input: unknown;
}): RunFunctionRequest {
  const req = RunFunctionRequest.fromPartial({
    meta: { tag: 'fuzz' },
    observed: {
      composite: { resource: parts.composite },
      resources: Object.fromEntries(
        Object.entries(parts.observed).map(([k, v]) => [k, { resource: v }]),
      ),
    },
    requiredResources: Object.fromEntries(
      Object.entries(parts.required).map(([k, list]) => [
        k,
        { items: list.map((resource) => ({ resource })) },
      ]),
    ),
    ...(parts.input !== undefined && parts.input !== null && typeof parts.input === 'object'
      ? { input: parts.input as Record<string, unknown> }
      : {}),
  });
  return RunFunctionRequest.decode(RunFunctionRequest.encode(req).finish());
}

function checkResponse(req: RunFunctionRequest): void {
  const rsp = runFunction(req, log);
  const bytes = RunFunctionResponse.encode(rsp).finish();
  expect(rsp.meta?.tag).toBe('fuzz');
  // Deterministic: the same request gives byte-identical output.
  expect(
    Buffer.from(RunFunctionResponse.encode(runFunction(req, log)).finish()).equals(
      Buffer.from(bytes),
    ),
  ).toBe(true);
  const fatal = rsp.results.filter((r) => r.severity === Severity.SEVERITY_FATAL);
  for (const r of fatal) expect(r.message).toMatch(FATAL_SHAPE);
  if (fatal.length > 0) return;
  for (const [key, res] of Object.entries(rsp.desired?.resources ?? {})) {
    const body = res.resource as Json;
    if (body['kind'] === 'Usage') continue;
    if (body['kind'] === 'ModelCacheReplica') {
      // A cache composes replicas only: small, named as labels, each naming its cluster.
      expect(body['apiVersion'], key).toBe('modelplane.ai/v1alpha1');
      expect(String((body['metadata'] as Json)['name']), key).toMatch(DNS_LABEL);
      expect(String((body['metadata'] as Json)['name']).length, key).toBeLessThanOrEqual(63);
      expect((body['spec'] as Json)['cluster'], key).toBe(key);
      expect(String((body['spec'] as Json)['identity']), key).toMatch(/^[0-9a-f]{64}$/);
      continue;
    }
    expect(body['apiVersion'], key).toBe('kubernetes.m.crossplane.io/v1alpha1');
    expect(body['kind'], key).toBe('Object');
    const spec = body['spec'] as Json;
    const manifest = (spec['forProvider'] as Json)['manifest'] as Json;
    const meta = manifest['metadata'] as Json;
    expect(typeof manifest['apiVersion'], key).toBe('string');
    expect(typeof manifest['kind'], key).toBe('string');
    expect(String(meta['name']), key).toMatch(DNS_SUBDOMAIN);
    expect(String(meta['name']).length, key).toBeLessThanOrEqual(253);
    if (meta['namespace'] !== undefined) expect(meta['namespace'], key).toMatch(DNS_LABEL);
    expect(spec['providerConfigRef'], key).toBeDefined();
  }
}

const property = (xr: fc.Arbitrary<Json>, input: fc.Arbitrary<unknown> = arb.input) =>
  fc.property(xr, arb.observed, arb.required, input, (composite, observed, required, inp) => {
    checkResponse(overTheWire({ composite, observed, required, input: inp }));
  });

/** The Function's own codec answers the same bytes as the SDK's codec, call after call. */
function sameThroughCodecs(req: RunFunctionRequest): void {
  const bytes = Buffer.from(RunFunctionRequest.encode(req).finish());
  const reference = viaSdkCodec(bytes);
  for (let call = 0; call < 2; call++) {
    expect(viaOwnCodec(bytes).equals(reference)).toBe(true);
  }
}

/** Arbitrary caches and replicas with arbitrary observed and required resources. */
const codecProperty = fc.property(
  fc.oneof(arb.modelCacheXR, arb.modelCacheReplicaXR),
  arb.observed,
  arb.required,
  arb.input,
  (composite, observed, required, input) => {
    sameThroughCodecs(overTheWire({ composite, observed, required, input }));
  },
);

const remoteState: fc.Arbitrary<Partial<RemoteCluster>> = fc.record({
  claim: fc.constantFrom(undefined, 'Pending', 'Bound', 'Lost'),
  job: fc.oneof(
    fc.constant(undefined),
    fc.constant({ state: 'created' as const }),
    fc.record({
      state: fc.constant('running' as const),
      done: fc.nat({ max: 2 ** 40 }),
      total: fc.nat({ max: 2 ** 40 }),
    }),
    fc.record({
      state: fc.constant('complete' as const),
      revision: fc.stringMatching(/^[0-9a-f]{1,40}$/),
    }),
    fc.record({ state: fc.constant('failed' as const), error: fc.string() }),
  ),
});

/**
 * Valid caches on one to four clusters, walked through random remote states (each step's
 * observed Objects are made from the step before's response): the cache's call and every
 * replica's call answer the same bytes through both codecs.
 */
const lifecycleProperty = fc.property(
  fc.integer({ min: 1, max: 4 }),
  fc.array(fc.array(remoteState, { minLength: 4, maxLength: 4 }), { minLength: 1, maxLength: 4 }),
  fc.boolean(),
  (clusters, steps, refetch) => {
    const names = ['a', 'b', 'c', 'd'].slice(0, clusters);
    const w = new World(
      f.HF_WEIGHTS,
      names.map((n) => f.inferenceClusterXR(n, { storageClassName: 'nfs', classExists: true })),
    );
    w.reconcile();
    steps.forEach((states, i) => {
      names.forEach((n, j) => {
        w.set(n, states[j] ?? {});
      });
      if (refetch && i === 1) w.annotations = { 'modelplane.ai/refetch': 'again' };
      w.reconcileCache();
      sameThroughCodecs(toRunFunctionRequest(w.cacheRequest(), 'fuzz'));
      for (const n of w.replicas.keys()) {
        sameThroughCodecs(toRunFunctionRequest(w.replicaRequest(n), 'fuzz'));
      }
      w.reconcile();
    });
  },
);

describe(`fuzzing the Function (${RUNS} cases per property)`, () => {
  it(
    'ModelCache and ModelCacheReplica: the own codec answers what the SDK codec does',
    () => {
      fc.assert(codecProperty, { numRuns: RUNS });
    },
    TIMEOUT_MS,
  );
  it(
    'cache lifecycles through their replicas: the own codec answers what the SDK codec does',
    () => {
      fc.assert(lifecycleProperty, { numRuns: Math.max(20, Math.floor(RUNS / 10)) });
    },
    TIMEOUT_MS,
  );
  it(
    'ModelCacheReplica: never throws, names the field when fatal, deterministic, well-formed Objects',
    () => {
      fc.assert(property(arb.modelCacheReplicaXR), { numRuns: RUNS });
    },
    TIMEOUT_MS,
  );
  it(
    'ModelCache: never throws, names the field when fatal, deterministic, well-formed Objects',
    () => {
      fc.assert(property(arb.modelCacheXR), { numRuns: RUNS });
    },
    TIMEOUT_MS,
  );
  it(
    'InferenceCluster: same properties',
    () => {
      fc.assert(property(arb.inferenceClusterXR), { numRuns: RUNS });
    },
    TIMEOUT_MS,
  );
  it(
    'ModelDeployment: same properties',
    () => {
      fc.assert(property(arb.modelDeploymentXR), { numRuns: RUNS });
    },
    TIMEOUT_MS,
  );
  it(
    'mount step and arbitrary XRs: same properties',
    () => {
      fc.assert(
        property(
          fc.oneof(
            arb.modelDeploymentXR,
            arb.anyJson.map((v) => ({
              kind: 'Anything',
              metadata: { name: 'x', namespace: 'n' },
              spec: { caches: v },
            })),
          ),
          fc.constant({
            apiVersion: 'modelcache.fn.modelplane.ai/v1alpha1',
            kind: 'MountCaches',
            cachesFrom: 'spec.caches',
          }),
        ),
        { numRuns: RUNS },
      );
    },
    TIMEOUT_MS,
  );
});
