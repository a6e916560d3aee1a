// What the XRDs say beyond their fields: every field described, RE2-only patterns, no
// status.conditions of their own, identity, names, printer columns, and the Compositions. The
// fields themselves are generated from the zod schemas (test/schema/xrd-from-zod.ts), and
// test/schema/xrd-drift.test.ts fails when a committed XRD is not what generation writes.
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_FETCH_COMMAND,
  DEFAULT_FETCH_IMAGE,
  functionInput,
} from '../function/api/input.js';
import {
  INFERENCE_CLUSTER_XRD,
  MODEL_CACHE_REPLICA_XRD,
  MODEL_CACHE_XRD,
  asArray,
  asNode,
  isNode,
  openApiSchema,
  readYaml,
  type Node,
} from './support/xrd.js';
import {
  API_GROUP,
  CONDITION_CACHES_READY,
  DEFAULT_TTL_SECONDS,
  INPUT_API_VERSION,
  INPUT_KIND,
  KIND_INFERENCE_CLUSTER,
  KIND_MODEL_CACHE,
  KIND_MODEL_CACHE_REPLICA,
  KIND_MODEL_DEPLOYMENT,
} from '../function/constants.js';

const MODEL_DEPLOYMENT_XRD = 'apis/modeldeployments/definition.yaml';

/** The schema node at a path of property names below `node`. */
function propertyAt(node: Node, ...names: string[]): Node {
  let current = node;
  for (const name of names) {
    current = asNode(asNode(current['properties'], `properties of ${name}`)[name], name);
  }
  return current;
}

// ---------------------------------------------------------------------------------------------

/** Every schema node below `node`, with its path. */
function walk(node: Node, path: string, visit: (node: Node, path: string) => void): void {
  visit(node, path);
  if (isNode(node['properties'])) {
    for (const [name, child] of Object.entries(node['properties'])) {
      walk(asNode(child, name), `${path}.${name}`, visit);
    }
  }
  if (isNode(node['items'])) walk(node['items'], `${path}[]`, visit);
  if (isNode(node['additionalProperties'])) walk(node['additionalProperties'], `${path}{}`, visit);
}

describe.each([
  { file: MODEL_CACHE_XRD, kind: KIND_MODEL_CACHE },
  { file: INFERENCE_CLUSTER_XRD, kind: KIND_INFERENCE_CLUSTER },
  { file: MODEL_DEPLOYMENT_XRD, kind: KIND_MODEL_DEPLOYMENT },
  { file: MODEL_CACHE_REPLICA_XRD, kind: KIND_MODEL_CACHE_REPLICA },
])('$file', ({ file }) => {
  const schema = openApiSchema(readYaml(file));

  it('describes every field and object for kubectl explain', () => {
    const undocumented: string[] = [];
    walk(schema, '', (node, path) => {
      const d = node['description'];
      if (typeof d !== 'string' || d.trim().length < 10) undocumented.push(path || '<root>');
    });
    expect(undocumented).toEqual([]);
  });

  it('uses only RE2-compatible patterns (no lookarounds or backreferences)', () => {
    const bad: string[] = [];
    walk(schema, '', (node, path) => {
      const p = node['pattern'];
      if (typeof p !== 'string') return;
      if (/\(\?[=!<]|\\[1-9]|\\k</.test(p)) bad.push(`${path}: ${p}`);
      // Also a valid pattern at all.
      new RegExp(p, 'u');
    });
    expect(bad).toEqual([]);
  });

  it('declares no status.conditions (Crossplane adds them)', () => {
    expect(Object.keys(asNode(propertyAt(schema, 'status')['properties'], 'status'))).not.toContain(
      'conditions',
    );
  });
});

/** What the metadata tests compare of an XRD: identity, scope, names, its version, columns. */
function xrdMetadata(path: string): Record<string, unknown> & { columns: unknown } {
  const xrd = readYaml(path);
  const spec = asNode(xrd['spec'], 'spec');
  const version = asNode(asArray(spec['versions'], 'versions')[0], 'v');
  return {
    apiVersion: xrd['apiVersion'],
    kind: xrd['kind'],
    name: asNode(xrd['metadata'], 'metadata')['name'],
    scope: spec['scope'],
    group: spec['group'],
    names: spec['names'],
    versions: asArray(spec['versions'], 'versions').length,
    version: [version['name'], version['served'], version['referenceable']],
    columns: version['additionalPrinterColumns'],
  };
}

describe('XRD metadata', () => {
  it('ModelCache: namespaced, names, version, printer columns', () => {
    expect(xrdMetadata(MODEL_CACHE_XRD)).toEqual({
      apiVersion: 'apiextensions.crossplane.io/v2',
      kind: 'CompositeResourceDefinition',
      name: `modelcaches.${API_GROUP}`,
      scope: 'Namespaced',
      group: API_GROUP,
      names: {
        kind: KIND_MODEL_CACHE,
        plural: 'modelcaches',
        singular: 'modelcache',
        shortNames: ['mc'],
        categories: ['modelplane'],
      },
      versions: 1,
      version: ['v1alpha1', true, true],
      // Crossplane appends SYNCED, READY, COMPOSITION, COMPOSITIONREVISION and AGE itself
      // (internal/xcrd CompositeResourcePrinterColumns), hence CLUSTERS-READY, not READY.
      columns: [
        {
          name: 'KIND',
          type: 'string',
          jsonPath: '.spec.artifact.kind',
          description: 'What is staged (Weights, Tokenizer or Bytes).',
        },
        {
          name: 'SOURCE',
          type: 'string',
          jsonPath: '.status.source',
          description: 'Where the artifact comes from, in one line.',
        },
        {
          name: 'MOUNT',
          type: 'string',
          jsonPath: '.status.mountPath',
          priority: 1,
          description: 'Path at which consuming pods mount the staged artifact.',
        },
        {
          name: 'CLUSTERS-READY',
          type: 'string',
          jsonPath: '.status.summary.ready',
          description: 'clusters Ready / matched',
        },
      ],
    });
  });

  it('ModelDeployment: namespaced, names, version, printer columns', () => {
    const m = xrdMetadata(MODEL_DEPLOYMENT_XRD);
    expect({
      ...m,
      columns: asArray(m.columns, 'columns').map((c) => {
        const col = asNode(c, 'column');
        return [col['name'], col['type'], col['jsonPath']];
      }),
    }).toEqual({
      apiVersion: 'apiextensions.crossplane.io/v2',
      kind: 'CompositeResourceDefinition',
      name: `modeldeployments.${API_GROUP}`,
      scope: 'Namespaced',
      group: API_GROUP,
      names: {
        kind: KIND_MODEL_DEPLOYMENT,
        plural: 'modeldeployments',
        singular: 'modeldeployment',
        shortNames: ['md'],
        categories: ['modelplane'],
      },
      versions: 1,
      version: ['v1alpha1', true, true],
      // Crossplane appends SYNCED, READY, COMPOSITION, COMPOSITIONREVISION and AGE itself.
      columns: [
        ['STRATEGY', 'string', '.spec.topology.strategy'],
        ['REPLICAS', 'integer', '.spec.replicas'],
        ['PLACED', 'integer', '.status.replicas.placed'],
        [
          'CACHES-READY',
          'string',
          `.status.conditions[?(@.type=='${CONDITION_CACHES_READY}')].status`,
        ],
      ],
    });
  });

  it('InferenceCluster: cluster-scoped, names, version, printer columns', () => {
    const m = xrdMetadata(INFERENCE_CLUSTER_XRD);
    expect({
      ...m,
      columns: asArray(m.columns, 'columns').map((c) => {
        const col = asNode(c, 'column');
        return [col['name'], col['type'], col['jsonPath']];
      }),
    }).toEqual({
      apiVersion: 'apiextensions.crossplane.io/v2',
      kind: 'CompositeResourceDefinition',
      name: `inferenceclusters.${API_GROUP}`,
      scope: 'Cluster',
      group: API_GROUP,
      names: {
        kind: KIND_INFERENCE_CLUSTER,
        plural: 'inferenceclusters',
        singular: 'inferencecluster',
        shortNames: ['icl'],
        categories: ['modelplane'],
      },
      versions: 1,
      version: ['v1alpha1', true, true],
      columns: [
        ['PROVIDERCONFIG', 'string', '.spec.providerConfigRef.name'],
        ['STORAGECLASS', 'string', '.status.storage.storageClassName'],
        ['CLASS-FOUND', 'boolean', '.status.storage.classExists'],
      ],
    });
  });

  it('ModelCacheReplica: namespaced, names, version, printer columns', () => {
    const m = xrdMetadata(MODEL_CACHE_REPLICA_XRD);
    expect({
      ...m,
      columns: asArray(m.columns, 'columns').map((c) => {
        const col = asNode(c, 'column');
        return [col['name'], col['type'], col['jsonPath']];
      }),
    }).toEqual({
      apiVersion: 'apiextensions.crossplane.io/v2',
      kind: 'CompositeResourceDefinition',
      name: `modelcachereplicas.${API_GROUP}`,
      scope: 'Namespaced',
      group: API_GROUP,
      names: {
        kind: KIND_MODEL_CACHE_REPLICA,
        plural: 'modelcachereplicas',
        singular: 'modelcachereplica',
        shortNames: ['mcr'],
        categories: ['modelplane'],
      },
      versions: 1,
      version: ['v1alpha1', true, true],
      columns: [
        ['CACHE', 'string', '.spec.cacheRef.name'],
        ['CLUSTER', 'string', '.spec.cluster'],
        ['PHASE', 'string', '.status.phase'],
        ['REASON', 'string', '.status.reason'],
        ['PROGRESS', 'integer', '.status.progress.bytesDone'],
        ['REVISION', 'string', '.status.resolvedRevision'],
      ],
    });
  });
});

describe('Compositions', () => {
  // JSON is YAML, so the same reader serves.
  const packageVersion = readYaml('package.json')['version'];
  const fetchDefaults = {
    imagePullPolicy: 'IfNotPresent',
    command: DEFAULT_FETCH_COMMAND,
    activeDeadlineSeconds: 21_600,
    backoffLimit: 3,
    resources: { requests: { cpu: '500m', memory: '512Mi' }, limits: { cpu: '2', memory: '2Gi' } },
  };

  it.each([
    {
      reason: 'ModelCache composition',
      file: 'compositions/modelcache.yaml',
      xrd: MODEL_CACHE_XRD,
      kind: KIND_MODEL_CACHE,
      name: 'modelcache',
    },
    {
      reason: 'InferenceCluster composition',
      file: 'compositions/inferencecluster.yaml',
      xrd: INFERENCE_CLUSTER_XRD,
      kind: KIND_INFERENCE_CLUSTER,
      name: 'inferencecluster',
    },
    {
      reason: 'ModelDeployment composition',
      file: 'compositions/modeldeployment.yaml',
      xrd: MODEL_DEPLOYMENT_XRD,
      kind: KIND_MODEL_DEPLOYMENT,
      name: 'modeldeployment',
    },
    {
      reason: 'ModelCacheReplica composition',
      file: 'compositions/modelcachereplica.yaml',
      xrd: MODEL_CACHE_REPLICA_XRD,
      kind: KIND_MODEL_CACHE_REPLICA,
      name: 'modelcachereplica',
    },
  ])('$reason: one pipeline step whose input parses', ({ file, xrd, kind, name }) => {
    const composition = readYaml(file);
    const spec = asNode(composition['spec'], 'spec');
    const steps = asArray(spec['pipeline'], 'pipeline').map((s) => asNode(s, 'step'));
    const defaultRef = asNode(
      asNode(readYaml(xrd)['spec'], 'spec')['defaultCompositionRef'],
      'ref',
    );
    expect({
      apiVersion: composition['apiVersion'],
      kind: composition['kind'],
      name: asNode(composition['metadata'], 'metadata')['name'],
      xrdDefault: defaultRef['name'],
      compositeTypeRef: spec['compositeTypeRef'],
      mode: spec['mode'],
      steps: steps.map((s) => [s['step'], s['functionRef']]),
    }).toEqual({
      apiVersion: 'apiextensions.crossplane.io/v1',
      kind: 'Composition',
      name,
      xrdDefault: name,
      compositeTypeRef: { apiVersion: `${API_GROUP}/v1alpha1`, kind },
      mode: 'Pipeline',
      steps: [['compose', { name: 'function-modelcache' }]],
    });
    const input = functionInput.safeParse(steps[0]?.['input']);
    expect(input.error).toBeUndefined();
    expect(input.data).toEqual({
      apiVersion: INPUT_API_VERSION,
      kind: INPUT_KIND,
      ttlSeconds: DEFAULT_TTL_SECONDS,
      fetch: { image: DEFAULT_FETCH_IMAGE, ...fetchDefaults },
      inferenceClusterNamespace: 'crossplane-system',
    });
    // The Job image is the Function's own release: its tag follows the package version.
    expect(input.data?.fetch.image.endsWith(`:v${String(packageVersion)}`)).toBe(true);
  });

  it('the input is stated explicitly, not left to defaults', () => {
    const inputs = [
      'compositions/modelcache.yaml',
      'compositions/inferencecluster.yaml',
      'compositions/modeldeployment.yaml',
      'compositions/modelcachereplica.yaml',
    ].map((file) => {
      const steps = asArray(asNode(readYaml(file)['spec'], 'spec')['pipeline'], 'pipeline');
      const input = asNode(asNode(steps[0], 'step')['input'], 'input');
      return {
        ttlSeconds: input['ttlSeconds'],
        image: isNode(input['fetch']) ? input['fetch']['image'] : undefined,
        namespace: input['inferenceClusterNamespace'],
      };
    });
    expect(inputs).toEqual([
      // A ModelCache composes only replicas: only the TTL applies.
      { ttlSeconds: 60, image: undefined, namespace: undefined },
      { ttlSeconds: 60, image: DEFAULT_FETCH_IMAGE, namespace: 'crossplane-system' },
      // ModelDeployment runs no Job and composes nothing for InferenceClusters: only the TTL applies.
      { ttlSeconds: 60, image: undefined, namespace: undefined },
      // The replica runs the prefetch Job: its image is the Function's own.
      { ttlSeconds: 60, image: DEFAULT_FETCH_IMAGE, namespace: undefined },
    ]);
  });
});
