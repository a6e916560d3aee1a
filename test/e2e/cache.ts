// Checks on one ModelCache over the real stack: its status and its replicas' statuses against
// test/e2e/expected/<file>.yaml, and on every cluster it reports Ready, the volume's files
// sha256-identical to the source.
import { expectEqual, expectStatus, volumeFiles, xrPath, type Ctx } from './harness.js';
import type { Json } from './kube.js';

const obj = (v: unknown): Json => (v !== null && typeof v === 'object' ? (v as Json) : {});
const arr = (v: unknown): Json[] => (Array.isArray(v) ? (v as Json[]) : []);
const text = (v: unknown): string =>
  typeof v === 'string' ? v : typeof v === 'number' ? String(v) : '';

export interface ClusterPhase {
  name: string;
  phase: string;
  reason: string;
}

export function clustersOf(xr: Json | undefined): ClusterPhase[] {
  return arr(obj(xr?.['status'])['clusters']).map((c) => ({
    name: text(c['name']),
    phase: text(c['phase']),
    reason: text(c['reason']),
  }));
}

/** Every matched cluster has a phase that stays put on its own (Ready or Failed). */
export function settled(xr: Json, clusters: number): boolean {
  const cs = clustersOf(xr);
  return cs.length === clusters && cs.every((c) => c.phase === 'Ready' || c.phase === 'Failed');
}

/** The replicas a ModelCache composed (Crossplane's controller owner reference names it). */
export async function replicasOf(ctx: Ctx, ns: string, cache: Json): Promise<Json[]> {
  if (!ctx.kinds.some((k) => k.kind === 'ModelCacheReplica')) return [];
  const uid = obj(cache['metadata'])['uid'];
  const all = await ctx.cp.list(xrPath(ctx.kind('ModelCacheReplica'), ns));
  return all.filter((r) =>
    arr(obj(r['metadata'])['ownerReferences']).some((o) => o['uid'] === uid),
  );
}

/** The cache's status and each replica's (keyed by cluster), compared whole with the expectation. */
export async function expectCache(ctx: Ctx, file: string, ns: string, name: string): Promise<Json> {
  const mc = await ctx.getXr('ModelCache', ns, name);
  if (!mc) throw new Error(`ModelCache ${ns}/${name} is gone`);
  const replicas: Json = {};
  for (const r of await replicasOf(ctx, ns, mc)) {
    replicas[String(obj(r['spec'])['cluster'] ?? obj(r['metadata'])['name'])] = r['status'] ?? {};
  }
  expectStatus(file, { modelCache: mc['status'] ?? {}, replicas }, ctx.root);
  return mc;
}

/**
 * On each cluster the cache reports Ready: the claim's volume holds exactly `want` (path →
 * sha256), outside the fetch program's own state directory. `claim` defaults to the cache's
 * status.claimName. Fails unless exactly `readyClusters` were Ready and checked.
 */
export async function expectVolumes(
  ctx: Ctx,
  mc: Json,
  want: Record<string, string>,
  clusterIndex: Record<string, number>,
  readyClusters: number,
  claim?: string,
): Promise<number> {
  const ns = text(obj(mc['metadata'])['namespace']);
  const claimName = claim ?? text(obj(mc['status'])['claimName']);
  if (!claimName) throw new Error('the ModelCache reports no claimName');
  let checked = 0;
  for (const c of clustersOf(mc).filter((x) => x.phase === 'Ready')) {
    const i = clusterIndex[c.name];
    if (i === undefined)
      throw new Error(
        `cluster ${c.name} is Ready but the scenario registered no workload cluster for it`,
      );
    const got = await volumeFiles(ctx.wl(i), ns, claimName);
    expectEqual(`files on ${c.name}'s volume (${ctx.wl(i).name}) ${ns}/${claimName}`, got, want);
    checked++;
  }
  expectEqual(
    `Ready clusters of ${ns}/${text(obj(mc['metadata'])['name'])} whose volume was checked`,
    checked,
    readyClusters,
  );
  return checked;
}
