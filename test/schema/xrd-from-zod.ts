// An XRD generated from the zod schema the Function parses with, so the API is written once:
// zod states every field, type, bound, enum, default, pattern and what is required
// (z.toJSONSchema, put in a structural schema's terms); the XRD's metadata file
// (function/api/<kind>.xrd-meta.yaml, beside the kind's zod) states only what zod cannot: names, scope, printer
// columns, and per field its description and Kubernetes-only rules (CEL, list types, formats).
// A metadata field zod no longer has, or a metadata keyword zod owns, is an error, not a silent
// leftover. npm run generate:xrds writes the XRDs; test/schema/xrd-drift.test.ts fails when a
// committed XRD differs from what this generates.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { format, resolveConfig } from 'prettier';
import { Document, parse, visit } from 'yaml';
import { z } from 'zod';

import {
  inferenceClusterSpec,
  inferenceClusterStatus,
} from '../../function/api/inferencecluster.js';
import { functionInput } from '../../function/api/input.js';
import { modelCacheSpec } from '../../function/api/modelcache.js';
import { modelCacheReplicaSpec, replicaStatus } from '../../function/api/modelcachereplica.js';
import { modelDeploymentSpec } from '../../function/api/modeldeployment.js';

type Node = Record<string, unknown>;

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/**
 * What each top-level field of an XRD comes from: a zod schema, or 'as-written' for a field the
 * Function writes but never parses (a status with no zod schema), stated whole in the metadata.
 */
export type XrdParts = Readonly<Record<string, z.ZodType | 'as-written'>>;

/**
 * Every schema generated from zod, by name: the file written (default
 * apis/<name>/definition.yaml), its metadata file and where each top-level field comes from.
 */
export const GENERATED_XRDS: Readonly<
  Record<string, { file?: string; meta: string; parts: XrdParts }>
> = {
  inferenceclusters: {
    meta: 'function/api/inferencecluster.xrd-meta.yaml',
    parts: { spec: inferenceClusterSpec, status: inferenceClusterStatus },
  },
  modelcaches: {
    meta: 'function/api/modelcache.xrd-meta.yaml',
    parts: { spec: modelCacheSpec, status: 'as-written' },
  },
  modelcachereplicas: {
    meta: 'function/api/modelcachereplica.xrd-meta.yaml',
    parts: { spec: modelCacheReplicaSpec, status: replicaStatus.partial() },
  },
  modeldeployments: {
    meta: 'function/api/modeldeployment.xrd-meta.yaml',
    parts: { spec: modelDeploymentSpec, status: 'as-written' },
  },
  // The Function's input CRD: its fields are the top-level ones; apiVersion, kind and metadata
  // are stated in the metadata (zod's literals have no structural form but an enum).
  input: {
    file: 'package/function/input/modelcache.fn.modelplane.ai_inputs.yaml',
    meta: 'function/api/input.crd-meta.yaml',
    parts: {
      apiVersion: 'as-written',
      kind: 'as-written',
      metadata: 'as-written',
      ttlSeconds: functionInput.shape.ttlSeconds,
      inferenceClusterNamespace: functionInput.shape.inferenceClusterNamespace,
      fetch: functionInput.shape.fetch,
    },
  },
};

/** The file generated for `name`. */
export function fileOf(name: string): string {
  return GENERATED_XRDS[name]?.file ?? `apis/${name}/definition.yaml`;
}

/** The metadata file of `name` (outside apis/: its folders hold only what is installed). */
export function metaFileOf(name: string): string {
  return GENERATED_XRDS[name]?.meta ?? `function/api/${name}.xrd-meta.yaml`;
}

/** Keywords only the metadata file states: documentation and Kubernetes-only rules. */
const META_KEYWORDS = [
  'description',
  'format',
  'minProperties',
  'maxProperties',
  'x-kubernetes-validations',
  'x-kubernetes-list-type',
  'x-kubernetes-list-map-keys',
] as const;
/** Keywords taken from zod, in the order the XRD lists them. */
const ZOD_KEYWORDS = [
  'required',
  'enum',
  'default',
  'minimum',
  'maximum',
  'minLength',
  'maxLength',
  'minItems',
  'maxItems',
  'pattern',
];
const NESTED = ['properties', 'items', 'additionalProperties'] as const;

function isNode(v: unknown): v is Node {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * One node of zod's JSON Schema in a structural schema's terms: a nullable member's
 * `anyOf [x, null]` (or type list with null) unwrapped; a quantity's string-or-integer union
 * spelt as Kubernetes' int-or-string node; number+multipleOf(1) as integer; the safe-integer
 * bounds zod adds to `.int()` dropped; `\/` in patterns unescaped (RE2 and JavaScript accept a
 * plain slash); `additionalProperties: false` dropped (a structural schema has properties or
 * additionalProperties, not both). Record key rules (`propertyNames`) must be CEL in metadata.
 */
function structural(input: Node, path: string): Node {
  let node = { ...input };
  delete node['$schema'];
  if ('anyOf' in node) {
    const members = (node['anyOf'] as unknown[]).filter(isNode).map((m) => structural(m, path));
    const rest = Object.fromEntries(Object.entries(node).filter(([k]) => k !== 'anyOf'));
    const nonNull = members.filter((m) => m['type'] !== 'null');
    const strings = members.filter((m) => m['type'] === 'string');
    const integers = members.filter((m) => JSON.stringify(m) === '{"type":"integer"}');
    if (members.length === 2 && nonNull.length === 1) {
      node = { ...(nonNull[0] as Node), ...rest };
    } else if (members.length === 2 && strings.length === 1 && integers.length === 1) {
      // A quantity: Kubernetes spells a string-or-integer node this one way; the string's bounds
      // stay on the node.
      const stringBounds = Object.fromEntries(
        Object.entries(strings[0] as Node).filter(([k]) => k !== 'type'),
      );
      return {
        'x-kubernetes-int-or-string': true,
        anyOf: [{ type: 'integer' }, { type: 'string' }],
        ...stringBounds,
        ...rest,
      };
    } else {
      throw new Error(`${path}: zod emits an anyOf no structural schema can state`);
    }
  }
  // zod writes a union of primitives (a nullable one included) as a list of types.
  if (Array.isArray(node['type'])) {
    const types = (node['type'] as unknown[]).filter((t) => t !== 'null');
    if (types.length !== 1) {
      throw new Error(
        `${path}: zod emits types ${JSON.stringify(node['type'])}, which no structural schema can state`,
      );
    }
    node['type'] = types[0];
  }
  if (node['type'] === 'number' && node['multipleOf'] === 1) {
    node['type'] = 'integer';
    delete node['multipleOf'];
  }
  if (node['type'] === 'integer') {
    if (node['minimum'] === Number.MIN_SAFE_INTEGER) delete node['minimum'];
    if (node['maximum'] === Number.MAX_SAFE_INTEGER) delete node['maximum'];
  }
  if (typeof node['pattern'] === 'string') node['pattern'] = node['pattern'].replaceAll('\\/', '/');
  if (node['additionalProperties'] === false) delete node['additionalProperties'];
  return node;
}

function hasKeyRule(meta: Node): boolean {
  const rules = meta['x-kubernetes-validations'];
  return (
    Array.isArray(rules) &&
    rules.some((r) => isNode(r) && typeof r['rule'] === 'string' && r['rule'].includes('self.all('))
  );
}

/** zod's node merged with its metadata node, keywords in the XRD's order; errors collected. */
function merge(zodNode: Node, meta: Node, path: string, errors: string[]): Node {
  const z = structural(zodNode, path);
  for (const key of Object.keys(meta)) {
    if (
      !(META_KEYWORDS as readonly string[]).includes(key) &&
      !(NESTED as readonly string[]).includes(key)
    ) {
      errors.push(`${path}: the metadata states "${key}", which zod states`);
    }
  }
  for (const key of Object.keys(z)) {
    if (
      !['type', 'x-kubernetes-int-or-string', 'anyOf', 'propertyNames'].includes(key) &&
      !ZOD_KEYWORDS.includes(key) &&
      !(NESTED as readonly string[]).includes(key)
    ) {
      errors.push(`${path}: zod keyword "${key}" has no XRD form`);
    }
  }
  // A structural schema cannot bound map keys: the metadata must state zod's key rule in CEL.
  const keyRules = isNode(z['propertyNames'])
    ? Object.keys(z['propertyNames']).filter((k) => k !== 'type')
    : [];
  if (keyRules.length > 0 && !hasKeyRule(meta)) {
    errors.push(
      `${path}: zod bounds the keys (${keyRules.join(', ')}); the metadata needs a CEL rule over them (self.all(k, ...))`,
    );
  }
  const description = meta['description'];
  if (typeof description !== 'string' || description.trim().length < 10) {
    errors.push(`${path || '<root>'}: no description in the metadata (kubectl explain shows it)`);
  }
  const out: Node = {};
  if (z['type'] !== undefined) out['type'] = z['type'];
  if (meta['description'] !== undefined) out['description'] = meta['description'];
  if (z['x-kubernetes-int-or-string'] === true) {
    out['x-kubernetes-int-or-string'] = true;
    out['anyOf'] = z['anyOf'];
  }
  if (z['required'] !== undefined) out['required'] = z['required'];
  const zodProps = isNode(z['properties']) ? z['properties'] : undefined;
  const metaProps = isNode(meta['properties']) ? meta['properties'] : {};
  if (zodProps !== undefined) {
    const props: Node = {};
    for (const [name, child] of Object.entries(zodProps)) {
      const m = metaProps[name];
      props[name] = merge(child as Node, isNode(m) ? m : {}, `${path}.${name}`, errors);
    }
    out['properties'] = props;
  }
  for (const name of Object.keys(metaProps)) {
    if (zodProps?.[name] === undefined) {
      errors.push(`${path}.${name}: in the metadata, not in zod`);
    }
  }
  for (const [key, suffix] of [
    ['items', '[]'],
    ['additionalProperties', '{}'],
  ] as const) {
    const child = z[key];
    const m = meta[key];
    if (isNode(child)) out[key] = merge(child, isNode(m) ? m : {}, `${path}${suffix}`, errors);
    else if (m !== undefined) errors.push(`${path}${suffix}: in the metadata, not in zod`);
  }
  for (const key of ZOD_KEYWORDS) {
    if (key !== 'required' && z[key] !== undefined) out[key] = z[key];
  }
  for (const key of META_KEYWORDS) {
    if (key !== 'description' && meta[key] !== undefined) out[key] = meta[key];
  }
  return out;
}

/** YAML as the XRDs are written by hand: a long description as a folded block. */
export function xrdYaml(value: unknown): string {
  const doc = new Document(value);
  visit(doc, {
    Pair(_, pair) {
      const key = pair.key as { value?: unknown } | null;
      const v = pair.value as { value?: unknown; type?: string } | null;
      if (key?.value === 'description' && typeof v?.value === 'string' && v.value.length > 72) {
        v.type = 'BLOCK_FOLDED';
      }
    },
  });
  return doc.toString({ lineWidth: 96 });
}

/**
 * The comment a metadata file starts with, up to its paragraph about itself ("# The metadata
 * of ..."): what the kind is and why, which the generated XRD keeps.
 */
function leadingComments(text: string): string {
  const lines = text.split('\n');
  const end = lines.findIndex((l) => !l.startsWith('#') || l.startsWith('# The metadata of'));
  const kept = lines.slice(0, end === -1 ? lines.length : end);
  while (kept.length > 0 && kept[kept.length - 1]?.trim() === '#') kept.pop();
  return kept.join('\n');
}

/** The openAPIV3Schema of one version, or an error naming the file. */
function schemaOf(doc: Node, file: string): Node {
  const spec = doc['spec'];
  const versions = isNode(spec) ? spec['versions'] : undefined;
  const v = Array.isArray(versions) ? (versions[0] as unknown) : undefined;
  const schema = isNode(v) && isNode(v['schema']) ? v['schema']['openAPIV3Schema'] : undefined;
  if (!isNode(schema)) throw new Error(`${file}: no spec.versions[0].schema.openAPIV3Schema`);
  return schema;
}

/**
 * The text of `name`'s XRD (or CRD), from its metadata file and `parts` (zod per top-level field):
 * what npm run generate:xrds writes and the drift check compares.
 */
export async function generateXrd(
  name: string,
  parts: XrdParts,
  metaText = readFileSync(join(ROOT, metaFileOf(name)), 'utf8'),
): Promise<string> {
  const metaFile = metaFileOf(name);
  const doc = parse(metaText) as Node;
  const metaRoot = schemaOf(doc, metaFile);
  const metaProps = isNode(metaRoot['properties']) ? metaRoot['properties'] : {};
  const errors: string[] = [];
  const fromZod = Object.entries(parts).flatMap(([k, s]) =>
    s === 'as-written' ? [] : [[k, z.toJSONSchema(s, { io: 'input' }) as Node] as const],
  );
  const merged = merge(
    { type: 'object', properties: Object.fromEntries(fromZod) },
    {
      ...metaRoot,
      properties: Object.fromEntries(
        Object.entries(metaProps).filter(([k]) => parts[k] !== 'as-written'),
      ),
    },
    '',
    errors,
  );
  const properties: Node = {};
  for (const [k, s] of Object.entries(parts)) {
    if (s !== 'as-written') properties[k] = (merged['properties'] as Node)[k];
    else if (metaProps[k] !== undefined) properties[k] = metaProps[k];
    else errors.push(`.${k}: as written in the metadata, but the metadata has no ${k}`);
  }
  const generated = { ...merged, properties };
  if (errors.length > 0) throw new Error(`${metaFile}:\n  ${errors.join('\n  ')}`);
  const versions = (doc['spec'] as Node)['versions'] as Node[];
  (versions[0] as Node)['schema'] = { openAPIV3Schema: generated };
  const header = [
    leadingComments(metaText),
    '#',
    `# Generated by \`npm run generate:xrds\` from ${metaFile}`,
    '# (names, printer columns, descriptions, CEL rules) and the zod schemas in function/api/',
    '# (fields, types, bounds, enums, defaults, what is required).',
    '# Edit those, not this file: test/schema/xrd-drift.test.ts fails when the two differ.',
  ].join('\n');
  const text = `${header}\n${xrdYaml(doc)}`;
  const config = (await resolveConfig(join(ROOT, fileOf(name)))) ?? {};
  return format(text, { ...config, parser: 'yaml' });
}

/** Why `committed` is not what generation gives, or undefined when it is. */
export function driftOf(file: string, committed: string, generated: string): string | undefined {
  if (committed === generated) return undefined;
  const a = committed.split('\n');
  const b = generated.split('\n');
  const i = a.findIndex((line, n) => line !== b[n]);
  const at = i === -1 ? a.length : i;
  return `${file} is not what \`npm run generate:xrds\` writes; first difference:\n  committed: ${a[at]?.trim() ?? '(end of file)'}\n  generated: ${b[at]?.trim() ?? '(end of file)'}`;
}
