// Reading the checked-in XRDs as plain JSON trees, for the tests that check them.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

export type Node = Record<string, unknown>;

export const MODEL_CACHE_XRD = 'apis/modelcaches/definition.yaml';
export const INFERENCE_CLUSTER_XRD = 'apis/inferenceclusters/definition.yaml';
export const MODEL_CACHE_REPLICA_XRD = 'apis/modelcachereplicas/definition.yaml';

export function isNode(v: unknown): v is Node {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function asNode(v: unknown, where: string): Node {
  if (!isNode(v)) throw new Error(`${where}: expected an object, got ${JSON.stringify(v)}`);
  return v;
}

export function asArray(v: unknown, where: string): unknown[] {
  if (!Array.isArray(v)) throw new Error(`${where}: expected an array, got ${JSON.stringify(v)}`);
  return v;
}

/** A YAML file of the repository, by path relative to its root. */
export function readYaml(relative: string): Node {
  const path = fileURLToPath(new URL(`../../${relative}`, import.meta.url));
  return asNode(parse(readFileSync(path, 'utf8')), relative);
}

/** The one version's openAPIV3Schema of an XRD. */
export function openApiSchema(xrd: Node): Node {
  const versions = asArray(asNode(xrd['spec'], 'spec')['versions'], 'spec.versions');
  const version = asNode(versions[0], 'spec.versions[0]');
  return asNode(asNode(version['schema'], 'schema')['openAPIV3Schema'], 'openAPIV3Schema');
}
