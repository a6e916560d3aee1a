// Evaluates every x-kubernetes-validations rule of the XRDs with a real CEL implementation, the
// way the API server does: defaults applied first, the OpenAPI checks, then each rule at its own
// node with `self` (and `oldSelf` for transition rules) bound to the value there, nodes absent
// from the object skipped, and CEL skipped when a "blocking" schema error was found (Kubernetes'
// customresource strategy does the same). Each case's verdict is checked against zod too, so the
// XRD and the Function reject the same objects.
import { Environment, type ObjectSchema } from '@marcbachmann/cel-js';
import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { inferenceClusterSpec, inferenceClusterStatus } from '../function/api/inferencecluster.js';
import { modelCacheSpec } from '../function/api/modelcache.js';
import { asNode, isNode, openApiSchema, readYaml, type Node } from './support/xrd.js';

function readXrdSchema(relative: string): Node {
  return openApiSchema(readYaml(relative));
}

function properties(node: Node): Record<string, Node> {
  const props = node['properties'];
  if (!isNode(props)) return {};
  return Object.fromEntries(Object.entries(props).map(([k, v]) => [k, asNode(v, k)]));
}

function child(node: Node, key: 'items' | 'additionalProperties'): Node | undefined {
  const c = node[key];
  return isNode(c) ? c : undefined;
}

function typeOf(node: Node): string {
  return typeof node['type'] === 'string' ? node['type'] : 'object';
}

// ---------------------------------------------------------------------------------------------
// Rules.

interface XRule {
  rule: string;
  message: string;
  fieldPath?: string;
  reason?: string;
}

interface LocatedRule extends XRule {
  path: string;
  node: Node;
}

function rulesOf(node: Node): XRule[] {
  const raw = node['x-kubernetes-validations'];
  if (raw === undefined) return [];
  if (!Array.isArray(raw)) throw new Error('x-kubernetes-validations must be a list');
  return raw.map((r: unknown) => {
    const v = asNode(r, 'rule');
    const { rule, message, fieldPath, reason } = v;
    if (typeof rule !== 'string' || typeof message !== 'string') {
      throw new Error(`every rule needs a rule and a message: ${JSON.stringify(v)}`);
    }
    return {
      rule,
      message,
      ...(typeof fieldPath === 'string' ? { fieldPath } : {}),
      ...(typeof reason === 'string' ? { reason } : {}),
    };
  });
}

function collectRules(node: Node, path: string, out: LocatedRule[] = []): LocatedRule[] {
  for (const r of rulesOf(node)) out.push({ ...r, path, node });
  for (const [name, c] of Object.entries(properties(node))) collectRules(c, `${path}.${name}`, out);
  const items = child(node, 'items');
  if (items) collectRules(items, `${path}[*]`, out);
  const values = child(node, 'additionalProperties');
  if (values) collectRules(values, `${path}[*]`, out);
  return out;
}

const isTransition = (rule: string): boolean => /\boldSelf\b/.test(rule);

/**
 * Kubernetes' CEL environment has extension libraries cel-js does not ship; the ones these rules
 * use are registered here (string split and bytes() conversion are built in to cel-js).
 */
function withKubernetesLibraries(env: Environment): Environment {
  // k8s lists library: <list<int>>.sum() -> int.
  return env.registerFunction('list<int>.sum(): int', (list: readonly bigint[]): bigint =>
    list.reduce((a, b) => a + b, 0n),
  );
}

const evalEnv = withKubernetesLibraries(
  new Environment().registerVariable('self', 'dyn').registerVariable('oldSelf', 'dyn'),
);
type Compiled = (ctx: Record<string, unknown>) => unknown;
const compiled = new Map<string, Compiled>();
function compile(rule: string): Compiled {
  let fn = compiled.get(rule);
  if (!fn) {
    const parsed = evalEnv.parse(rule);
    fn = (ctx) => parsed(ctx) as unknown;
    compiled.set(rule, fn);
  }
  return fn;
}

/** The CEL type of a schema node, as cel-js declares variables; objects become custom types. */
function celType(node: Node): string | ObjectSchema {
  switch (typeOf(node)) {
    case 'string':
      return 'string';
    case 'integer':
      return 'int';
    case 'number':
      return 'double';
    case 'boolean':
      return 'bool';
    case 'array': {
      const items = child(node, 'items');
      const t = items ? celType(items) : 'dyn';
      return `list<${typeof t === 'string' ? t : 'dyn'}>`;
    }
    default: {
      const values = child(node, 'additionalProperties');
      if (values) {
        const t = celType(values);
        return `map<string, ${typeof t === 'string' ? t : 'dyn'}>`;
      }
      return Object.fromEntries(
        Object.entries(properties(node)).map(([name, c]) => [name, celType(c)]),
      );
    }
  }
}

/** An environment where `self`/`oldSelf` carry the node's declared type, as Kubernetes types them. */
function typedEnv(node: Node): Environment {
  const t = celType(node);
  const env = withKubernetesLibraries(new Environment());
  if (typeof t === 'string') return env.registerVariable('self', t).registerVariable('oldSelf', t);
  return (
    env
      .registerType({ name: 'Self', schema: t })
      .registerVariable('self', 'Self')
      .registerVariable('oldSelf', 'Self')
      // Type checking only (never evaluated): cel-js has no == for custom types.
      .registerOperator('Self == Self', (a, b) => JSON.stringify(a) === JSON.stringify(b))
  );
}

/** JSON as CEL sees it under the schema: integers are CEL ints (bigint in cel-js). */
function toCel(node: Node, value: unknown): unknown {
  const type = typeOf(node);
  if (type === 'integer' && typeof value === 'number' && Number.isInteger(value)) {
    return BigInt(value);
  }
  if (Array.isArray(value)) {
    const items = child(node, 'items');
    return items ? value.map((v) => toCel(items, v)) : value;
  }
  if (isNode(value)) {
    const props = properties(node);
    const values = child(node, 'additionalProperties');
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => {
        const c = props[k] ?? values;
        return [k, c ? toCel(c, v) : v];
      }),
    );
  }
  return value;
}

// ---------------------------------------------------------------------------------------------
// A small admission: defaulting, OpenAPI validation, CEL validation.

type ErrorType =
  | 'Required'
  | 'NotSupported'
  | 'TooLong'
  | 'TooMany'
  | 'TypeInvalid'
  | 'Invalid'
  | 'Forbidden'
  | 'Duplicate'
  | 'Unknown';

interface FieldError {
  type: ErrorType;
  path: string;
  text: string;
}

/** Error types after which Kubernetes does not run CEL rules (strategy.go hasBlockingErr). */
const BLOCKING: ReadonlySet<ErrorType> = new Set([
  'NotSupported',
  'Required',
  'TooLong',
  'TooMany',
  'TypeInvalid',
]);
const NOT_CHECKED =
  'some validation rules were not checked because the object was invalid; correct the existing errors to complete validation';

/** Length as Kubernetes measures maxLength: in code points (Go runes), not UTF-16 units. */
function runes(s: string): number {
  return Array.from(s).length;
}

function shown(v: unknown): string {
  if (typeof v === 'string' && runes(v) > 64) return `"<${runes(v)} characters>"`;
  return JSON.stringify(v);
}

function applyDefaults(node: Node, value: unknown): unknown {
  if (isNode(value)) {
    for (const [name, c] of Object.entries(properties(node))) {
      if (value[name] === undefined && c['default'] !== undefined) {
        value[name] = structuredClone(c['default']);
      }
      if (value[name] !== undefined) value[name] = applyDefaults(c, value[name]);
    }
    const values = child(node, 'additionalProperties');
    if (values) for (const k of Object.keys(value)) value[k] = applyDefaults(values, value[k]);
  }
  const items = child(node, 'items');
  if (Array.isArray(value) && items) return value.map((v) => applyDefaults(items, v));
  return value;
}

/** The JSON type of a value as go-openapi names it in errors. */
function jsonType(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

function hasType(type: string, v: unknown): boolean {
  switch (type) {
    case 'object':
      return isNode(v);
    case 'array':
      return Array.isArray(v);
    case 'string':
      return typeof v === 'string';
    case 'integer':
      return typeof v === 'number' && Number.isInteger(v);
    case 'number':
      return typeof v === 'number';
    case 'boolean':
      return typeof v === 'boolean';
    default:
      throw new Error(`unknown schema type ${type}`);
  }
}

function num(node: Node, key: string): number | undefined {
  const v = node[key];
  return typeof v === 'number' ? v : undefined;
}

function validateSchema(node: Node, value: unknown, path: string, out: FieldError[]): void {
  const type = typeOf(node);
  if (!hasType(type, value)) {
    out.push({
      type: 'TypeInvalid',
      path,
      text: `Invalid value: "${jsonType(value)}": ${path} in body must be of type ${type}: "${jsonType(value)}"`,
    });
    return;
  }
  const e = node['enum'];
  if (Array.isArray(e) && !e.includes(value)) {
    const supported = e.map((s) => JSON.stringify(s)).join(', ');
    out.push({
      type: 'NotSupported',
      path,
      text: `Unsupported value: ${shown(value)}: supported values: ${supported}`,
    });
  }
  if (typeof value === 'string') {
    const length = runes(value);
    const max = num(node, 'maxLength');
    const min = num(node, 'minLength');
    if (max !== undefined && length > max) {
      out.push({ type: 'TooLong', path, text: `Too long: may not be more than ${max} bytes` });
    }
    if (min !== undefined && length < min) {
      out.push({
        type: 'Invalid',
        path,
        text: `Invalid value: ${shown(value)}: ${path} in body should be at least ${min} chars long`,
      });
    }
    const pattern = node['pattern'];
    if (typeof pattern === 'string' && !new RegExp(pattern, 'u').test(value)) {
      out.push({
        type: 'Invalid',
        path,
        text: `Invalid value: ${shown(value)}: ${path} in body should match '${pattern}'`,
      });
    }
  }
  if (typeof value === 'number') {
    const max = num(node, 'maximum');
    const min = num(node, 'minimum');
    if (min !== undefined && value < min) {
      out.push({
        type: 'Invalid',
        path,
        text: `Invalid value: ${value}: ${path} in body should be greater than or equal to ${min}`,
      });
    }
    if (max !== undefined && value > max) {
      out.push({
        type: 'Invalid',
        path,
        text: `Invalid value: ${value}: ${path} in body should be less than or equal to ${max}`,
      });
    }
  }
  const items = child(node, 'items');
  if (Array.isArray(value)) {
    const max = num(node, 'maxItems');
    const min = num(node, 'minItems');
    if (max !== undefined && value.length > max) {
      out.push({
        type: 'TooMany',
        path,
        text: `Too many: ${value.length}: must have at most ${max} items`,
      });
    }
    if (min !== undefined && value.length < min) {
      out.push({
        type: 'Invalid',
        path,
        text: `Invalid value: ${value.length}: ${path} in body should have at least ${min} items`,
      });
    }
    if (items) {
      value.forEach((v, i) => {
        validateSchema(items, v, `${path}[${i}]`, out);
      });
    }
  }
  if (isNode(value)) {
    const count = Object.keys(value).length;
    const max = num(node, 'maxProperties');
    const min = num(node, 'minProperties');
    if (max !== undefined && count > max) {
      out.push({
        type: 'TooMany',
        path,
        text: `Too many: ${count}: must have at most ${max} items`,
      });
    }
    if (min !== undefined && count < min) {
      out.push({
        type: 'Invalid',
        path,
        text: `Invalid value: ${count}: ${path} in body should have at least ${min} properties`,
      });
    }
    const required = Array.isArray(node['required']) ? (node['required'] as string[]) : [];
    for (const name of required) {
      if (value[name] === undefined) {
        out.push({ type: 'Required', path: `${path}.${name}`, text: 'Required value' });
      }
    }
    const props = properties(node);
    const values = child(node, 'additionalProperties');
    for (const [k, v] of Object.entries(value)) {
      const c = props[k];
      if (c) validateSchema(c, v, `${path}.${k}`, out);
      else if (values) validateSchema(values, v, `${path}.${k}`, out);
      else out.push({ type: 'Unknown', path: `${path}.${k}`, text: 'unknown field' });
    }
  }
}

function ruleError(rule: XRule, node: Node, path: string): FieldError {
  const at = `${path}${rule.fieldPath ?? ''}`;
  switch (rule.reason) {
    case 'FieldValueRequired':
      return { type: 'Required', path: at, text: `Required value: ${rule.message}` };
    case 'FieldValueForbidden':
      return { type: 'Forbidden', path: at, text: `Forbidden: ${rule.message}` };
    case 'FieldValueDuplicate':
      return { type: 'Duplicate', path: at, text: `Duplicate value: ${rule.message}` };
    default:
      return {
        type: 'Invalid',
        path: at,
        text: `Invalid value: "${typeOf(node)}": ${rule.message}`,
      };
  }
}

function validateRules(
  node: Node,
  value: unknown,
  old: unknown,
  path: string,
  out: FieldError[],
): void {
  if (value === undefined) return; // absent nodes are not validated
  for (const r of rulesOf(node)) {
    if (isTransition(r.rule) && old === undefined) continue; // create, or no correlated old value
    let result: unknown;
    try {
      result = compile(r.rule)({
        self: toCel(node, value),
        oldSelf: old === undefined ? null : toCel(node, old),
      });
    } catch (err) {
      const summary = err instanceof Error ? err.message.split('\n')[0] : String(err);
      out.push({
        type: 'Invalid',
        path,
        text: `Invalid value: "${typeOf(node)}": ${summary ?? ''} evaluating rule: ${r.rule}`,
      });
      continue;
    }
    if (result !== true) out.push(ruleError(r, node, path));
  }
  if (isNode(value)) {
    const oldNode = isNode(old) ? old : undefined;
    for (const [name, c] of Object.entries(properties(node))) {
      validateRules(c, value[name], oldNode?.[name], `${path}.${name}`, out);
    }
    const values = child(node, 'additionalProperties');
    if (values) {
      for (const [k, v] of Object.entries(value)) {
        validateRules(values, v, oldNode?.[k], `${path}.${k}`, out); // map entries correlate by key
      }
    }
  }
  const items = child(node, 'items');
  if (Array.isArray(value) && items) {
    // Atomic lists: Kubernetes does not correlate items, so transition rules do not run there.
    value.forEach((v, i) => {
      validateRules(items, v, undefined, `${path}[${i}]`, out);
    });
  }
}

/** Every error the API server would report for `object` (an update when `old` is given). */
function admit(schema: Node, path: string, object: unknown, old?: unknown): string[] {
  const value = applyDefaults(schema, structuredClone(object));
  const oldValue = old === undefined ? undefined : applyDefaults(schema, structuredClone(old));
  const errors: FieldError[] = [];
  validateSchema(schema, value, path, errors);
  // kubectl asks for strict field validation: unknown fields fail decoding, before validation.
  const unknown = errors.filter((e) => e.type === 'Unknown');
  if (unknown.length > 0) {
    return [`strict decoding error: ${unknown.map((e) => `unknown field "${e.path}"`).join(', ')}`];
  }
  if (errors.some((e) => BLOCKING.has(e.type))) {
    return [...errors.map((e) => `${e.path}: ${e.text}`), NOT_CHECKED];
  }
  validateRules(schema, value, oldValue, path, errors);
  return errors.map((e) => `${e.path}: ${e.text}`);
}

// ---------------------------------------------------------------------------------------------

const MODEL_CACHE = readXrdSchema('apis/modelcaches/definition.yaml');
const INFERENCE_CLUSTER = readXrdSchema('apis/inferenceclusters/definition.yaml');
const MC_SPEC = properties(MODEL_CACHE)['spec'] as Node;
const MC_STATUS = properties(MODEL_CACHE)['status'] as Node;
const IC_SPEC = properties(INFERENCE_CLUSTER)['spec'] as Node;
const IC_STATUS = properties(INFERENCE_CLUSTER)['status'] as Node;

const ALL_RULES = [
  ...collectRules(MODEL_CACHE, 'ModelCache'),
  ...collectRules(INFERENCE_CLUSTER, 'InferenceCluster'),
];

const MSG = {
  exactlyOne:
    'spec.artifact.source: Invalid value: "object": exactly one of huggingFace, s3, http, inline, configMap must be set',
  weightsLocal:
    'spec.artifact.source: Forbidden: inline and configMap sources are for Tokenizer and Bytes artifacts, not Weights: weights are large and must come from a remote source (huggingFace, s3 or http)',
  sizeGiB:
    'spec.storage.pvc.sizeGiB: Required value: storage.pvc.sizeGiB is required for huggingFace, s3 and http sources: the volume is sized before the download starts',
  existingPVC:
    'spec.storage.existingPVC: Required value: is required when storage.backend is ExistingPVC',
  immutable:
    'spec.artifact: Invalid value: "object": spec.artifact is immutable: create a new ModelCache for a new artifact or version, or set the annotation modelplane.ai/refetch to a new value to re-stage the same one',
  fileNames:
    'spec.artifact.source.inline.files: Invalid value: "object": file names must be relative paths of at most 1024 characters that do not start with "/" and have no empty, "." or ".." segments',
  inlineTotal:
    'spec.artifact.source.inline.files: Invalid value: "object": inline files must total at most 262144 bytes; use a ConfigMap or a remote source',
  labelKeys:
    'spec.clusterSelector.matchLabels: Invalid value: "object": label keys must be 1-317 characters',
  segments: (path: string) =>
    `${path}: Invalid value: "string": must not contain empty, "." or ".." segments`,
  kinds: (value: string) =>
    `spec.artifact.kind: Unsupported value: "${value}": supported values: "Weights", "Tokenizer", "Bytes"`,
  notChecked: NOT_CHECKED,
};

describe('the CEL rules of the XRDs', () => {
  it('are exactly these, each at its node', () => {
    expect(ALL_RULES.map((r) => [r.path, r.message, r.fieldPath, r.reason])).toEqual([
      [
        'ModelCache.spec',
        'storage.pvc.sizeGiB is required for huggingFace, s3 and http sources: the volume is sized before the download starts',
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
        'inline and configMap sources are for Tokenizer and Bytes artifacts, not Weights: weights are large and must come from a remote source (huggingFace, s3 or http)',
        '.source',
        'FieldValueForbidden',
      ],
      [
        'ModelCache.spec.artifact.source',
        'exactly one of huggingFace, s3, http, inline, configMap must be set',
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
        'ModelCache.spec.artifact.source.inline',
        'inline files must total at most 262144 bytes; use a ConfigMap or a remote source',
        '.files',
        undefined,
      ],
      [
        'ModelCache.spec.artifact.source.inline.files',
        'file names must be relative paths of at most 1024 characters that do not start with "/" and have no empty, "." or ".." segments',
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
    const seen = [...modelCacheCases, ...transitionCases].flatMap((c) => c.messages);
    const unexercised = ALL_RULES.filter((r) => !seen.some((m) => m.includes(r.message))).map(
      (r) => `${r.path}: ${r.message}`,
    );
    expect(unexercised).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------

describe('status and InferenceCluster admission', () => {
  const cases: (Case & { schema: Node; path: string; zod?: z.ZodType })[] = [
    {
      reason: 'ModelCache status as the Function writes it',
      schema: MC_STATUS,
      path: 'status',
      object: {
        mountPath: '/mnt/model',
        source: 'hf://org/model@main',
        summary: { ready: '1/2', readyClusters: 1, matchedClusters: 2 },
        clusters: [
          {
            name: 'eu-west',
            phase: 'Hydrating',
            reason: 'Downloading',
            message: 'fetching 3 of 7 files',
            namespace: 'ml-team',
            claimName: 'mc-llama-0a1b2c',
            progress: { bytesDone: 1_073_741_824, bytesTotal: 16_106_127_360 },
            identity: 'b'.repeat(64),
          },
          {
            name: 'us-east',
            phase: 'Ready',
            reason: 'Staged',
            message: 'staged',
            namespace: 'ml-team',
            claimName: 'mc-llama-0a1b2c',
            resolvedRevision: '0e9e39f249a16976918f6564b8830bc894c89659',
            identity: 'b'.repeat(64),
          },
        ],
      },
      expectValid: true,
      messages: [],
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
