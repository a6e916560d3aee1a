// The schema-drift gate: every XRD generated from zod is committed exactly as generated, and the
// gate refuses each way the two can part — a zod change not regenerated, a hand edit of the
// generated file, metadata for a field zod no longer has, and metadata that states what zod owns.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';

import {
  inferenceClusterSpec,
  inferenceClusterStatus,
} from '../../function/api/inferencecluster.js';
import { GENERATED_XRDS, ROOT, driftOf, fileOf, generateXrd } from './xrd-from-zod.js';

const IC = 'apis/inferenceclusters/definition.yaml';
const IC_META = readFileSync(join(ROOT, 'function/api/inferencecluster.xrd-meta.yaml'), 'utf8');
const IC_COMMITTED = readFileSync(join(ROOT, IC), 'utf8');

describe('generated XRDs are committed as generated', () => {
  it.each(Object.keys(GENERATED_XRDS).map(fileOf))('%s', async (file) => {
    const name = Object.keys(GENERATED_XRDS).find((n) => fileOf(n) === file) ?? '';
    const generated = await generateXrd(name, GENERATED_XRDS[name]?.parts ?? {});
    expect(driftOf(file, readFileSync(join(ROOT, file), 'utf8'), generated)).toBeUndefined();
  });
});

describe('the drift gate refuses', () => {
  it.each([
    {
      reason: 'a zod bound changed but not regenerated',
      committed: IC_COMMITTED,
      parts: {
        spec: inferenceClusterSpec,
        status: inferenceClusterStatus.extend({
          storage: inferenceClusterStatus.shape.storage
            .unwrap()
            .extend({ provisioner: z.string().max(63).optional() })
            .optional(),
        }),
      },
      expected: `${IC} is not what \`npm run generate:xrds\` writes; first difference:\n  committed: maxLength: 253\n  generated: maxLength: 63`,
    },
    {
      reason: 'a hand edit of the generated file',
      committed: IC_COMMITTED.replace('shortNames:\n      - icl', 'shortNames:\n      - ic'),
      parts: { spec: inferenceClusterSpec, status: inferenceClusterStatus },
      expected: `${IC} is not what \`npm run generate:xrds\` writes; first difference:\n  committed: - ic\n  generated: - icl`,
    },
  ])('$reason', async ({ committed, parts, expected }) => {
    expect(driftOf(IC, committed, await generateXrd('inferenceclusters', parts))).toBe(expected);
  });

  it.each([
    {
      reason: 'a field added to zod without a description in the metadata',
      parts: {
        spec: inferenceClusterSpec.extend({ region: z.string().max(64).optional() }),
        status: inferenceClusterStatus,
      },
      meta: IC_META,
      expected:
        'function/api/inferencecluster.xrd-meta.yaml:\n  .spec.region: no description in the metadata (kubectl explain shows it)',
    },
    {
      reason: 'metadata for a field zod no longer has',
      parts: {
        spec: inferenceClusterSpec,
        status: inferenceClusterStatus.omit({ providerConfigRef: true }),
      },
      meta: IC_META,
      expected:
        'function/api/inferencecluster.xrd-meta.yaml:\n  .status.providerConfigRef: in the metadata, not in zod',
    },
    {
      reason: 'metadata stating a bound zod owns',
      parts: { spec: inferenceClusterSpec, status: inferenceClusterStatus },
      meta: IC_META.replace(
        '                    name:\n                      description: Name of the provider config.\n',
        '                    name:\n                      description: Name of the provider config.\n                      maxLength: 63\n',
      ),
      expected:
        'function/api/inferencecluster.xrd-meta.yaml:\n  .spec.providerConfigRef.name: the metadata states "maxLength", which zod states',
    },
  ])('$reason', async ({ parts, meta, expected }) => {
    const refused: unknown = await generateXrd('inferenceclusters', parts, meta).then(
      () => 'generated',
      (err: unknown) => (err instanceof Error ? err.message : err),
    );
    expect(refused).toBe(expected);
  });
});
