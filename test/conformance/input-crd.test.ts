// The Function package's input CRD (package/function/input/) and the zod schema the Function
// parses its input with (function/api/input.ts) describe the same thing twice; this compares them
// node by node, so a field, bound, enum, default or pattern changed on one side only fails.
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  DEFAULT_FETCH_COMMAND,
  DEFAULT_FETCH_IMAGE,
  functionInput,
} from '../../function/api/input.js';
import { INPUT_API_VERSION, INPUT_KIND } from '../../function/constants.js';
import {
  COMPARED,
  STRUCTURE,
  asNode,
  isNode,
  openApiSchema,
  readYaml,
  type Node,
} from '../support/xrd.js';

// The input CRD has an XRD's shape where it matters (spec.versions[0].schema.openAPIV3Schema).
const crd = readYaml('package/function/input/modelcache.fn.modelplane.ai_inputs.yaml');

const CRD_ONLY = new Set(['description']);
const ZOD_ONLY = new Set(['$schema', 'const']);

/** zod's JSON Schema in CRD terms: the safe-integer bound zod gives `.int()` dropped. */
function normalise(n: Node): Node {
  const out = { ...n };
  if (out['maximum'] === Number.MAX_SAFE_INTEGER) delete out['maximum'];
  if (out['minimum'] === Number.MIN_SAFE_INTEGER) delete out['minimum'];
  return out;
}

/** Every difference between a CRD schema node and a zod JSON Schema node. */
function differences(crdNode: Node, zodNode: Node, path: string): string[] {
  const out: string[] = [];
  const zod = normalise(zodNode);
  for (const k of Object.keys(crdNode)) {
    if (!(COMPARED as readonly string[]).includes(k) && !STRUCTURE.has(k) && !CRD_ONLY.has(k)) {
      out.push(`${path}: CRD keyword "${k}" is not compared`);
    }
  }
  for (const k of Object.keys(zod)) {
    if (!(COMPARED as readonly string[]).includes(k) && !STRUCTURE.has(k) && !ZOD_ONLY.has(k)) {
      out.push(`${path}: zod keyword "${k}" has no CRD counterpart`);
    }
  }
  for (const k of COMPARED) {
    if (JSON.stringify(crdNode[k]) !== JSON.stringify(zod[k])) {
      out.push(`${path}: ${k}: CRD ${JSON.stringify(crdNode[k])}, zod ${JSON.stringify(zod[k])}`);
    }
  }
  const req = (v: unknown): string =>
    JSON.stringify(Array.isArray(v) ? (v as unknown[]).map(String).sort() : []);
  if (req(crdNode['required']) !== req(zod['required'])) {
    out.push(`${path}: required: CRD ${req(crdNode['required'])}, zod ${req(zod['required'])}`);
  }
  const cp = isNode(crdNode['properties']) ? crdNode['properties'] : {};
  const zp = isNode(zod['properties']) ? zod['properties'] : {};
  for (const name of [...new Set([...Object.keys(cp), ...Object.keys(zp)])].sort()) {
    if (!(name in zp)) out.push(`${path}: property "${name}" only in the CRD`);
    else if (!(name in cp)) out.push(`${path}: property "${name}" only in zod`);
    else
      out.push(...differences(asNode(cp[name], name), asNode(zp[name], name), `${path}.${name}`));
  }
  for (const key of ['items', 'additionalProperties'] as const) {
    const c = crdNode[key];
    const zz = zod[key];
    if (c === undefined && zz === undefined) continue;
    if (!isNode(c) || !isNode(zz)) out.push(`${path}: ${key} only on one side`);
    else out.push(...differences(c, zz, `${path}.${key}`));
  }
  return out;
}

function zodInput(): Node {
  return asNode(z.toJSONSchema(functionInput, { io: 'input', unrepresentable: 'any' }), 'zod');
}

/** The CRD's schema without the Kubernetes envelope fields zod does not describe. */
function crdInput(): Node {
  const schema = structuredClone(openApiSchema(crd));
  const props = asNode(schema['properties'], 'properties');
  delete props['metadata'];
  return schema;
}

describe('the Function input CRD', () => {
  it('names the input apiVersion and kind the Function accepts', () => {
    const spec = asNode(crd['spec'], 'spec');
    const names = asNode(spec['names'], 'names');
    const versions = spec['versions'] as Node[];
    expect(`${String(spec['group'])}/${String(versions[0]?.['name'])}`).toBe(INPUT_API_VERSION);
    expect(names['kind']).toBe(INPUT_KIND);
    expect(asNode(crd['metadata'], 'metadata')['name']).toBe(
      `${String(names['plural'])}.${String(spec['group'])}`,
    );
  });

  it('mirrors functionInput in function/api/input.ts', () => {
    expect(differences(crdInput(), zodInput(), 'input')).toEqual([]);
  });

  it('defaults the fetch image and command to the Function image and its fetch entrypoint', () => {
    const fetch = asNode(asNode(openApiSchema(crd)['properties'], 'p')['fetch'], 'fetch');
    const props = asNode(fetch['properties'], 'fetch.properties');
    expect(asNode(props['image'], 'image')['default']).toBe(DEFAULT_FETCH_IMAGE);
    expect(asNode(props['command'], 'command')['default']).toEqual(DEFAULT_FETCH_COMMAND);
  });

  it('detects drift on either side', () => {
    const changed = crdInput();
    const fetch = asNode(asNode(changed['properties'], 'p')['fetch'], 'fetch');
    const props = asNode(fetch['properties'], 'fetch.properties');
    asNode(props['backoffLimit'], 'backoffLimit')['maximum'] = 50;
    delete props['imagePullPolicy'];
    props['nodeSelector'] = { type: 'object' };
    expect(differences(changed, zodInput(), 'input')).toEqual([
      'input.fetch.backoffLimit: maximum: CRD 50, zod 20',
      'input.fetch: property "imagePullPolicy" only in zod',
      'input.fetch: property "nodeSelector" only in the CRD',
    ]);
  });
});
