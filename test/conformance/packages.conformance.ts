// The Function and Configuration packages, built by the upstream `crossplane xpkg build` from
// clean staging folders (build-packages.sh), then opened like Crossplane's package manager opens
// them: the OCI image's manifest, its config labels, and package.yaml in the base layer.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { ROOT, readDocs, repoCompositions, repoXrds, type Doc } from './examples.js';
import { parseYamlDocs, removeScratch, scratchDir, toolchain } from './upstream.js';

interface Opened {
  layers: string[];
  labels: Record<string, string>;
  docs: Doc[];
}

/** Opens an .xpkg (an OCI image tarball): manifest, config labels and the base layer's package.yaml. */
function openPackage(path: string, into: string): Opened {
  mkdirSync(into, { recursive: true });
  execFileSync('tar', ['-xf', path, '-C', into]);
  const manifest = JSON.parse(readFileSync(join(into, 'manifest.json'), 'utf8')) as {
    Config: string;
    Layers: string[];
  }[];
  const image = manifest[0];
  if (!image) throw new Error(`${path}: empty manifest`);
  const config = JSON.parse(readFileSync(join(into, image.Config), 'utf8')) as {
    config?: { Labels?: Record<string, string> };
  };
  const labels = config.config?.Labels ?? {};
  const base = Object.entries(labels).find(([, v]) => v === 'base')?.[0];
  const layer = image.Layers.find((l) => base?.endsWith(l.replace(/\.tar\.gz$/, '')) === true);
  if (!layer) throw new Error(`${path}: no layer labelled io.crossplane.xpkg=base`);
  const yaml = execFileSync('tar', ['-xzOf', join(into, layer), 'package.yaml'], {
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  return { layers: image.Layers, labels, docs: parseYamlDocs(yaml) };
}

function ids(docs: Doc[]): string[] {
  return docs.map((d) => `${String(d['kind'])}/${String((d['metadata'] as Doc)['name'])}`).sort();
}

describe('crossplane xpkg build', () => {
  let fn: Opened;
  let cfg: Opened;
  beforeAll(() => {
    const tc = toolchain();
    const out = join(scratchDir(), 'packages');
    execFileSync('bash', [join(ROOT, 'test/conformance/build-packages.sh'), out], {
      env: { ...process.env, CROSSPLANE_CLI: tc.cli },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    fn = openPackage(join(out, 'function-modelcache.xpkg'), join(out, 'function'));
    cfg = openPackage(join(out, 'configuration-modelcache.xpkg'), join(out, 'configuration'));
  });
  afterAll(removeScratch);

  it('builds the Function package: its metadata and the input CRD, no runtime image', () => {
    expect(fn.layers).toHaveLength(1);
    expect(Object.values(fn.labels)).toEqual(['base']);
    expect(ids(fn.docs)).toEqual([
      'CustomResourceDefinition/inputs.modelcache.fn.modelplane.ai',
      'Function/function-modelcache',
    ]);
    const meta = fn.docs.find((d) => d['kind'] === 'Function') as Doc;
    expect(meta['apiVersion']).toBe('meta.pkg.crossplane.io/v1');
    expect((meta['spec'] as Doc)['crossplane']).toEqual({ version: '>=v2.0.0' });
  });

  it('builds the Configuration package from every XRD and Composition of the repository', () => {
    expect(cfg.layers).toHaveLength(1);
    const expected = [
      'Configuration/configuration-modelcache',
      ...ids([...repoXrds(), ...repoCompositions()].flatMap(readDocs)),
    ].sort();
    expect(ids(cfg.docs)).toEqual(expected);
    // Named as well, so a kind dropped from the repository (not only from the package) fails.
    expect(ids(cfg.docs.filter((d) => d['kind'] !== 'Configuration'))).toEqual([
      'CompositeResourceDefinition/inferenceclusters.modelplane.ai',
      'CompositeResourceDefinition/modelcachereplicas.modelplane.ai',
      'CompositeResourceDefinition/modelcaches.modelplane.ai',
      'CompositeResourceDefinition/modeldeployments.modelplane.ai',
      'Composition/inferencecluster',
      'Composition/modelcache',
      'Composition/modelcachereplica',
      'Composition/modeldeployment',
    ]);
    // What the package carries is what the repository holds, once parsed. xpkg build decodes and
    // re-encodes each object, which adds the XRDs' zero-valued status; nothing else changes.
    for (const file of [...repoXrds(), ...repoCompositions()]) {
      for (const doc of readDocs(file)) {
        const name = (doc['metadata'] as Doc)['name'];
        const packaged = cfg.docs.find((d) => (d['metadata'] as Doc)['name'] === name) ?? {};
        const { status, ...rest } = packaged;
        if (doc['kind'] === 'CompositeResourceDefinition') {
          const none = { apiVersion: '', kind: '' };
          expect(status).toEqual({
            controllers: { compositeResourceClaimType: none, compositeResourceType: none },
          });
        }
        expect(doc['kind'] === 'CompositeResourceDefinition' ? rest : packaged).toEqual(doc);
      }
    }
  });

  it('declares the Crossplane version and the dependencies the Compositions use', () => {
    const meta = cfg.docs.find((d) => d['kind'] === 'Configuration') as Doc;
    const source = parse(
      readFileSync(join(ROOT, 'package/configuration/crossplane.yaml'), 'utf8'),
    ) as Doc;
    expect(meta).toEqual(source);
    const spec = meta['spec'] as Doc;
    expect(spec['crossplane']).toEqual({ version: '>=v2.0.0' });
    expect(spec['dependsOn']).toEqual([
      {
        apiVersion: 'pkg.crossplane.io/v1',
        kind: 'Provider',
        package: 'xpkg.crossplane.io/crossplane-contrib/provider-kubernetes',
        version: '>=v1.0.0',
      },
      {
        apiVersion: 'pkg.crossplane.io/v1',
        kind: 'Function',
        package: 'xpkg.crossplane.io/modelplane-ai/function-modelcache',
        version: '>=v0.1.0',
      },
    ]);
    // Every Composition step calls a Function this package depends on (by the installed name).
    const steps = repoCompositions()
      .flatMap(readDocs)
      .flatMap((c) =>
        ((c['spec'] as Doc)['pipeline'] as Doc[]).map((s) => s['functionRef'] as Doc),
      );
    expect(new Set(steps.map((r) => r['name']))).toEqual(new Set(['function-modelcache']));
  });
});
