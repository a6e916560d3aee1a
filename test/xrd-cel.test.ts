// Evaluates every x-kubernetes-validations rule of the XRDs with a real CEL implementation, the
// way the API server does (test/support/cel-admission.ts): defaults applied first, the OpenAPI
// checks, then each rule at its own node with `self` (and `oldSelf` for transition rules) bound
// to the value there, nodes absent from the object skipped, and CEL skipped when a "blocking"
// schema error was found (Kubernetes' customresource strategy does the same). Each case's verdict
// is checked against zod too, so the XRD and the Function reject the same objects.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { inferenceClusterSpec, inferenceClusterStatus } from '../function/api/inferencecluster.js';
import { OCI_REF_PATTERN, modelCacheSpec } from '../function/api/modelcache.js';
import { modelDeploymentSpec } from '../function/api/modeldeployment.js';
import {
  NOT_CHECKED,
  admit,
  applyDefaults,
  collectRules,
  properties,
  readXrdSchema,
  typedEnv,
} from './support/cel-admission.js';
import { type Node } from './support/xrd.js';

// ---------------------------------------------------------------------------------------------

const MODEL_CACHE = readXrdSchema('apis/modelcaches/definition.yaml');
const INFERENCE_CLUSTER = readXrdSchema('apis/inferenceclusters/definition.yaml');
const MC_SPEC = properties(MODEL_CACHE)['spec'] as Node;
const MC_STATUS = properties(MODEL_CACHE)['status'] as Node;
const IC_SPEC = properties(INFERENCE_CLUSTER)['spec'] as Node;
const IC_STATUS = properties(INFERENCE_CLUSTER)['status'] as Node;
const MODEL_DEPLOYMENT = readXrdSchema('apis/modeldeployments/definition.yaml');
const MD_SPEC = properties(MODEL_DEPLOYMENT)['spec'] as Node;
const MD_STATUS = properties(MODEL_DEPLOYMENT)['status'] as Node;
const REPLICA = readXrdSchema('apis/modelcachereplicas/definition.yaml');
const REPLICA_SPEC = properties(REPLICA)['spec'] as Node;
const REPLICA_STATUS = properties(REPLICA)['status'] as Node;

/** A status and a composed resource exactly as the Function wrote them in a golden. */
function goldenOf(name: string): { status: unknown; resources: Record<string, unknown> } {
  return JSON.parse(readFileSync(`test/golden/${name}.json`, 'utf8')) as {
    status: unknown;
    resources: Record<string, unknown>;
  };
}

const ALL_RULES = [
  ...collectRules(MODEL_CACHE, 'ModelCache'),
  ...collectRules(INFERENCE_CLUSTER, 'InferenceCluster'),
  ...collectRules(MODEL_DEPLOYMENT, 'ModelDeployment'),
];

const MSG = {
  exactlyOne:
    'spec.artifact.source: Invalid value: "object": exactly one of huggingFace, s3, http, oci, inline, configMap must be set',
  weightsLocal:
    'spec.artifact.source: Forbidden: inline and configMap sources are for Tokenizer and Bytes artifacts, not Weights: weights are large and must come from a remote source (huggingFace, s3, http or oci)',
  sizeGiB:
    'spec.storage.pvc.sizeGiB: Required value: storage.pvc.sizeGiB is required for huggingFace, s3, http and oci sources: the volume is sized before the download starts',
  existingPVC:
    'spec.storage.existingPVC: Required value: is required when storage.backend is ExistingPVC',
  immutable:
    'spec.artifact: Invalid value: "object": spec.artifact is immutable: create a new ModelCache for a new artifact or version, or set the annotation modelplane.ai/refetch to a new value to re-stage the same one',
  fileNames:
    'spec.artifact.source.inline.files: Invalid value: "object": file names must be relative paths of at most 1024 characters that do not start with "/" or ".." and have no empty, "." or ".." segments',
  inlineTotal:
    'spec.artifact.source.inline.files: Invalid value: "object": inline files must total at most 262144 bytes; use a ConfigMap or a remote source',
  labelKeys:
    'spec.clusterSelector.matchLabels: Invalid value: "object": label keys must be 1-317 characters',
  segments: (path: string) =>
    `${path}: Invalid value: "string": must not contain empty, "." or ".." segments`,
  kinds: (value: string) =>
    `spec.artifact.kind: Unsupported value: "${value}": supported values: "Weights", "Tokenizer", "Bytes"`,
  notChecked: NOT_CHECKED,
  standalone:
    'spec.topology.pipeline: Invalid value: "object": must be 1 for Standalone; use strategy TensorPipeline for a multi-pod gang',
  gangWeights:
    'spec.caches: Invalid value: "object": a gang (topology.pipeline > 1) needs at least one cache of kind Weights: every pod of a gang must load identical weights. Declare it on the reference (caches[].kind: Weights): admission sees only the reference, and the Function checks it against the cache',
  cacheOnce: 'spec.caches: Invalid value: "array": each cache may be referenced once',
  resourceNames: (field: 'requests' | 'limits') =>
    `spec.engine.resources.${field}: Invalid value: "object": resource names must be 1-253 characters`,
};

describe('the CEL rules of the XRDs', () => {
  it('are exactly these, each at its node', () => {
    expect(ALL_RULES.map((r) => [r.path, r.message, r.fieldPath, r.reason])).toEqual([
      [
        'ModelCache.spec',
        'storage.pvc.sizeGiB is required for huggingFace, s3, http and oci sources: the volume is sized before the download starts',
        '.storage.pvc.sizeGiB',
        'FieldValueRequired',
      ],
      [
        'ModelCache.spec.artifact',
        'spec.artifact is immutable: create a new ModelCache for a new artifact or version, or set the annotation modelplane.ai/refetch to a new value to re-stage the same one',
        undefined,
        undefined,
      ],
      [
        'ModelCache.spec.artifact',
        'inline and configMap sources are for Tokenizer and Bytes artifacts, not Weights: weights are large and must come from a remote source (huggingFace, s3, http or oci)',
        '.source',
        'FieldValueForbidden',
      ],
      [
        'ModelCache.spec.artifact.source',
        'exactly one of huggingFace, s3, http, oci, inline, configMap must be set',
        undefined,
        undefined,
      ],
      [
        'ModelCache.spec.artifact.source.http.path',
        'must not contain empty, "." or ".." segments',
        undefined,
        undefined,
      ],
      [
        'ModelCache.spec.artifact.source.oci',
        'is for the image layout (a directory of the image filesystem), not artifact',
        '.directory',
        undefined,
      ],
      [
        'ModelCache.spec.artifact.source.oci.directory',
        'must not contain empty, "." or ".." segments',
        undefined,
        undefined,
      ],
      [
        'ModelCache.spec.artifact.source.inline',
        'inline files must total at most 262144 bytes; use a ConfigMap or a remote source',
        '.files',
        undefined,
      ],
      [
        'ModelCache.spec.artifact.source.inline.files',
        'file names must be relative paths of at most 1024 characters that do not start with "/" or ".." and have no empty, "." or ".." segments',
        undefined,
        undefined,
      ],
      [
        'ModelCache.spec.mount.path',
        'must not contain empty, "." or ".." segments',
        undefined,
        undefined,
      ],
      [
        'ModelCache.spec.storage',
        'is required when storage.backend is ExistingPVC',
        '.existingPVC',
        'FieldValueRequired',
      ],
      [
        'ModelCache.spec.clusterSelector.matchLabels',
        'label keys must be 1-317 characters',
        undefined,
        undefined,
      ],
      [
        'ModelDeployment.spec',
        'must be 1 for Standalone; use strategy TensorPipeline for a multi-pod gang',
        '.topology.pipeline',
        undefined,
      ],
      [
        'ModelDeployment.spec',
        'a gang (topology.pipeline > 1) needs at least one cache of kind Weights: every pod of a gang must load identical weights. Declare it on the reference (caches[].kind: Weights): admission sees only the reference, and the Function checks it against the cache',
        '.caches',
        undefined,
      ],
      ['ModelDeployment.spec.caches', 'each cache may be referenced once', undefined, undefined],
      [
        'ModelDeployment.spec.clusterSelector.matchLabels',
        'label keys must be 1-317 characters',
        undefined,
        undefined,
      ],
      [
        'ModelDeployment.spec.engine.resources.requests',
        'resource names must be 1-253 characters',
        undefined,
        undefined,
      ],
      [
        'ModelDeployment.spec.engine.resources.limits',
        'resource names must be 1-253 characters',
        undefined,
        undefined,
      ],
    ]);
  });

  it.each(ALL_RULES.map((r) => ({ where: `${r.path}: ${r.message}`, rule: r })))(
    'type-checks to bool against the declared schema: $where',
    ({ rule }) => {
      const checked = typedEnv(rule.node).check(rule.rule);
      expect({ valid: checked.valid, type: checked.type, error: checked.error?.message }).toEqual({
        valid: true,
        type: 'bool',
        error: undefined,
      });
    },
  );

  it('a typo in a rule fails the type check', () => {
    const typo = typedEnv(MC_SPEC).check("self.storage.backnd == 'PVC'");
    expect({ valid: typo.valid, error: typo.error?.summary }).toEqual({
      valid: false,
      error: 'No such key: backnd',
    });
    const wrongType = typedEnv(MC_SPEC).check('self.storage.pvc.sizeGiB == "1"');
    expect(wrongType.valid).toBe(false);
  });
});

// ---------------------------------------------------------------------------------------------

interface Case {
  reason: string;
  /** The spec (or status) as the user writes it. */
  object: unknown;
  /** For updates: the stored object. */
  old?: unknown;
  expectValid: boolean;
  /** Every error the API server reports, in order. */
  messages: string[];
}

const hf = (extra: Node = {}): Node => ({ repo: 'meta-llama/Llama-3.1-8B-Instruct', ...extra });
const weights = (source: Node, rest: Node = { storage: { pvc: { sizeGiB: 40 } } }): Node => ({
  artifact: { kind: 'Weights', source },
  ...rest,
});
const tokenizer = (source: Node, rest: Node = {}): Node => ({
  artifact: { kind: 'Tokenizer', source },
  ...rest,
});
const files = (f: Record<string, string>): Node => ({ inline: { files: f } });

const modelCacheCases: Case[] = [
  {
    reason: 'Hugging Face weights with a size',
    object: weights({ huggingFace: hf() }),
    expectValid: true,
    messages: [],
  },
  {
    reason: 'Hugging Face with every option',
    object: weights(
      {
        huggingFace: hf({
          revision: '0e9e39f249a16976918f6564b8830bc894c89659',
          include: ['*.safetensors', '*.json'],
          exclude: ['original/*'],
          secretRef: { name: 'hf-token' },
          endpoint: 'https://hf-mirror.internal',
        }),
      },
      {
        mount: { path: '/mnt/models/llama' },
        storage: { backend: 'PVC', pvc: { sizeGiB: 40, storageClassName: 'efs-rwx' } },
        clusterSelector: { matchLabels: { 'modelplane.ai/gpu': 'h100', region: 'us-east' } },
        replication: 'AllMatchingClusters',
      },
    ),
    expectValid: true,
    messages: [],
  },
  {
    reason: 'S3 weights with credentials and a custom endpoint',
    object: weights({
      s3: {
        uri: 's3://models/llama-3.1-8b/',
        region: 'us-east-1',
        endpoint: 'https://minio.storage.svc:9000',
        secretRef: { name: 's3-creds' },
      },
    }),
    expectValid: true,
    messages: [],
  },
  {
    reason: 'HTTP bytes with a checksum and a relative path',
    object: {
      artifact: {
        kind: 'Bytes',
        source: {
          http: {
            url: 'https://example.com/m/model.gguf?download=1',
            sha256: 'a'.repeat(64),
            path: 'gguf/model.gguf',
            secretRef: { name: 'token', key: 'bearer' },
          },
        },
      },
      storage: { pvc: { sizeGiB: 8 } },
    },
    expectValid: true,
    messages: [],
  },
  {
    reason: 'OCI artifact by tag, anonymous',
    object: weights({ oci: { ref: 'ghcr.io/org/llama-3.1-8b:v1' } }),
    expectValid: true,
    messages: [],
  },
  {
    reason: 'OCI modelcar image by tag and digest with every option',
    object: weights({
      oci: {
        ref: `registry.internal:5000/models/llama/8b:v1@sha256:${'a'.repeat(64)}`,
        secretRef: { name: 'regcred' },
        layout: 'image',
        directory: '/models/llama',
        include: ['*.safetensors'],
        exclude: ['original/*'],
        plainHTTP: true,
      },
    }),
    expectValid: true,
    messages: [],
  },
  {
    reason: 'OCI reference without a registry host (Docker Hub short names are not guessed)',
    object: weights({ oci: { ref: 'library/ubuntu:22.04' } }),
    expectValid: false,
    messages: [
      `spec.artifact.source.oci.ref: Invalid value: "library/ubuntu:22.04": spec.artifact.source.oci.ref in body should match '${OCI_REF_PATTERN}'`,
    ],
  },
  {
    reason: 'OCI reference with neither tag nor digest',
    object: weights({ oci: { ref: 'ghcr.io/org/model' } }),
    expectValid: false,
    messages: [
      `spec.artifact.source.oci.ref: Invalid value: "ghcr.io/org/model": spec.artifact.source.oci.ref in body should match '${OCI_REF_PATTERN}'`,
    ],
  },
  {
    reason: 'OCI directory with the artifact layout',
    object: weights({
      oci: { ref: 'ghcr.io/org/model:v1', layout: 'artifact', directory: '/models' },
    }),
    expectValid: false,
    messages: [
      'spec.artifact.source.oci.directory: Invalid value: "object": is for the image layout (a directory of the image filesystem), not artifact',
    ],
  },
  {
    reason: "OCI directory with a '..' segment",
    object: weights({ oci: { ref: 'ghcr.io/org/model:v1', directory: '/models/../etc' } }),
    expectValid: false,
    messages: [MSG.segments('spec.artifact.source.oci.directory')],
  },
  {
    reason: 'OCI weights without a size',
    object: weights({ oci: { ref: 'ghcr.io/org/model:v1' } }, {}),
    expectValid: false,
    messages: [MSG.sizeGiB],
  },
  {
    reason: 'OCI and Hugging Face both set',
    object: weights({ oci: { ref: 'ghcr.io/org/model:v1' }, huggingFace: hf() }),
    expectValid: false,
    messages: [MSG.exactlyOne],
  },
  {
    reason: 'two sources set',
    object: weights({ huggingFace: hf(), s3: { uri: 's3://models/x/' } }),
    expectValid: false,
    messages: [MSG.exactlyOne],
  },
  {
    reason: 'no source set',
    object: weights({}),
    expectValid: false,
    messages: [MSG.exactlyOne],
  },
  {
    reason: 'a misspelt source member fails strict field validation (zod: no source)',
    object: weights({ huggingface: hf() }),
    expectValid: false,
    messages: ['strict decoding error: unknown field "spec.artifact.source.huggingface"'],
  },
  {
    reason: 'inline Weights: weights must come from a remote source',
    object: weights(files({ 'model.bin': 'x' }), {}),
    expectValid: false,
    messages: [MSG.weightsLocal],
  },
  {
    reason: 'configMap Weights',
    object: weights({ configMap: { name: 'weights' } }, {}),
    expectValid: false,
    messages: [MSG.weightsLocal],
  },
  {
    reason: 'inline Tokenizer needs no size',
    object: tokenizer(files({ 'tokenizer_config.json': '{}', 'templates/chat.jinja': '{{ x }}' })),
    expectValid: true,
    messages: [],
  },
  {
    reason: 'configMap Bytes with selected keys',
    object: {
      artifact: {
        kind: 'Bytes',
        source: { configMap: { name: 'prompts', items: ['system.txt'] } },
      },
    },
    expectValid: true,
    messages: [],
  },
  {
    reason: 'Hugging Face without sizeGiB',
    object: weights({ huggingFace: hf() }, {}),
    expectValid: false,
    messages: [MSG.sizeGiB],
  },
  {
    reason: 'S3 with a pvc block but no sizeGiB',
    object: weights(
      { s3: { uri: 's3://models/x/' } },
      { storage: { pvc: { storageClassName: 'efs' } } },
    ),
    expectValid: false,
    messages: [MSG.sizeGiB],
  },
  {
    reason: 'ExistingPVC needs no sizeGiB',
    object: weights(
      { huggingFace: hf() },
      { storage: { backend: 'ExistingPVC', existingPVC: { claimName: 'llama-weights' } } },
    ),
    expectValid: true,
    messages: [],
  },
  {
    reason: 'ExistingPVC without existingPVC',
    object: weights({ huggingFace: hf() }, { storage: { backend: 'ExistingPVC' } }),
    expectValid: false,
    messages: [MSG.existingPVC],
  },
  {
    reason: "inline key '../x' escapes the volume",
    object: tokenizer(files({ '../x': 'a' })),
    expectValid: false,
    messages: [MSG.fileNames],
  },
  {
    reason:
      "issue13 #13: inline key '..data/x' (Kubernetes refuses volume item paths starting with '..')",
    object: tokenizer(files({ '..data/x': 'a' })),
    expectValid: false,
    messages: [MSG.fileNames],
  },
  {
    reason: "inline key '.hidden' is a valid item path",
    object: tokenizer(files({ '.hidden': 'a' })),
    expectValid: true,
    messages: [],
  },
  {
    reason:
      "issue13 #13: configMap item '..data' (Kubernetes refuses volume item paths starting with '..')",
    object: {
      artifact: { kind: 'Bytes', source: { configMap: { name: 'p', items: ['..data'] } } },
    },
    expectValid: false,
    messages: [
      'spec.artifact.source.configMap.items[0]: Invalid value: "..data": spec.artifact.source.configMap.items[0] in body should match \'^([-_a-zA-Z0-9]|\\.[-_a-zA-Z0-9])[-._a-zA-Z0-9]*$\'',
    ],
  },
  {
    reason: "issue13 #13: configMap item '.'",
    object: { artifact: { kind: 'Bytes', source: { configMap: { name: 'p', items: ['.'] } } } },
    expectValid: false,
    messages: [
      'spec.artifact.source.configMap.items[0]: Invalid value: ".": spec.artifact.source.configMap.items[0] in body should match \'^([-_a-zA-Z0-9]|\\.[-_a-zA-Z0-9])[-._a-zA-Z0-9]*$\'',
    ],
  },
  {
    reason: "configMap item '.env' is a valid item path",
    object: { artifact: { kind: 'Bytes', source: { configMap: { name: 'p', items: ['.env'] } } } },
    expectValid: true,
    messages: [],
  },
  {
    reason: 'inline key absolute',
    object: tokenizer(files({ '/etc/passwd': 'a' })),
    expectValid: false,
    messages: [MSG.fileNames],
  },
  {
    reason: 'inline key with an empty segment',
    object: tokenizer(files({ 'a//b': 'a', ok: 'b' })),
    expectValid: false,
    messages: [MSG.fileNames],
  },
  {
    reason: "inline key with a '.' segment",
    object: tokenizer(files({ 'dir/./x': 'a' })),
    expectValid: false,
    messages: [MSG.fileNames],
  },
  {
    reason: 'inline key over 1024 characters',
    object: tokenizer(files({ ['d/'.repeat(512) + 'x']: 'a' })),
    expectValid: false,
    messages: [MSG.fileNames],
  },
  {
    reason: "http.path with '..'",
    object: weights({ http: { url: 'https://example.com/m', path: 'a/../../etc' } }),
    expectValid: false,
    messages: [MSG.segments('spec.artifact.source.http.path')],
  },
  {
    reason: 'http.path absolute: pattern and segment rule both report',
    object: weights({ http: { url: 'https://example.com/m', path: '/abs' } }),
    expectValid: false,
    messages: [
      `spec.artifact.source.http.path: Invalid value: "/abs": spec.artifact.source.http.path in body should match '^[^/]'`,
      MSG.segments('spec.artifact.source.http.path'),
    ],
  },
  {
    reason: "mount path 'rel/x' is not absolute",
    object: weights(
      { huggingFace: hf() },
      { mount: { path: 'rel/x' }, storage: { pvc: { sizeGiB: 1 } } },
    ),
    expectValid: false,
    messages: [
      `spec.mount.path: Invalid value: "rel/x": spec.mount.path in body should match '^/'`,
    ],
  },
  {
    reason: "mount path '/a/../b'",
    object: weights(
      { huggingFace: hf() },
      { mount: { path: '/a/../b' }, storage: { pvc: { sizeGiB: 1 } } },
    ),
    expectValid: false,
    messages: [MSG.segments('spec.mount.path')],
  },
  {
    reason: "mount path '/' (the cache would hide the container's root)",
    object: weights(
      { huggingFace: hf() },
      { mount: { path: '/' }, storage: { pvc: { sizeGiB: 1 } } },
    ),
    expectValid: false,
    messages: [MSG.segments('spec.mount.path')],
  },
  {
    reason: 'mount path with a trailing slash',
    object: weights(
      { huggingFace: hf() },
      { mount: { path: '/mnt/model/' }, storage: { pvc: { sizeGiB: 1 } } },
    ),
    expectValid: false,
    messages: [MSG.segments('spec.mount.path')],
  },
  {
    reason: 'inline files totalling one byte over 256 KiB',
    object: tokenizer(files({ a: 'x'.repeat(131_072), b: 'y'.repeat(131_073) })),
    expectValid: false,
    messages: [MSG.inlineTotal],
  },
  {
    reason: 'inline files totalling exactly 256 KiB',
    object: tokenizer(files({ a: 'x'.repeat(131_072), b: 'y'.repeat(131_072) })),
    expectValid: true,
    messages: [],
  },
  {
    reason: 'inline total counts UTF-8 bytes, not characters (2-byte é)',
    object: tokenizer(files({ a: 'é'.repeat(131_073) })),
    expectValid: false,
    messages: [MSG.inlineTotal],
  },
  {
    reason: 'inline with 65 files',
    object: tokenizer(
      files(Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`f${i}.txt`, 'x']))),
    ),
    expectValid: false,
    messages: [
      'spec.artifact.source.inline.files: Too many: 65: must have at most 64 items',
      MSG.notChecked,
    ],
  },
  {
    reason: 'inline with no files',
    object: tokenizer(files({})),
    expectValid: false,
    messages: [
      'spec.artifact.source.inline.files: Invalid value: 0: spec.artifact.source.inline.files in body should have at least 1 properties',
    ],
  },
  {
    reason: 'v0.2 kind Adapter: the enum rejects it and CEL is not run',
    object: { artifact: { kind: 'Adapter', source: { huggingFace: hf() } } },
    expectValid: false,
    messages: [MSG.kinds('Adapter'), MSG.notChecked],
  },
  {
    reason: 'v0.2 kind Engine',
    object: { artifact: { kind: 'Engine', source: { huggingFace: hf() } } },
    expectValid: false,
    messages: [MSG.kinds('Engine'), MSG.notChecked],
  },
  {
    reason: 'sizeGiB 0',
    object: weights({ huggingFace: hf() }, { storage: { pvc: { sizeGiB: 0 } } }),
    expectValid: false,
    messages: [
      'spec.storage.pvc.sizeGiB: Invalid value: 0: spec.storage.pvc.sizeGiB in body should be greater than or equal to 1',
    ],
  },
  {
    reason: 'sizeGiB not an integer',
    object: weights({ huggingFace: hf() }, { storage: { pvc: { sizeGiB: 1.5 } } }),
    expectValid: false,
    messages: [
      'spec.storage.pvc.sizeGiB: Invalid value: "number": spec.storage.pvc.sizeGiB in body must be of type integer: "number"',
      MSG.notChecked,
    ],
  },
  {
    reason: 'Hugging Face repo with two slashes',
    object: weights({ huggingFace: hf({ repo: 'a/b/c' }) }),
    expectValid: false,
    messages: [
      `spec.artifact.source.huggingFace.repo: Invalid value: "a/b/c": spec.artifact.source.huggingFace.repo in body should match '^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$'`,
    ],
  },
  {
    reason: 'S3 uri that is not s3://',
    object: weights({ s3: { uri: 'https://bucket.s3.amazonaws.com/x' } }),
    expectValid: false,
    messages: [
      `spec.artifact.source.s3.uri: Invalid value: "https://bucket.s3.amazonaws.com/x": spec.artifact.source.s3.uri in body should match '^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$'`,
    ],
  },
  {
    reason: 'uppercase sha256',
    object: weights({ http: { url: 'https://e.com/f', sha256: 'A'.repeat(64) } }),
    expectValid: false,
    messages: [
      `spec.artifact.source.http.sha256: Invalid value: "${'A'.repeat(64)}": spec.artifact.source.http.sha256 in body should match '^[a-f0-9]{64}$'`,
    ],
  },
  {
    reason: 'label key over 317 characters',
    object: weights(
      { huggingFace: hf() },
      {
        storage: { pvc: { sizeGiB: 1 } },
        clusterSelector: { matchLabels: { ['k'.repeat(318)]: 'v' } },
      },
    ),
    expectValid: false,
    messages: [MSG.labelKeys],
  },
  {
    reason: 'label value over 63 characters',
    object: weights(
      { huggingFace: hf() },
      {
        storage: { pvc: { sizeGiB: 1 } },
        clusterSelector: { matchLabels: { team: 'v'.repeat(64) } },
      },
    ),
    expectValid: false,
    messages: [
      'spec.clusterSelector.matchLabels.team: Too long: may not be more than 63 bytes',
      MSG.notChecked,
    ],
  },
  {
    reason: 'unknown replication',
    object: weights(
      { huggingFace: hf() },
      {
        storage: { pvc: { sizeGiB: 1 } },
        replication: 'OneCluster',
      },
    ),
    expectValid: false,
    messages: [
      'spec.replication: Unsupported value: "OneCluster": supported values: "AllMatchingClusters"',
      MSG.notChecked,
    ],
  },
  {
    reason: 'no artifact',
    object: { storage: { pvc: { sizeGiB: 1 } } },
    expectValid: false,
    messages: ['spec.artifact: Required value', MSG.notChecked],
  },
  {
    reason: 'Hugging Face without a repo',
    object: weights({ huggingFace: { revision: 'main' } }),
    expectValid: false,
    messages: ['spec.artifact.source.huggingFace.repo: Required value', MSG.notChecked],
  },
];

const transitionCases: Case[] = [
  {
    reason: 'update with the artifact unchanged',
    old: weights({ huggingFace: hf() }),
    object: weights({ huggingFace: hf() }),
    expectValid: true,
    messages: [],
  },
  {
    reason: 'update of fields outside the artifact',
    old: weights({ huggingFace: hf() }),
    object: weights(
      { huggingFace: hf() },
      {
        storage: { pvc: { sizeGiB: 80 } },
        clusterSelector: { matchLabels: { region: 'eu' } },
      },
    ),
    expectValid: true,
    messages: [],
  },
  {
    reason: 'update spelling out a default: still the same artifact',
    old: weights({ huggingFace: hf() }),
    object: weights({ huggingFace: hf({ revision: 'main' }) }),
    expectValid: true,
    messages: [],
  },
  {
    reason: 'update changing the revision',
    old: weights({ huggingFace: hf() }),
    object: weights({ huggingFace: hf({ revision: 'v2' }) }),
    expectValid: false,
    messages: [MSG.immutable],
  },
  {
    reason: 'update changing the source kind',
    old: weights({ huggingFace: hf() }),
    object: weights({ s3: { uri: 's3://models/llama/' } }),
    expectValid: false,
    messages: [MSG.immutable],
  },
  {
    reason: 'update changing the artifact kind',
    old: tokenizer(files({ a: 'x' })),
    object: { artifact: { kind: 'Bytes', source: files({ a: 'x' }) } },
    expectValid: false,
    messages: [MSG.immutable],
  },
  {
    reason: 'update that also breaks another rule reports both',
    old: weights({ huggingFace: hf() }),
    object: weights({ huggingFace: hf(), s3: { uri: 's3://models/llama/' } }),
    expectValid: false,
    messages: [MSG.immutable, MSG.exactlyOne],
  },
];

// ---------------------------------------------------------------------------------------------
// ModelDeployment. No rule compares with oldSelf: every field may change (a new engine image or
// replica count rolls the workloads), so there are no transition cases.

const ENGINE: Node = { image: 'vllm/vllm-openai:v0.6.3' };
/** A ModelDeployment spec: one cache by name and an engine, plus `extra`. */
const md = (extra: Node = {}): Node => ({ caches: [{ name: 'llama' }], engine: ENGINE, ...extra });
const gang = (caches: Node[], pipeline = 2): Node =>
  md({ caches, topology: { strategy: 'TensorPipeline', tensor: 8, pipeline } });
const WEIGHTS = { name: 'llama', kind: 'Weights' };
const TOKENIZER = { name: 'tok', kind: 'Tokenizer' };

const modelDeploymentCases: Case[] = [
  {
    reason: 'Standalone with one cache by name and an image: everything else defaults',
    object: md(),
    expectValid: true,
    messages: [],
  },
  {
    reason: 'every field set: a gang over a Weights and a Tokenizer cache',
    object: {
      caches: [WEIGHTS, TOKENIZER],
      clusterSelector: { matchLabels: { 'modelplane.ai/gpu': 'h100', region: 'us-east' } },
      replicas: 4,
      engine: {
        image: 'vllm/vllm-openai:v0.6.3',
        command: ['python3', '-m', 'vllm.entrypoints.openai.api_server'],
        args: ['--model', '$(MODELCACHE_WEIGHTS_PATH)', '--tensor-parallel-size', '8'],
        env: [{ name: 'VLLM_LOGGING_LEVEL', value: 'INFO' }, { name: 'EMPTY' }],
        imagePullSecrets: [{ name: 'registry-creds' }],
        resources: {
          requests: { cpu: '8', memory: '64Gi' },
          limits: { 'nvidia.com/gpu': 8, memory: '64Gi' },
        },
        port: 8080,
      },
      topology: { strategy: 'TensorPipeline', tensor: 8, pipeline: 2 },
    },
    expectValid: true,
    messages: [],
  },
  {
    reason: 'zero replicas (scaled to nothing) is allowed',
    object: md({ replicas: 0 }),
    expectValid: true,
    messages: [],
  },
  {
    reason: 'TensorPipeline with pipeline 1 is not a gang: no Weights cache needed',
    object: gang([TOKENIZER], 1),
    expectValid: true,
    messages: [],
  },
  {
    reason: 'a gang with a Weights cache declared on its reference',
    object: gang([TOKENIZER, WEIGHTS]),
    expectValid: true,
    messages: [],
  },
  {
    reason: 'a gang whose reference does not declare its kind: admission cannot read the cache',
    object: gang([{ name: 'llama' }]),
    expectValid: false,
    messages: [MSG.gangWeights],
  },
  {
    reason: 'a gang over a Tokenizer cache only',
    object: gang([TOKENIZER]),
    expectValid: false,
    messages: [MSG.gangWeights],
  },
  {
    reason: 'Standalone with pipeline 2',
    object: md({ caches: [WEIGHTS], topology: { strategy: 'Standalone', pipeline: 2 } }),
    expectValid: false,
    messages: [MSG.standalone],
  },
  {
    reason: 'pipeline 2 under the defaulted strategy (Standalone), no Weights: both rules report',
    object: md({ topology: { pipeline: 2 } }),
    expectValid: false,
    messages: [MSG.standalone, MSG.gangWeights],
  },
  {
    reason: 'the same cache twice',
    object: md({ caches: [{ name: 'llama' }, { name: 'tok' }, { name: 'llama' }] }),
    expectValid: false,
    messages: [MSG.cacheOnce],
  },
  {
    reason: 'the same cache twice with different declared kinds',
    object: md({ caches: [WEIGHTS, { name: 'llama', kind: 'Bytes' }] }),
    expectValid: false,
    messages: [MSG.cacheOnce],
  },
  {
    reason: 'an empty cache list',
    object: md({ caches: [] }),
    expectValid: false,
    messages: ['spec.caches: Invalid value: 0: spec.caches in body should have at least 1 items'],
  },
  {
    reason: 'no caches at all',
    object: { engine: ENGINE },
    expectValid: false,
    messages: ['spec.caches: Required value', MSG.notChecked],
  },
  {
    reason: 'nine caches',
    object: md({ caches: Array.from({ length: 9 }, (_, i) => ({ name: `c${i}` })) }),
    expectValid: false,
    messages: ['spec.caches: Too many: 9: must have at most 8 items', MSG.notChecked],
  },
  {
    reason: 'a cache name that is not a Kubernetes name',
    object: md({ caches: [{ name: 'Llama_3' }] }),
    expectValid: false,
    messages: [
      `spec.caches[0].name: Invalid value: "Llama_3": spec.caches[0].name in body should match '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$'`,
    ],
  },
  {
    reason: 'a v0.2 cache kind on a reference',
    object: md({ caches: [{ name: 'lora', kind: 'Adapter' }] }),
    expectValid: false,
    messages: [
      'spec.caches[0].kind: Unsupported value: "Adapter": supported values: "Weights", "Tokenizer", "Bytes"',
      MSG.notChecked,
    ],
  },
  {
    reason: 'an unknown strategy',
    object: md({ topology: { strategy: 'Gang' } }),
    expectValid: false,
    messages: [
      'spec.topology.strategy: Unsupported value: "Gang": supported values: "Standalone", "TensorPipeline"',
      MSG.notChecked,
    ],
  },
  {
    reason: 'tensor 0',
    object: md({ topology: { tensor: 0 } }),
    expectValid: false,
    messages: [
      'spec.topology.tensor: Invalid value: 0: spec.topology.tensor in body should be greater than or equal to 1',
    ],
  },
  {
    reason: 'a gang of 65 pods',
    object: gang([WEIGHTS], 65),
    expectValid: false,
    messages: [
      'spec.topology.pipeline: Invalid value: 65: spec.topology.pipeline in body should be less than or equal to 64',
    ],
  },
  {
    reason: '10001 replicas',
    object: md({ replicas: 10_001 }),
    expectValid: false,
    messages: [
      'spec.replicas: Invalid value: 10001: spec.replicas in body should be less than or equal to 10000',
    ],
  },
  {
    reason: 'replicas as a string',
    object: md({ replicas: '2' }),
    expectValid: false,
    messages: [
      'spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string"',
      MSG.notChecked,
    ],
  },
  {
    reason: 'an engine without an image',
    object: md({ engine: { args: ['--model', '/mnt/model'] } }),
    expectValid: false,
    messages: ['spec.engine.image: Required value', MSG.notChecked],
  },
  {
    reason: 'a misspelt engine.image fails strict field validation (zod: no image)',
    object: md({ engine: { imag: 'vllm/vllm-openai:v0.6.3' } }),
    expectValid: false,
    messages: ['strict decoding error: unknown field "spec.engine.imag"'],
  },
  {
    reason: 'an env var name with "="',
    object: md({ engine: { ...ENGINE, env: [{ name: 'A=B', value: 'x' }] } }),
    expectValid: false,
    messages: [
      `spec.engine.env[0].name: Invalid value: "A=B": spec.engine.env[0].name in body should match '^[-._a-zA-Z][-._a-zA-Z0-9]*$'`,
    ],
  },
  {
    reason: 'port 0',
    object: md({ engine: { ...ENGINE, port: 0 } }),
    expectValid: false,
    messages: [
      'spec.engine.port: Invalid value: 0: spec.engine.port in body should be greater than or equal to 1',
    ],
  },
  {
    reason: 'an empty quantity',
    object: md({ engine: { ...ENGINE, resources: { requests: { cpu: '' } } } }),
    expectValid: false,
    messages: [
      'spec.engine.resources.requests.cpu: Invalid value: "": spec.engine.resources.requests.cpu in body should be at least 1 chars long',
    ],
  },
  {
    reason: 'a quantity that is neither an integer nor a string',
    object: md({ engine: { ...ENGINE, resources: { limits: { cpu: true } } } }),
    expectValid: false,
    messages: [
      'spec.engine.resources.limits.cpu: Invalid value: "boolean": spec.engine.resources.limits.cpu in body must be of type integer,string: "boolean"',
      MSG.notChecked,
    ],
  },
  {
    reason: 'an empty resource name in limits',
    object: md({ engine: { ...ENGINE, resources: { limits: { '': '1' } } } }),
    expectValid: false,
    messages: [MSG.resourceNames('limits')],
  },
  {
    reason: 'a resource name over 253 characters in requests',
    object: md({ engine: { ...ENGINE, resources: { requests: { ['r'.repeat(254)]: 1 } } } }),
    expectValid: false,
    messages: [MSG.resourceNames('requests')],
  },
  {
    reason: 'a label key over 317 characters',
    object: md({ clusterSelector: { matchLabels: { ['k'.repeat(318)]: 'v' } } }),
    expectValid: false,
    messages: [MSG.labelKeys],
  },
];

function checkTable(c: Case): void {
  expect(c.expectValid).toBe(c.messages.length === 0); // the table is consistent
}

describe('ModelCache spec admission', () => {
  it.each(modelCacheCases)('$reason', (c) => {
    checkTable(c);
    expect(admit(MC_SPEC, 'spec', c.object)).toEqual(c.messages);
    // The Function's parser reaches the same verdict.
    expect(modelCacheSpec.safeParse(c.object).success).toBe(c.expectValid);
  });

  it.each(transitionCases)('$reason', (c) => {
    checkTable(c);
    expect(admit(MC_SPEC, 'spec', c.object, c.old)).toEqual(c.messages);
  });

  it('applies the schema defaults before validating, as the API server does', () => {
    const spec = weights({ huggingFace: hf({ secretRef: { name: 'hf' } }) }, {});
    const defaulted = applyDefaults(MC_SPEC, structuredClone(spec));
    expect(defaulted).toEqual({
      artifact: {
        kind: 'Weights',
        source: {
          huggingFace: {
            repo: 'meta-llama/Llama-3.1-8B-Instruct',
            revision: 'main',
            secretRef: { name: 'hf', key: 'HF_TOKEN' },
          },
        },
      },
      mount: { path: '/mnt/model' },
      storage: { backend: 'PVC' },
      replication: 'AllMatchingClusters',
    });
    // zod fills in the same defaults.
    expect(
      modelCacheSpec.parse(
        weights(
          { huggingFace: hf({ secretRef: { name: 'hf' } }) },
          {
            storage: { pvc: { sizeGiB: 1 } },
          },
        ),
      ),
    ).toEqual({ ...(defaulted as Node), storage: { backend: 'PVC', pvc: { sizeGiB: 1 } } });
  });

  it('every rule rejects at least one case (no dead rules)', () => {
    const seen = [...modelCacheCases, ...transitionCases, ...modelDeploymentCases].flatMap(
      (c) => c.messages,
    );
    const unexercised = ALL_RULES.filter((r) => !seen.some((m) => m.includes(r.message))).map(
      (r) => `${r.path}: ${r.message}`,
    );
    expect(unexercised).toEqual([]);
  });
});

describe('ModelDeployment spec admission', () => {
  it.each(modelDeploymentCases)('$reason', (c) => {
    checkTable(c);
    expect(admit(MD_SPEC, 'spec', c.object)).toEqual(c.messages);
    // The Function's parser reaches the same verdict.
    expect(modelDeploymentSpec.safeParse(c.object).success).toBe(c.expectValid);
  });

  it('applies the schema defaults before validating, as the API server does', () => {
    const defaulted = applyDefaults(MD_SPEC, structuredClone(md()));
    expect(defaulted).toEqual({
      caches: [{ name: 'llama' }],
      replicas: 1,
      engine: { image: 'vllm/vllm-openai:v0.6.3', port: 8000 },
      topology: { strategy: 'Standalone', tensor: 1, pipeline: 1 },
    });
    // zod fills in the same defaults.
    expect(modelDeploymentSpec.parse(md())).toEqual(defaulted);
  });
});

// ---------------------------------------------------------------------------------------------

describe('status and InferenceCluster admission', () => {
  const cases: (Case & { schema: Node; path: string; zod?: z.ZodType })[] = [
    {
      reason: 'ModelCache status as the Function writes it (golden three-clusters-mixed)',
      schema: MC_STATUS,
      path: 'status',
      object: goldenOf('modelcache/three-clusters-mixed').status,
      expectValid: true,
      messages: [],
    },
    {
      reason: 'ModelCacheReplica spec as the ModelCache writes it (golden three-clusters-mixed)',
      schema: REPLICA_SPEC,
      path: 'spec',
      object: (
        goldenOf('modelcache/three-clusters-mixed').resources['us-east'] as { spec: unknown }
      ).spec,
      expectValid: true,
      messages: [],
    },
    {
      reason: 'ModelCacheReplica status as the Function writes it (golden hydrating-with-progress)',
      schema: REPLICA_STATUS,
      path: 'status',
      object: goldenOf('modelcachereplica/hydrating-with-progress').status,
      expectValid: true,
      messages: [],
    },
    {
      reason: 'ModelCacheReplica spec with an identity that is not a sha256',
      schema: REPLICA_SPEC,
      path: 'spec',
      object: { cacheRef: { name: 'llama' }, cluster: 'us-east', identity: 'abc' },
      expectValid: false,
      messages: [
        'spec.identity: Invalid value: "abc": spec.identity in body should match \'^[0-9a-f]{64}$\'',
      ],
    },
    {
      reason: 'ModelCache status with an unknown phase',
      schema: MC_STATUS,
      path: 'status',
      object: { clusters: [{ name: 'a', phase: 'Done' }] },
      expectValid: false,
      messages: [
        'status.clusters[0].phase: Unsupported value: "Done": supported values: "Pending", "Hydrating", "Ready", "Failed"',
        MSG.notChecked,
      ],
    },
    {
      reason: 'ModelDeployment status as the Function writes it',
      schema: MD_STATUS,
      path: 'status',
      object: {
        replicas: { desired: 1, placed: 1 },
        clusters: [
          { name: 'a', replicas: 1, reason: 'Placed', message: '1 gang of 2 pods' },
          {
            name: 'b',
            replicas: 0,
            reason: 'WaitingForCache',
            message: 'cache llama is Hydrating on cluster b (Downloading)',
          },
          {
            name: 'c',
            replicas: 0,
            reason: 'NoRWXStorageClass',
            message: 'cache llama cannot stage on cluster c; see ModelCacheReplica team-a/llama-c',
          },
        ],
      },
      expectValid: true,
      messages: [],
    },
    {
      reason: 'ModelDeployment status with a cluster entry without a name',
      schema: MD_STATUS,
      path: 'status',
      object: { clusters: [{ replicas: 1, reason: 'Placed' }] },
      expectValid: false,
      messages: ['status.clusters[0].name: Required value', MSG.notChecked],
    },
    {
      reason: 'InferenceCluster with only a provider config',
      schema: IC_SPEC,
      path: 'spec',
      zod: inferenceClusterSpec,
      object: { providerConfigRef: { name: 'us-east' } },
      expectValid: true,
      messages: [],
    },
    {
      reason: 'InferenceCluster with a namespaced ProviderConfig and a class',
      schema: IC_SPEC,
      path: 'spec',
      zod: inferenceClusterSpec,
      object: {
        providerConfigRef: { kind: 'ProviderConfig', name: 'us-east' },
        storage: { storageClassName: 'efs-rwx' },
      },
      expectValid: true,
      messages: [],
    },
    {
      reason: 'InferenceCluster without a provider config',
      schema: IC_SPEC,
      path: 'spec',
      zod: inferenceClusterSpec,
      object: { storage: { storageClassName: 'efs-rwx' } },
      expectValid: false,
      messages: ['spec.providerConfigRef: Required value', MSG.notChecked],
    },
    {
      reason: 'InferenceCluster with a provider config kind that is not one',
      schema: IC_SPEC,
      path: 'spec',
      zod: inferenceClusterSpec,
      object: { providerConfigRef: { kind: 'Secret', name: 'kubeconfig' } },
      expectValid: false,
      messages: [
        'spec.providerConfigRef.kind: Unsupported value: "Secret": supported values: "ClusterProviderConfig", "ProviderConfig"',
        MSG.notChecked,
      ],
    },
    {
      reason: 'InferenceCluster with an invalid class name',
      schema: IC_SPEC,
      path: 'spec',
      zod: inferenceClusterSpec,
      object: { providerConfigRef: { name: 'a' }, storage: { storageClassName: 'EFS_RWX' } },
      expectValid: false,
      messages: [
        `spec.storage.storageClassName: Invalid value: "EFS_RWX": spec.storage.storageClassName in body should match '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$'`,
      ],
    },
    {
      reason: 'InferenceCluster status as the Function writes it',
      schema: IC_STATUS,
      path: 'status',
      zod: inferenceClusterStatus,
      object: {
        providerConfigRef: { kind: 'ClusterProviderConfig', name: 'us-east' },
        storage: { storageClassName: 'efs-rwx', classExists: true, provisioner: 'efs.csi.aws.com' },
      },
      expectValid: true,
      messages: [],
    },
    {
      reason: 'InferenceCluster status with a non-boolean classExists',
      schema: IC_STATUS,
      path: 'status',
      zod: inferenceClusterStatus,
      object: { storage: { classExists: 'yes' } },
      expectValid: false,
      messages: [
        'status.storage.classExists: Invalid value: "string": status.storage.classExists in body must be of type boolean: "string"',
        MSG.notChecked,
      ],
    },
  ];

  it.each(cases)('$reason', (c) => {
    checkTable(c);
    expect(admit(c.schema, c.path, c.object)).toEqual(c.messages);
    if (c.zod) expect(c.zod.safeParse(c.object).success).toBe(c.expectValid);
  });
});
