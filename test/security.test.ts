import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import {
  Ready,
  RunFunctionRequest,
  RunFunctionResponse,
} from '@crossplane-org/function-sdk-typescript';
import { runFunction } from '../function/dispatch.js';
import { createLogger } from '../function/server/logger.js';
import type { Json } from '../function/k8s/object.js';
import * as f from './support/fixtures.js';
import { GOLDEN_DIR } from './support/golden.js';
import { toRunFunctionRequest } from './support/requests.js';
import { World } from './support/world.js';

/** Every checked-in golden: the whole outputs of every scenario the suite renders. */
function goldens(dir = GOLDEN_DIR): string[] {
  return readdirSync(dir).flatMap((entry) => {
    const path = join(dir, entry);
    return statSync(path).isDirectory() ? goldens(path) : path.endsWith('.json') ? [path] : [];
  });
}

/** Every pod spec (an object with a containers list) anywhere in a JSON tree, with its path. */
function podSpecs(node: unknown, path = ''): { path: string; pod: Json }[] {
  if (Array.isArray(node)) return node.flatMap((v, i) => podSpecs(v, `${path}[${i}]`));
  if (node === null || typeof node !== 'object') return [];
  const obj = node as Json;
  const here = Array.isArray(obj['containers']) ? [{ path, pod: obj }] : [];
  return [...here, ...Object.entries(obj).flatMap(([k, v]) => podSpecs(v, `${path}.${k}`))];
}

/** What is wrong with a pod's hardening; [] when it is non-root, read-only, unprivileged. */
function hardeningProblems(pod: Json): string[] {
  const podCtx = (pod['securityContext'] ?? {}) as Json;
  const problems: string[] = [];
  const containers = [
    ...(pod['containers'] as Json[]),
    ...((pod['initContainers'] as Json[] | undefined) ?? []),
  ];
  for (const c of containers) {
    const ctx = (c['securityContext'] ?? {}) as Json;
    const name = String(c['name']);
    if (ctx['runAsNonRoot'] !== true && podCtx['runAsNonRoot'] !== true)
      problems.push(`${name}: may run as root`);
    if (ctx['readOnlyRootFilesystem'] !== true) problems.push(`${name}: writable root filesystem`);
    if (ctx['allowPrivilegeEscalation'] !== false)
      problems.push(`${name}: privilege escalation allowed`);
    const drop = ((ctx['capabilities'] ?? {}) as Json)['drop'];
    if (!Array.isArray(drop) || !drop.includes('ALL'))
      problems.push(`${name}: capabilities not all dropped`);
    const seccomp = ((ctx['seccompProfile'] ?? podCtx['seccompProfile'] ?? {}) as Json)['type'];
    if (seccomp !== 'RuntimeDefault') problems.push(`${name}: seccomp is not RuntimeDefault`);
  }
  return problems;
}

/** Cache volumes (modelcache-*) must be mounted read-only everywhere a consumer mounts them. */
function writableCacheMounts(pod: Json): string[] {
  const cacheVolumes = new Set(
    ((pod['volumes'] as Json[] | undefined) ?? [])
      .filter((v) => String(v['name']).startsWith('modelcache-'))
      .map((v) => {
        const pvc = v['persistentVolumeClaim'] as Json | undefined;
        return pvc?.['readOnly'] === true ? String(v['name']) : `!${String(v['name'])}`;
      }),
  );
  const out = [...cacheVolumes]
    .filter((n) => n.startsWith('!'))
    .map((n) => `volume ${n.slice(1)} not readOnly`);
  for (const c of pod['containers'] as Json[]) {
    for (const m of (c['volumeMounts'] as Json[] | undefined) ?? []) {
      const name = String(m['name']);
      if ((cacheVolumes.has(name) || cacheVolumes.has(`!${name}`)) && m['readOnly'] !== true) {
        out.push(`${String(c['name'])} mounts ${name} writable`);
      }
    }
  }
  return out;
}

const files = goldens();
// The mount step passes authors' own pods through: their hardening is the author's call.
const composedByUs = files.filter((p) => !relative(GOLDEN_DIR, p).startsWith('mountstep'));

describe('the checks themselves', () => {
  it('flag a bare pod and a writable cache mount', () => {
    const bare: Json = {
      containers: [{ name: 'c', volumeMounts: [{ name: 'modelcache-x', mountPath: '/m' }] }],
      volumes: [{ name: 'modelcache-x', persistentVolumeClaim: { claimName: 'x' } }],
    };
    expect(hardeningProblems(bare)).toEqual([
      'c: may run as root',
      'c: writable root filesystem',
      'c: privilege escalation allowed',
      'c: capabilities not all dropped',
      'c: seccomp is not RuntimeDefault',
    ]);
    expect(writableCacheMounts(bare)).toEqual([
      'volume modelcache-x not readOnly',
      'c mounts modelcache-x writable',
    ]);
  });
});

describe('every composed pod is hardened', () => {
  it('finds pods to check in the goldens', () => {
    expect(
      composedByUs.flatMap((p) => podSpecs(JSON.parse(readFileSync(p, 'utf8')))).length,
    ).toBeGreaterThan(10);
  });
  it.each(composedByUs.map((p) => ({ golden: relative(GOLDEN_DIR, p), path: p })))(
    '$golden',
    ({ path }) => {
      const problems = podSpecs(JSON.parse(readFileSync(path, 'utf8'))).flatMap(
        ({ path: at, pod }) => hardeningProblems(pod).map((p) => `${at}: ${p}`),
      );
      expect(problems).toEqual([]);
    },
  );
});

describe('every consumer mount of a cache is read-only', () => {
  it.each(files.map((p) => ({ golden: relative(GOLDEN_DIR, p), path: p })))(
    '$golden',
    ({ path }) => {
      const problems = podSpecs(JSON.parse(readFileSync(path, 'utf8'))).flatMap(
        ({ path: at, pod }) => writableCacheMounts(pod).map((p) => `${at}: ${p}`),
      );
      expect(problems).toEqual([]);
    },
  );
});

describe('a secret value never appears in output or logs', () => {
  const SENTINEL = 'sk_SENTINEL_c0ffee_never_print';
  const encodings = [SENTINEL, Buffer.from(SENTINEL).toString('base64')];

  it('across a whole cache lifecycle, with the secret in observed Objects and required resources', () => {
    const lines: string[] = [];
    const log = createLogger(
      { debug: true },
      new Writable({
        write: (chunk: Buffer, _e, done) => {
          lines.push(chunk.toString());
          done();
        },
      }),
    );
    const outputs: string[] = [];
    const w = new World(
      f.HF_WEIGHTS,
      ['a', 'b'].map((n) =>
        f.inferenceClusterXR(n, { storageClassName: 'nfs', classExists: true }),
      ),
    );
    const leak = (req: RunFunctionRequest): RunFunctionRequest => {
      // provider-kubernetes persists copied values in the Object's spec and (unsanitised) status.
      for (const res of Object.values(req.observed?.resources ?? {})) {
        const body = res.resource as Json;
        const manifest = (
          (body['spec'] as Json | undefined)?.['forProvider'] as Json | undefined
        )?.['manifest'] as Json | undefined;
        if (manifest?.['kind'] === 'Secret') {
          manifest['data'] = { HF_TOKEN: encodings[1] };
          body['status'] = {
            atProvider: { manifest: { ...manifest, stringData: { HF_TOKEN: SENTINEL } } },
          };
        }
      }
      // A Secret may also be listed among required resources by a misconfigured selector.
      req.requiredResources['provider-config'] = {
        items: [
          {
            resource: {
              apiVersion: 'v1',
              kind: 'Secret',
              metadata: { name: 'x' },
              data: { k: encodings[1] },
            },
            connectionDetails: {},
            ready: Ready.READY_UNSPECIFIED,
          },
        ],
      };
      return req;
    };
    const phases: [string, f.JobObservation | undefined][] = [
      ['created', undefined],
      ['running', { state: 'running', done: 1, total: 2 }],
      ['failed', { state: 'failed', error: 'boom' }],
      ['refetch', undefined],
      ['complete', { state: 'complete', revision: 'abc' }],
    ];
    for (const [label, job] of phases) {
      if (label === 'refetch') w.annotations = { 'modelplane.ai/refetch': '1' };
      for (const c of ['a', 'b']) w.set(c, { claim: 'Bound', job });
      // The cache's call, then each replica's, each with the secret planted where it can be.
      w.reconcileCache();
      for (const req of [w.cacheRequest(), w.replicaRequest('a'), w.replicaRequest('b')]) {
        const rsp = runFunction(leak(toRunFunctionRequest(req)), log);
        outputs.push(JSON.stringify(RunFunctionResponse.toJSON(rsp)));
      }
      w.reconcile();
    }
    const everything = [...outputs, ...lines].join('\n');
    for (const e of encodings) expect(everything.includes(e)).toBe(false);
    expect(outputs.length).toBe(phases.length * 3);
  });
});
