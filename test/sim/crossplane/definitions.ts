// What the package installs on the control plane, read from the repository: the XRDs under
// apis/ and the Compositions under compositions/. Each XR kind gets the Composition its
// XRD's `defaultCompositionRef` names (SelectComposition with no compositionRef and no
// selector on the XR), which must compose that kind (compositeTypeRef).
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

import { parse as parseYaml } from 'yaml';

import { obj, str, type Json } from '../core/json.js';
import { ROOT } from '../programs.js';
import type { CompositionDef } from './composite.js';

export interface XrdDef {
  file: string;
  kind: string;
  /** group/version of the referenceable version. */
  apiVersion: string;
  scope: 'Namespaced' | 'Cluster';
  defaultComposition: string | undefined;
}

function yamlDoc(relative: string): Json {
  return parseYaml(readFileSync(join(ROOT, relative), 'utf8')) as Json;
}

export function loadXrd(relative: string): XrdDef {
  const doc = yamlDoc(relative);
  const spec = obj(doc, 'spec') ?? {};
  const versions = Array.isArray(spec['versions']) ? (spec['versions'] as Json[]) : [];
  const version =
    versions.find((v) => v['referenceable'] === true) ?? versions.find((v) => v['served']);
  return {
    file: relative,
    kind: str(spec, 'names', 'kind') ?? '',
    apiVersion: `${str(spec, 'group') ?? ''}/${str(version, 'name') ?? ''}`,
    scope: str(spec, 'scope') === 'Cluster' ? 'Cluster' : 'Namespaced',
    defaultComposition: str(spec, 'defaultCompositionRef', 'name'),
  };
}

export function loadComposition(relative: string): CompositionDef {
  const doc = yamlDoc(relative);
  const spec = obj(doc, 'spec') ?? {};
  const pipeline = Array.isArray(spec['pipeline'])
    ? (spec['pipeline'] as CompositionDef['pipeline'])
    : [];
  return {
    name: str(doc, 'metadata', 'name') ?? '',
    apiVersion: str(spec, 'compositeTypeRef', 'apiVersion') ?? '',
    kind: str(spec, 'compositeTypeRef', 'kind') ?? '',
    pipeline,
  };
}

/** Every XRD of the package with the Composition it selects by default. */
export function installed(
  apis = 'apis',
  compositions = 'compositions',
): { xrd: XrdDef; composition: CompositionDef }[] {
  const comps = readdirSync(join(ROOT, compositions))
    .filter((f) => f.endsWith('.yaml'))
    .map((f) => loadComposition(join(compositions, f)));
  return readdirSync(join(ROOT, apis))
    .sort()
    .map((dir) => loadXrd(join(apis, dir, 'definition.yaml')))
    .map((xrd) => {
      const c = comps.find((x) => x.name === xrd.defaultComposition);
      if (!c) {
        throw new Error(
          `${xrd.file}: defaultCompositionRef ${xrd.defaultComposition ?? '(none)'} names no Composition under ${compositions}/`,
        );
      }
      if (c.kind !== xrd.kind || c.apiVersion !== xrd.apiVersion) {
        throw new Error(
          `Composition ${c.name} composes ${c.apiVersion} ${c.kind}, not ${xrd.apiVersion} ${xrd.kind} (${xrd.file})`,
        );
      }
      return { xrd, composition: c };
    });
}
