// Conformance with the real Crossplane CLI: every example at every lifecycle stage is rendered by
// `crossplane composition render` (the core's real composition reconciler, --crossplane-binary)
// against our Function started on a free port, and compared whole with its golden; XRDs,
// Compositions, example inputs and rendered output are validated with `crossplane resource
// validate` against our XRDs and provider-kubernetes' CRDs. The v0.2 previews must be refused by
// both. Missing binaries fail these tests (they never skip): .ci/run builds them first.
//
//   test/conformance/build-crossplane.sh && npm run test:conformance
//   UPDATE_GOLDEN=1 npm run test:conformance     # after an intended change; review the diff
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { golden } from '../support/golden.js';
import {
  REPLICAS_DIR,
  ROOT,
  allCases,
  listExamples,
  readDocs,
  rel,
  type Doc,
  type RenderCase,
} from './examples.js';
import {
  removeScratch,
  renderUpstream,
  run,
  toolchain,
  startFunction,
  validate,
  writeDocs,
  type RunningFunction,
  type Toolchain,
} from './upstream.js';
import { join } from 'node:path';
import { existsSync, readdirSync } from 'node:fs';

const tc: Toolchain = toolchain();
const cases = allCases();
const examples = listExamples();
let fn: RunningFunction;

beforeAll(async () => {
  fn = await startFunction();
});
afterAll(async () => {
  await fn.stop();
  removeScratch();
});

/** API groups `resource validate` has schemas for; core kinds (Secret, ConfigMap) are not ours. */
const VALIDATED_GROUPS = ['modelplane.ai/', 'kubernetes.m.crossplane.io/'];
function validated(docs: Doc[], groups: string[]): Doc[] {
  return docs.filter((d) =>
    [...VALIDATED_GROUPS, ...groups].some((g) => String(d['apiVersion']).startsWith(g)),
  );
}

/** The API groups an example's own XRDs define (e.g. example.org/). */
function localGroups(xrds: string[]): string[] {
  return xrds.flatMap(readDocs).map((d) => `${String((d['spec'] as Doc)['group'])}/`);
}

function failureLines(lines: string[]): string[] {
  return lines.filter((l) => l.startsWith('[x]'));
}

function expectAllValid(result: { code: number; lines: string[] }, what: string): void {
  const bad = result.lines.filter((l) => !l.startsWith('[✓]') && !l.startsWith('Total '));
  expect(bad, `${what}: ${result.lines.join('\n')}`).toEqual([]);
  expect(result.code, what).toBe(0);
}

describe('the pinned Crossplane toolchain', () => {
  it('is the CLI pinned in versions.env', async () => {
    const r = await run(tc.cli, ['version', '--client']);
    expect(r.stdout.trim()).toBe(`Client Version: ${tc.cliVersion}`);
  });

  it('renders every example whose Functions it can run, and names the others', () => {
    const rendered = new Set(cases.map((c) => c.example));
    for (const ex of examples) {
      // An example is either rendered here, or says why not (another Function needs Docker).
      expect(rendered.has(ex.name) !== (ex.notRenderable !== undefined), ex.name).toBe(true);
      if (ex.notRenderable !== undefined) {
        process.stdout.write(`not rendered here: ${ex.name}: ${ex.notRenderable}\n`);
      }
    }
    expect(rendered.size).toBeGreaterThan(0);
  });
});

describe('crossplane resource validate', () => {
  it('accepts every XRD and Composition (inputs checked against the input CRD)', async () => {
    expectAllValid(
      await validate(tc, [join(ROOT, 'apis'), join(ROOT, 'compositions')]),
      'apis and compositions',
    );
  });

  const inputs = examples
    .filter((ex) => !ex.expectRejected)
    .map((ex) => {
      const stageDirs = [ex.dir, ...ex.stages.map((s) => join(ex.dir, 'stages', s))];
      const files = [
        ...ex.xrFiles.map((f) => join(ex.dir, f)),
        ...listYaml(join(ex.dir, 'prerequisites')),
        ...ex.stages.flatMap((s) => listYaml(join(ex.dir, 'stages', s))),
        // The ModelCacheReplicas the caches compose, as each stage observes them.
        ...stageDirs.flatMap((d) => listYaml(join(d, REPLICAS_DIR))),
      ];
      return { example: ex.name, files: [...files, ...ex.extraRequired], xrds: ex.localXrds };
    });
  it.each(inputs)(
    'accepts the inputs of $example (XRs, prerequisites, replicas, stages)',
    async (c) => {
      const docs = validated(c.files.flatMap(readDocs), localGroups(c.xrds));
      expect(docs.length).toBeGreaterThan(0);
      expectAllValid(
        await validate(tc, [writeDocs(`inputs/${c.example}.yaml`, docs)], c.xrds),
        c.example,
      );
    },
  );

  const previews = cases.filter((c) => c.expectRejected);
  it.each(previews)('refuses the v0.2 preview $example/$xrFile against our XRDs', async (c) => {
    const result = await validate(tc, [c.xrPath]);
    expect(result.code).not.toBe(0);
    const lines = failureLines(result.lines);
    expect(lines.length).toBeGreaterThan(0);
    expect(lines).toEqual(golden(`${c.golden}.validate`, lines));
  });
});

function listYaml(dir: string): string[] {
  return existsSync(dir)
    ? readdirSync(dir)
        .filter((f) => /\.ya?ml$/.test(f))
        .sort()
        .map((f) => join(dir, f))
    : [];
}

describe('crossplane composition render (Development runtime, --crossplane-binary)', () => {
  it.each(cases)('$example/$xrFile at $stage matches its golden', async (c: RenderCase) => {
    const { raw, ...outcome } = await renderUpstream(c, tc, fn.target);
    if (c.expectRejected) {
      expect('fatal' in outcome, `${rel(c.xrPath)} must be refused: ${raw.stdout}`).toBe(true);
    } else {
      expect('documents' in outcome, `${rel(c.xrPath)} must render: ${raw.stderr}`).toBe(true);
    }
    expect(outcome).toEqual(golden(c.golden, outcome));
  });

  const renderable = cases.filter((c) => !c.expectRejected);
  it.each(renderable)(
    '$example/$xrFile at $stage renders output that validates against the schemas',
    async (c: RenderCase) => {
      const out = await renderUpstream(c, tc, fn.target, { fullXR: true });
      if (!('documents' in out)) throw new Error(`render failed: ${out.fatal}`);
      const docs = out.documents.filter((d) => d['kind'] !== 'Result');
      // The XR and at least one composed resource, or the XR alone when nothing matched.
      expect(docs.length).toBeGreaterThan(0);
      expectAllValid(
        await validate(tc, [writeDocs(`rendered/${c.golden}.yaml`, docs)]),
        `${c.example}/${c.xrFile} at ${c.stage}`,
      );
    },
  );
});
