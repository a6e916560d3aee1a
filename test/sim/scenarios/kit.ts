// What scenarios are made of: a fleet, sources, the manifests users apply, assertions.
import type { FunctionProcess } from '../crossplane/function.js';
import type { Json } from '../core/json.js';
import { NS, Sim, XR_API_VERSION, type AddClusterOptions } from '../sim.js';
import { startHub, type ArtifactFile, type Hub } from '../sources.js';

export interface ScenarioContext {
  fn: FunctionProcess;
  /** Observations worth reporting that are not failures. */
  notes: string[];
  sims: Sim[];
  cleanups: (() => Promise<void>)[];
}

export interface Scenario {
  name: string;
  /** One line: the fault and what must hold. */
  title: string;
  /**
   * A product defect this scenario is known to expose, with where it is: the scenario is run
   * and must still fail (XFAIL); if it passes (XPASS) the run fails until this is removed.
   */
  knownIssue?: string;
  run(ctx: ScenarioContext): Promise<void>;
}

export class AssertionError extends Error {}

export function check(cond: boolean, message: string): asserts cond {
  if (!cond) throw new AssertionError(message);
}

export function equal(actual: unknown, expected: unknown, what: string): void {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) throw new AssertionError(`${what}: expected ${e}, got ${a}`);
}

export interface ClusterDef extends AddClusterOptions {
  name: string;
}

/** A cluster with a RWX class binding after `bindAfterMs` (default 15 s). */
export function rwx(
  name: string,
  labels: Record<string, string> = { gpu: 'h100' },
  bindAfterMs: number | 'never' = 15_000,
): ClusterDef {
  return {
    name,
    labels,
    storageClassName: 'nfs-rwx',
    classes: { 'nfs-rwx': { provisioner: 'nfs.csi.k8s.io', bindAfterMs } },
  };
}

export async function world(
  ctx: ScenarioContext,
  clusters: ClusterDef[],
  opts: { rate?: number } = {},
): Promise<Sim> {
  const sim = await Sim.start({
    fn: ctx.fn,
    keepWorkDir: process.env['SIM_KEEP'] === '1',
    ...(opts.rate !== undefined ? { rate: opts.rate } : {}),
  });
  ctx.sims.push(sim);
  ctx.cleanups.push(() => sim.close());
  for (const c of clusters) await sim.addCluster(c.name, c);
  return sim;
}

export async function hub(
  ctx: ScenarioContext,
  files: ArtifactFile[],
  opts: { repo?: string; token?: string; commit?: string } = {},
): Promise<Hub> {
  const h = await startHub({ repo: opts.repo ?? 'acme/llama-mini', files, ...opts });
  ctx.cleanups.push(() => h.hub.close());
  return h;
}

export function hfCache(
  name: string,
  h: Hub,
  opts: {
    selector?: Record<string, string>;
    secret?: string;
    annotations?: Record<string, string>;
    revision?: string;
  } = {},
): Json {
  return {
    apiVersion: XR_API_VERSION,
    kind: 'ModelCache',
    metadata: {
      name,
      namespace: NS,
      ...(opts.annotations ? { annotations: opts.annotations } : {}),
    },
    spec: {
      artifact: {
        kind: 'Weights',
        source: {
          huggingFace: {
            repo: h.repo,
            endpoint: h.hub.endpoint,
            ...(opts.revision !== undefined ? { revision: opts.revision } : {}),
            ...(opts.secret !== undefined ? { secretRef: { name: opts.secret } } : {}),
          },
        },
      },
      mount: { path: `/mnt/models/${name}` },
      storage: { pvc: { sizeGiB: 1 } },
      clusterSelector: { matchLabels: opts.selector ?? { gpu: 'h100' } },
    },
  };
}

export function modelDeployment(
  name: string,
  caches: string[],
  opts: { replicas?: number; selector?: Record<string, string> } = {},
): Json {
  return {
    apiVersion: XR_API_VERSION,
    kind: 'ModelDeployment',
    metadata: { name, namespace: NS },
    spec: {
      caches: caches.map((c) => ({ name: c })),
      clusterSelector: { matchLabels: opts.selector ?? { gpu: 'h100' } },
      replicas: opts.replicas ?? 1,
      engine: {
        image: 'vllm/vllm-openai:v0.6.3',
        args: ['--model', `/mnt/models/${caches[0] ?? ''}`],
      },
    },
  };
}

export function hfTokenSecret(name: string, token: string): Json {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name, namespace: NS },
    type: 'Opaque',
    stringData: { HF_TOKEN: token },
  };
}

/** Every cluster of the cache in this phase/reason. */
export function allAre(sim: Sim, cache: string, phaseReason: string, clusters: string[]): boolean {
  const p = sim.phases(cache);
  return clusters.every((c) => p[c] === phaseReason) && Object.keys(p).length === clusters.length;
}

/** Placed replicas per cluster of a ModelDeployment. */
export function placed(sim: Sim, name: string): Record<string, number> {
  const xr = sim.get(sim.deploymentRef(name));
  const status = xr?.['status'] as { clusters?: { name: string; replicas: number }[] } | undefined;
  return Object.fromEntries((status?.clusters ?? []).map((c) => [c.name, c.replicas]));
}

/** Engine pods running per cluster (the rendered workloads, as kubelets run them). */
export function enginePods(sim: Sim, cluster: string): number {
  return sim
    .remote(cluster, 'v1', 'Pod', NS)
    .filter(
      (p) =>
        p.metadata.labels?.['app.kubernetes.io/component'] === 'inference' &&
        p.metadata.deletionTimestamp === undefined,
    ).length;
}

/** Bytes the hub's CDN served for one LFS file, over all requests. */
export function cdnBytes(h: Hub, path: string): number {
  const sha = h.hub.sha256Of(path);
  return h.hub.cdnRequests.filter((r) => r.path.includes(sha)).reduce((n, r) => n + r.bytes, 0);
}

export function totalBytes(h: Hub): number {
  return h.files.reduce((n, f) => n + f.bytes.length, 0);
}

/**
 * Function calls made for the caches, their replicas and the deployments (not the
 * InferenceClusters), over all XRs of those kinds.
 */
export function functionCalls(sim: Sim): number {
  return [sim.xr.ModelCache, sim.xr.ModelCacheReplica, sim.xr.ModelDeployment]
    .flatMap((c) => [...c.calls.values()])
    .reduce((n, c) => n + c, 0);
}
