// The Function package's input CRD (package/function/input/) beyond its fields, which are
// generated from functionInput (function/api/input.ts; test/schema/xrd-drift.test.ts fails when
// the committed CRD is not what generation writes): the apiVersion and kind it names are the ones
// the Function accepts, and the fetch defaults are the Function's own image and entrypoint.
import { describe, expect, it } from 'vitest';
import { DEFAULT_FETCH_COMMAND, DEFAULT_FETCH_IMAGE } from '../../function/api/input.js';
import { INPUT_API_VERSION, INPUT_KIND } from '../../function/constants.js';
import { asNode, openApiSchema, readYaml, type Node } from '../support/xrd.js';

// The input CRD has an XRD's shape where it matters (spec.versions[0].schema.openAPIV3Schema).
const crd = readYaml('package/function/input/modelcache.fn.modelplane.ai_inputs.yaml');

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

  it('defaults the fetch image and command to the Function image and its fetch entrypoint', () => {
    const fetch = asNode(asNode(openApiSchema(crd)['properties'], 'p')['fetch'], 'fetch');
    const props = asNode(fetch['properties'], 'fetch.properties');
    expect(asNode(props['image'], 'image')['default']).toBe(DEFAULT_FETCH_IMAGE);
    expect(asNode(props['command'], 'command')['default']).toEqual(DEFAULT_FETCH_COMMAND);
  });
});
