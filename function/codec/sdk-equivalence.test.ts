// The Function behind its own codec answers byte for byte what it answers behind the SDK's
// ts-proto codec: over the fuzzers' odd requests, with desired state from earlier pipeline steps
// passed through, and over the benchmark's fleet scenario including the path that echoes observed
// resources while the clusters are not resolved yet (where lazily decoded specs are copied
// through as bytes).
import { RunFunctionRequest } from '@crossplane-org/function-sdk-typescript';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import type { Json } from '../k8s/object.js';
import * as arb from '../../test/fuzz/arbitraries.js';
import { midHydration } from '../../test/bench/compose-scenario.js';
import { viaOwnCodec, viaSdkCodec } from '../../test/support/codecs.js';
import * as f from '../../test/support/fixtures.js';

const RUNS = Number(process.env['CODEC_RUNS'] ?? process.env['FUZZ_RUNS'] ?? '200');
const TIMEOUT_MS = 60_000 + RUNS * 30;

/** The response through the ts-proto codec, and through ours with laziness off, default and total. */
function bothWays(bytes: Buffer): { reference: Buffer; ours: Buffer[] } {
  const reference = viaSdkCodec(bytes);
  const ours = [{ lazy: false }, {}, { lazyMinBytes: 0 }].map((opts) => viaOwnCodec(bytes, opts));
  return { reference, ours };
}

function expectSame(bytes: Buffer): void {
  const { reference, ours } = bothWays(bytes);
  for (const o of ours) expect(o.equals(reference)).toBe(true);
}

function encode(parts: {
  composite: Json;
  observed: Record<string, Json>;
  required: Record<string, Json[] | undefined>;
  input: unknown;
  desired?: Record<string, Json>;
  context?: Json;
}): Buffer {
  const required: Record<string, { items: { resource: Json }[] }> = {};
  for (const [k, list] of Object.entries(parts.required)) {
    if (list) required[k] = { items: list.map((resource) => ({ resource })) };
  }
  return Buffer.from(
    RunFunctionRequest.encode(
      RunFunctionRequest.fromPartial({
        meta: { tag: 'equivalence' },
        observed: {
          composite: { resource: parts.composite },
          resources: Object.fromEntries(
            Object.entries(parts.observed).map(([k, v]) => [k, { resource: v }]),
          ),
        },
        desired: {
          composite: { resource: { apiVersion: 'x/v1', kind: 'X', status: { earlier: 'step' } } },
          resources: Object.fromEntries(
            Object.entries(parts.desired ?? {}).map(([k, v]) => [k, { resource: v, ready: 1 }]),
          ),
        },
        requiredResources: required,
        ...(parts.context !== undefined ? { context: parts.context } : {}),
        ...(parts.input !== undefined && parts.input !== null && typeof parts.input === 'object'
          ? { input: parts.input as Json }
          : {}),
      }),
    ).finish(),
  );
}

describe(`fast codec ≡ ts-proto codec around runFunction (${RUNS} cases per property)`, () => {
  const xr = fc.oneof(
    arb.modelCacheXR,
    arb.inferenceClusterXR,
    arb.modelDeploymentXR,
    arb.anyJson.map((v) => ({
      kind: 'Anything',
      metadata: { name: 'x', namespace: 'n' },
      spec: { caches: v },
    })),
  );
  it(
    'same bytes for odd requests, with earlier steps’ desired state and context passed through',
    () => {
      fc.assert(
        fc.property(
          xr,
          arb.observed,
          arb.required,
          arb.input,
          arb.observed,
          fc.option(arb.anyJson, { nil: undefined }),
          (composite, observed, required, input, desired, ctx) => {
            const context =
              ctx !== null && typeof ctx === 'object' && !Array.isArray(ctx)
                ? (ctx as Json)
                : undefined;
            expectSame(encode({ composite, observed, required, input, desired, context }));
          },
        ),
        { numRuns: RUNS },
      );
    },
    TIMEOUT_MS,
  );
});

describe('fast codec ≡ ts-proto codec on the fleet scenario', () => {
  it.each([1, 10, 100])('mid-hydration at %i clusters', (n) => {
    const core = midHydration(n);
    expectSame(encode({ ...core, required: core.required }));
  });

  it.each([1, 10, 100])(
    'clusters not resolved yet at %i clusters: observed specs are echoed, copied as bytes',
    (n) => {
      const core = midHydration(n);
      const bytes = encode({ ...core, required: {} });
      expectSame(bytes);
      // The echo (one replica of about 300 bytes per cluster) is most of the response.
      const { reference } = bothWays(bytes);
      expect(reference.length).toBeGreaterThan(n * 250);
    },
  );

  it('the mount step passes earlier steps’ workloads through or amends them', () => {
    const workload = (name: string): Json => ({
      apiVersion: 'kubernetes.m.crossplane.io/v1alpha1',
      kind: 'Object',
      spec: {
        forProvider: {
          manifest: {
            apiVersion: 'apps/v1',
            kind: 'Deployment',
            metadata: { name, namespace: f.NS },
            spec: { template: { spec: { containers: [{ name: 'c', image: 'x'.repeat(400) }] } } },
          },
        },
        providerConfigRef: { kind: 'ClusterProviderConfig', name: 'a' },
      },
    });
    const composite = {
      ...f.modelCache({}, { name: 'app' }),
      kind: 'App',
      spec: { caches: ['llama'] },
    };
    expectSame(
      encode({
        composite,
        observed: {},
        required: {
          'inference-clusters': [f.inferenceClusterXR('a', { storageClassName: 'nfs' })],
          'cache-llama': [f.cacheWithStatus('llama', 'Weights', '/mnt/model', { a: 'Ready' })],
        },
        input: {
          apiVersion: 'modelcache.fn.modelplane.ai/v1alpha1',
          kind: 'MountCaches',
          cachesFrom: 'spec.caches',
        },
        desired: { 'a/server': workload('server'), other: { kind: 'ConfigMap', data: { k: 'v' } } },
        context: { 'apiextensions.crossplane.io/environment': { big: 'y'.repeat(1000) } },
      }),
    );
  });
});
