// How the XRD generator states each zod construct in a structural schema, and what it refuses:
// one field `spec.f` of a throwaway XRD per case, its metadata carrying what zod cannot state.
// (The drift gate over the committed XRDs is xrd-drift.test.ts.)
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';

import { generateXrd } from './xrd-from-zod.js';

const DESCRIPTION = 'The field under test.';

/** A metadata file with one field, spec.f, described and carrying `field` besides. */
function metaWith(field: Record<string, unknown>): string {
  return JSON.stringify({
    apiVersion: 'apiextensions.crossplane.io/v2',
    kind: 'CompositeResourceDefinition',
    metadata: { name: 'xs.example.org' },
    spec: {
      versions: [
        {
          name: 'v1',
          schema: {
            openAPIV3Schema: {
              description: 'An X, for the generator test.',
              properties: {
                spec: {
                  description: 'The spec of an X.',
                  properties: { f: { description: DESCRIPTION, ...field } },
                },
              },
            },
          },
        },
      ],
    },
  });
}

/** spec.f as generated, or the generator's refusal. */
async function generatedField(f: z.ZodType, meta: Record<string, unknown>): Promise<unknown> {
  try {
    const text = await generateXrd('x', { spec: z.object({ f }) }, metaWith(meta));
    const xrd = parse(text) as {
      spec: { versions: { schema: { openAPIV3Schema: { properties: { spec: unknown } } } }[] };
    };
    const spec = xrd.spec.versions[0]?.schema.openAPIV3Schema.properties.spec as {
      properties: { f: unknown };
    };
    return spec.properties.f;
  } catch (err) {
    return err instanceof Error ? err.message : err;
  }
}

const refused = (why: string): string => `function/api/x.xrd-meta.yaml:\n  .spec.f: ${why}`;

describe('the XRD generator', () => {
  it.each([
    {
      reason: 'states zod bounds, enums and defaults, and the description from the metadata',
      zod: z.enum(['A', 'B']).default('A'),
      meta: {},
      expected: { type: 'string', description: DESCRIPTION, enum: ['A', 'B'], default: 'A' },
    },
    {
      reason: 'unwraps a nullable member: a structural schema has one type',
      zod: z.string().max(8).nullable(),
      meta: {},
      expected: { type: 'string', description: DESCRIPTION, maxLength: 8 },
    },
    {
      reason: 'keeps an integer its own bounds, not the safe-integer ones zod adds to .int()',
      zod: z.number().int().min(1),
      meta: {},
      expected: { type: 'integer', description: DESCRIPTION, minimum: 1 },
    },
    {
      reason: 'writes an escaped slash of a pattern plainly (RE2 and JavaScript both take it)',
      zod: z.string().regex(/^https?:\/\//),
      meta: {},
      expected: { type: 'string', description: DESCRIPTION, pattern: '^https?://' },
    },
    {
      reason: 'states no additionalProperties for a strict object (properties or one, not both)',
      zod: z.strictObject({ a: z.string() }),
      meta: { properties: { a: { description: 'A member of f.' } } },
      expected: {
        type: 'object',
        description: DESCRIPTION,
        required: ['a'],
        properties: { a: { type: 'string', description: 'A member of f.' } },
      },
    },
    {
      reason: 'spells a quantity as Kubernetes int-or-string, the string bounds on the node',
      zod: z.union([z.string().min(1).max(64), z.number().int()]),
      meta: {},
      expected: {
        description: DESCRIPTION,
        'x-kubernetes-int-or-string': true,
        anyOf: [{ type: 'integer' }, { type: 'string' }],
        minLength: 1,
        maxLength: 64,
      },
    },
    {
      reason: 'adds the metadata Kubernetes-only rules after what zod states',
      zod: z.array(z.string().min(1)).max(3),
      meta: { items: { description: 'An item of f.' }, 'x-kubernetes-list-type': 'set' },
      expected: {
        type: 'array',
        description: DESCRIPTION,
        items: { type: 'string', description: 'An item of f.', minLength: 1 },
        maxItems: 3,
        'x-kubernetes-list-type': 'set',
      },
    },
    {
      reason: 'takes a map whose keys zod bounds when the metadata states that rule in CEL',
      zod: z.record(z.string().max(8), z.string()),
      meta: {
        additionalProperties: { description: 'A value of f.' },
        'x-kubernetes-validations': [{ rule: 'self.all(k, size(k) <= 8)', message: 'short keys' }],
      },
      expected: {
        type: 'object',
        description: DESCRIPTION,
        additionalProperties: { type: 'string', description: 'A value of f.' },
        'x-kubernetes-validations': [{ rule: 'self.all(k, size(k) <= 8)', message: 'short keys' }],
      },
    },
    {
      reason: 'refuses a map whose keys zod bounds when the metadata has no CEL rule over them',
      zod: z.record(z.string().max(8), z.string()),
      meta: { additionalProperties: { description: 'A value of f.' } },
      expected: refused(
        'zod bounds the keys (maxLength); the metadata needs a CEL rule over them (self.all(k, ...))',
      ),
    },
    {
      reason: 'refuses a union of two types, which no structural schema can state',
      zod: z.union([z.string(), z.boolean()]),
      meta: {},
      expected:
        '.spec.f: zod emits types ["string","boolean"], which no structural schema can state',
    },
    {
      reason: 'refuses a zod keyword it has no XRD form for',
      zod: z.number().multipleOf(5),
      meta: {},
      expected: refused('zod keyword "multipleOf" has no XRD form'),
    },
  ])('$reason', async ({ zod, meta, expected }) => {
    expect(await generatedField(zod, meta)).toEqual(expected);
  });
});
