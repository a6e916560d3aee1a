// The in-process render (`npm run render`) against the goldens the upstream Crossplane render
// checks (render.conformance.ts): the same documents for every example at every stage, so users
// without Go or Docker see what `crossplane composition render` shows. Runs in `npm test`.
//
// `UPDATE_GOLDEN=1 npm test` rewrites the examples' stage fixtures (make-stages.ts) and these
// goldens from the in-process render, so a change to the Function's output can be taken without
// Go; the upstream suite in .ci/run then checks the very same files against the real render.
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GOLDEN_DIR, UPDATING, golden } from '../support/golden.js';
import { childName, renderUID, uuidV5Nil } from '../render/engine.js';
import { outcomeOf, renderCaseInProcess } from '../render/run.js';
import { allCases, listExamples, readDocs, type RenderCase } from './examples.js';
import { syncStages } from './make-stages.js';

// When updating, the fixtures are written first: the cases include the replica files they add.
if (UPDATING) for (const ex of listExamples()) await syncStages(ex, true);
const cases = allCases();
const examples = listExamples();

function expected(c: RenderCase, actual: unknown): unknown {
  if (UPDATING) return golden(c.golden, actual);
  const path = join(GOLDEN_DIR, `${c.golden}.json`);
  if (!existsSync(path)) {
    throw new Error(`no golden ${c.golden}.json: run UPDATE_GOLDEN=1 npm test and review it`);
  }
  return JSON.parse(readFileSync(path, 'utf8')) as unknown;
}

describe('the examples', () => {
  it('are there, each with a README, functions.yaml and at least one XR', () => {
    expect(examples.length).toBeGreaterThan(0);
    for (const ex of examples) {
      expect(existsSync(join(ex.dir, 'README.md')), `${ex.name}/README.md`).toBe(true);
      expect(existsSync(join(ex.dir, 'functions.yaml')), `${ex.name}/functions.yaml`).toBe(true);
      expect(ex.xrFiles, `${ex.name} has XR files`).not.toEqual([]);
    }
  });

  it('include v0.2 previews, each of which must be refused', () => {
    expect(cases.filter((c) => c.expectRejected).map((c) => c.example)).toEqual([
      '7-preview-content-addressed',
      '8-preview-lora-adapter',
      '9-preview-compiled-engine',
    ]);
  });

  it('render each ModelCache at every stage together with the replicas it composes', () => {
    const caches = cases.filter((c) => c.xr['kind'] === 'ModelCache' && !c.expectRejected);
    expect(caches.length).toBeGreaterThan(0);
    const replicaCases = cases.filter((c) => c.replica);
    const nameOf = (d: Record<string, unknown>): string =>
      String((d['metadata'] as Record<string, unknown>)['name']);
    const parentOf = (d: Record<string, unknown>): string =>
      String(
        ((d['spec'] as Record<string, unknown>)['cacheRef'] as Record<string, unknown>)['name'],
      );
    for (const c of caches) {
      const at = replicaCases.filter(
        (r) => r.example === c.example && r.stage === c.stage && parentOf(r.xr) === nameOf(c.xr),
      );
      expect(at.length, `${c.example}/${c.xrFile} at ${c.stage} has replicas`).toBeGreaterThan(0);
      // Each is rendered with its parent as of the same stage among the required resources.
      for (const r of at) expect(r.requiredPaths).toContain(c.xrPath);
    }
    for (const r of replicaCases) {
      expect(r.xr['kind'], r.xrFile).toBe('ModelCacheReplica');
      expect(
        caches.some(
          (c) => c.example === r.example && c.stage === r.stage && nameOf(c.xr) === parentOf(r.xr),
        ),
        `${r.example}/${r.xrFile} at ${r.stage} has its parent at the same stage`,
      ).toBe(true);
    }
  });

  it('dial function-modelcache with the Development runtime', () => {
    for (const ex of examples) {
      const fn = readDocs(join(ex.dir, 'functions.yaml')).find(
        (d) => (d['metadata'] as Record<string, unknown>)['name'] === 'function-modelcache',
      );
      const annotations = (fn?.['metadata'] as Record<string, unknown> | undefined)?.[
        'annotations'
      ] as Record<string, string> | undefined;
      expect(annotations?.['render.crossplane.io/runtime'], ex.name).toBe('Development');
    }
  });
});

describe('the generated fixtures (replicas and stages)', () => {
  // Before the renders: they read these files.
  it.each(examples)(
    'of $name are what make-stages.ts writes for the current Function',
    async (ex) => {
      const stale = await syncStages(ex, UPDATING);
      if (!UPDATING) {
        expect(stale, 'run `npx tsx test/conformance/make-stages.ts` and review the diff').toEqual(
          [],
        );
      }
    },
    // Every stage of an example is rendered (each cache and each replica), on a shared machine.
    180_000,
  );
});

describe('in-process render agrees with the upstream render', () => {
  it.each(cases)('$example/$xrFile at $stage', async (c) => {
    const got = JSON.parse(JSON.stringify(outcomeOf(await renderCaseInProcess(c)))) as unknown;
    expect(got).toEqual(expected(c, got));
  });
});

describe('the conformance goldens', () => {
  it('are each read by a case: none is left behind by a renamed stage, XR or replica', () => {
    const root = join(GOLDEN_DIR, 'conformance');
    const files = (dir: string): string[] =>
      readdirSync(dir).flatMap((n) =>
        statSync(join(dir, n)).isDirectory() ? files(join(dir, n)) : [join(dir, n)],
      );
    const read = new Set(
      cases.flatMap((c) => [
        `${c.golden}.json`,
        // What the upstream suite's `resource validate` of a v0.2 preview reports.
        ...(c.expectRejected ? [`${c.golden}.validate.json`] : []),
      ]),
    );
    const unread = files(root)
      .map((p) => relative(GOLDEN_DIR, p))
      .filter((p) => !read.has(p));
    expect(unread).toEqual([]);
  });
});

describe('names as Crossplane computes them', () => {
  it('gives an XR without a UID the one render gives it', () => {
    // As in every golden of examples/1-single-cluster-basic (ownerReferences[].uid).
    expect(
      renderUID({
        apiVersion: 'modelplane.ai/v1alpha1',
        kind: 'ModelCache',
        metadata: { name: 'llama-3-8b', namespace: 'team-a' },
      }),
    ).toBe('b0c93025-4a94-50b7-9966-728db602e356');
    expect(uuidV5Nil('')).toMatch(
      /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
    );
  });

  it('names composed resources <prefix>-<12 hex>, at most 63 characters', () => {
    // The replica's claim Object in examples/1-single-cluster-basic: a composed XR keeps its
    // parent's crossplane.io/composite label, so its Objects are named after the ModelCache,
    // hashed with the replica's own UID (as the upstream render names them in every golden).
    const replicaUID = renderUID({
      apiVersion: 'modelplane.ai/v1alpha1',
      kind: 'ModelCacheReplica',
      metadata: { name: 'llama-3-8b-us-east', namespace: 'team-a' },
    });
    expect(replicaUID).toBe('7069b94e-031d-5d19-a7c9-d4b1df2b4117');
    expect(childName('llama-3-8b-', replicaUID, 'pvc')).toBe('llama-3-8b-5e9a3d31e153');
    const long = childName(`${'a'.repeat(70)}-`, 'uid', 'x');
    expect(long).toHaveLength(63);
    expect(long).toMatch(/^a{50}-[0-9a-f]{12}$/);
  });
});
