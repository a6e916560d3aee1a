// The scenarios, in the order they run. Each applies an example (or a variant named in its
// title) to the real stack, waits for the cache to settle, asserts its status and its
// replicas' statuses whole (test/e2e/expected/<name>.yaml) and, on every Ready cluster, that
// the volume's files are sha256-identical to the source.
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

import { parse } from 'yaml';

import { bytes } from '../support/fetch-harness.js';
import type { TestHub } from '../support/fetch-hub.js';
import { clustersOf, expectCache, expectVolumes, replicasOf, settled } from './cache.js';
import { condition, expectEqual, OBJECTS, pause, text, type Ctx } from './harness.js';
import type { Json } from './kube.js';
import { waitFor } from './procs.js';
import { matching, modelRepo, type Sources } from './sources.js';
import { sha256Map } from './harness.js';
import { craneImage, startFront, startRegistry } from '../oci/peers.js';

export interface Scenario {
  name: string;
  title: string;
  run(ctx: Ctx, sources: Sources): Promise<void>;
}

/** Workload apiservers the stack boots; scenarios map the examples' cluster names onto them. */
export const WORKLOAD_CLUSTERS = 3;
const NS = 'team-a';
/** InferenceClusters of the fleet-200 scenario: three real clusters, the rest unreachable. */
const FLEET = 200;
/** What a replica on a cluster that cannot be reached reports: its namespace cannot be made. */
const FAR_REASON = 'NamespacePending';
const FLEET_SUMMARY = {
  failedClusters: 0,
  matchedClusters: FLEET,
  ready: `3/${String(FLEET)}`,
  readyClusters: 3,
};

/** A kubeconfig for a cluster that does not exist: loopback port 1, where nothing listens. */
function unreachableKubeconfig(): string {
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters: [{ name: far, cluster: { server: "https://127.0.0.1:1", insecure-skip-tls-verify: true } }]',
    'users: [{ name: far, user: { token: not-a-real-token } }]',
    'contexts: [{ name: far, context: { cluster: far, user: far } }]',
    'current-context: far',
    '',
  ].join('\n');
}

const obj = (v: unknown): Json => (v !== null && typeof v === 'object' ? (v as Json) : {});

interface ClusterSetup {
  /** Workload apiserver index the example's cluster name maps to. */
  wl: number;
  /** The RWX StorageClass to create there (absent: the cluster has none). */
  storageClass?: [name: string, provisioner: string];
}

/**
 * The platform team's part of an example: kubeconfig Secrets, StorageClasses, the provider
 * configs and InferenceClusters from prerequisites/, each InferenceCluster's storage observed.
 */
async function platform(
  ctx: Ctx,
  example: string,
  clusters: Record<string, ClusterSetup>,
  files: string[],
): Promise<void> {
  await ctx.registerClusters(
    Object.fromEntries(Object.entries(clusters).map(([n, c]) => [n, c.wl])),
  );
  for (const c of Object.values(clusters)) {
    if (c.storageClass) await ctx.storageClass(c.wl, c.storageClass[0], c.storageClass[1]);
  }
  await ctx.namespace(NS);
  for (const f of files) await ctx.apply(ctx.example(`${example}/prerequisites/${f}`));
  for (const name of Object.keys(clusters)) {
    await ctx.waitXr(
      'InferenceCluster',
      undefined,
      name,
      'storage observed',
      (ic) => {
        const c = condition(ic, 'StorageClassFound');
        return c !== undefined && c['status'] !== 'Unknown';
      },
      180_000,
    );
  }
}

/**
 * Applies the cache and waits for its steady state: every matched cluster Ready or Failed and
 * the cache's own ArtifactReady condition caught up with them (no longer Staging), and Ready
 * too when every cluster is. Seconds to Ready are the cache's Ready condition turning True.
 */
async function stage(ctx: Ctx, docs: Json[], clusters: number, timeoutMs = 360_000): Promise<Json> {
  const name = String(obj(docs[0]?.['metadata'])['name']);
  const t0 = Date.now();
  await ctx.apply(docs);
  return steady(ctx, name, clusters, t0, timeoutMs);
}

export async function steady(
  ctx: Ctx,
  name: string,
  clusters: number,
  t0: number,
  timeoutMs = 360_000,
): Promise<Json> {
  const xr = await ctx.waitXr(
    'ModelCache',
    NS,
    name,
    `steady on ${clusters} clusters`,
    (x) => {
      if (!settled(x, clusters)) return false;
      if (condition(x, 'ArtifactReady')?.['reason'] === 'Staging') return false;
      const allReady = clustersOf(x).every((c) => c.phase === 'Ready');
      return !allReady || condition(x, 'Ready')?.['status'] === 'True';
    },
    timeoutMs,
  );
  if (condition(xr, 'Ready')?.['status'] === 'True')
    ctx.report.readySeconds = (Date.now() - t0) / 1000;
  // And each Ready replica steady: it found nothing left to change (the Job removed) and reads
  // no input from then on (status.steady). Its status stays as it is from here. A replica's
  // status is written by two field managers (the watch counts show apiextensions.crossplane.io/
  // composite/status and crossplane/status), and a gang run once read status.steady beside an
  // InputsObserved condition that did not yet say Steady: wait for both.
  await waitFor(`every Ready replica of ${name} steady`, 180_000, async () => {
    const replicas = await replicasOf(ctx, NS, xr);
    const ready = replicas.filter((r) => obj(r['status'])['phase'] === 'Ready');
    return ready.every(
      (r) =>
        typeof obj(r['status'])['steady'] === 'string' &&
        condition(r, 'InputsObserved')?.['reason'] === 'Steady',
    )
      ? true
      : undefined;
  });
  return (await ctx.getXr('ModelCache', NS, name)) ?? xr;
}

function hfEdit(endpoint: string): (d: Json) => void {
  return (d) => {
    const hf = obj(obj(obj(obj(d['spec'])['artifact'])['source'])['huggingFace']);
    if (d['kind'] === 'ModelCache' && Object.keys(hf).length > 0) hf['endpoint'] = endpoint;
  };
}

function includeOf(docs: Json[]): string[] {
  const hf = obj(obj(obj(obj(docs[0]?.['spec'])['artifact'])['source'])['huggingFace']);
  return (hf['include'] as string[] | undefined) ?? [];
}

function revisionOf(docs: Json[]): string {
  const hf = obj(obj(obj(obj(docs[0]?.['spec'])['artifact'])['source'])['huggingFace']);
  return typeof hf['revision'] === 'string' ? hf['revision'] : 'main';
}

/** A 40-hex commit for a repo whose example names a branch. */
const COMMIT = 'c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00';

const US_EAST: Record<string, ClusterSetup> = {
  'us-east': { wl: 0, storageClass: ['nfs-rwx', 'nfs.csi.k8s.io'] },
};
const SINGLE = ['providerconfig.yaml', 'inferencecluster.yaml'];

/** Example 1's platform part and its repo on the test hub (slow: 16 MB of weights at 160 KiB/s each). */
async function hfSingle(
  ctx: Ctx,
  sources: Sources,
  opts: { slow?: boolean } = {},
): Promise<{ docs: Json[]; want: Record<string, string>; hub: TestHub }> {
  const example = '1-single-cluster-basic';
  await platform(ctx, example, US_EAST, [...SINGLE, 'secret.yaml']);
  const files = modelRepo(1, opts.slow ? [8_000_000, 8_000_000] : undefined);
  const hub = await sources.hub({
    repo: 'meta-llama/Llama-3.1-8B-Instruct',
    files,
    commit: COMMIT,
    refs: ['main'],
    token: 'hf_replace_me',
  });
  if (opts.slow) {
    for (const f of files.filter((x) => x.lfs && x.path.endsWith('.safetensors'))) {
      hub.faults.add(f.path, { kind: 'slow', chunk: 16 * 1024, everyMs: 100 }, { sticky: true });
    }
  }
  const docs = ctx.example(`${example}/xr.yaml`, hfEdit(hub.endpoint));
  const want = sha256Map(matching(files, includeOf(docs)));
  return { docs, want, hub };
}

async function expectSingle(
  ctx: Ctx,
  file: string,
  name: string,
  want: Record<string, string>,
): Promise<void> {
  const mc = await expectCache(ctx, file, NS, name);
  const n = await expectVolumes(ctx, mc, want, { 'us-east': 0 }, 1);
  ctx.note(`${n} Ready cluster(s): files sha256-identical to the source`);
}

/**
 * Waits until a fetch pod runs on workload cluster `i` and its Job reports at least `fraction`
 * of the bytes staged; returns the pod (namespace/name).
 */
async function waitDownloading(ctx: Ctx, i: number, fraction: number): Promise<string> {
  return waitFor(
    `a fetch pod past ${Math.round(fraction * 100)} % of the bytes`,
    240_000,
    async () => {
      const jobs = await ctx.wl(i).kube.list(`/apis/batch/v1/namespaces/${NS}/jobs`);
      const moving = jobs.some((j) => {
        const a = obj(obj(j['metadata'])['annotations']);
        const done = Number(a['modelplane.ai/bytes-done'] ?? 0);
        const total = Number(a['modelplane.ai/bytes-total'] ?? 0);
        return total > 0 && done >= fraction * total;
      });
      const pods = ctx.wl(i).kubelet.runningPods();
      return moving && pods[0] !== undefined ? pods[0] : undefined;
    },
    250,
  );
}

/** The fetch program's JSON log lines from a pod on workload cluster i. */
function podLogLines(ctx: Ctx, i: number, podName: string): Json[] {
  const log = ctx
    .wl(i)
    .kubelet.containerLogs()
    .find((f) => f.includes(`_${podName}_`));
  if (!log) return [];
  return readFileSync(log, 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Json);
}

/** The fetch program's own account of a finished pod: its "staged" log line. */
function stagedLine(ctx: Ctx, i: number, podName: string): Json | undefined {
  return podLogLines(ctx, i, podName).find((l) => l['msg'] === 'staged');
}

export const SCENARIOS: Scenario[] = [
  {
    name: 'inline',
    title: 'example 6: inline bytes staged on one cluster',
    async run(ctx) {
      const example = '6-opaque-bytes';
      await platform(ctx, example, US_EAST, SINGLE);
      const docs = ctx.example(`${example}/xr-inline.yaml`);
      const files = obj(
        obj(obj(obj(obj(docs[0]?.['spec'])['artifact'])['source'])['inline'])['files'],
      ) as Record<string, string>;
      await stage(ctx, docs, 1);
      await expectSingle(ctx, 'inline', 'chat-templates', sha256Map(files));
    },
  },
  {
    name: 'configmap',
    title: 'example 6: bytes from a ConfigMap copied by provider-kubernetes (only the listed keys)',
    async run(ctx) {
      const example = '6-opaque-bytes';
      await platform(ctx, example, US_EAST, [...SINGLE, 'configmap.yaml']);
      const cm = ctx.example(`${example}/prerequisites/configmap.yaml`)[0] ?? {};
      const docs = ctx.example(`${example}/xr-configmap.yaml`);
      const items = obj(obj(obj(obj(docs[0]?.['spec'])['artifact'])['source'])['configMap'])[
        'items'
      ] as string[];
      const data = obj(cm['data']) as Record<string, string>;
      await stage(ctx, docs, 1);
      await expectSingle(
        ctx,
        'configmap',
        'guardrails',
        sha256Map(Object.fromEntries(items.map((k) => [k, data[k] ?? '']))),
      );
    },
  },
  {
    name: 'hf',
    title: 'example 1: a Hugging Face repo (gated: token from the Secret) through the test hub',
    async run(ctx, sources) {
      const { docs, want, hub } = await hfSingle(ctx, sources);
      await stage(ctx, docs, 1);
      await expectSingle(ctx, 'hf', 'llama-3-8b', want);
      const unauth = hub.requests.filter((r) => r.status === 401).length;
      expectEqual('hub requests refused for a missing token', unauth, 0);
    },
  },
  {
    name: 'multi',
    title:
      'example 3: three clusters; eu-west has no RWX class and fails fast, the others go Ready',
    async run(ctx, sources) {
      const example = '3-multi-cluster-replication';
      const clusters: Record<string, ClusterSetup> = {
        'us-east': { wl: 0, storageClass: ['efs-rwx', 'efs.csi.aws.com'] },
        'us-west': { wl: 1, storageClass: ['efs-rwx', 'efs.csi.aws.com'] },
        'eu-west': { wl: 2 },
      };
      // cpu-pool is registered but not selected (no gpu label): its provider config names a
      // kubeconfig Secret that does not exist, and nothing may be composed for it.
      await platform(ctx, example, clusters, ['providerconfigs.yaml', 'inferenceclusters.yaml']);
      const docs = ctx.example(`${example}/xr.yaml`);
      const files = modelRepo(3);
      files.push({ path: 'tokenizer.model.v3', bytes: bytes(40_000, 377), lfs: true });
      const hub = await sources.hub({
        repo: 'mistralai/Mistral-7B-Instruct-v0.3',
        files,
        commit: revisionOf(docs),
      });
      for (const d of docs) hfEdit(hub.endpoint)(d);
      await stage(ctx, docs, 3);
      const mc = await expectCache(ctx, 'multi', NS, 'mistral-7b');
      const n = await expectVolumes(
        ctx,
        mc,
        sha256Map(matching(files, includeOf(docs))),
        {
          'us-east': 0,
          'us-west': 1,
          'eu-west': 2,
        },
        2,
      );
      const euObjects = (await ctx.cp.list(OBJECTS)).filter(
        (o) =>
          JSON.stringify(o).includes('"eu-west"') &&
          obj(obj(o['spec'])['forProvider'])['manifest'] !== undefined &&
          String(obj(obj(obj(o['spec'])['forProvider'])['manifest'])['kind']) === 'Job',
      );
      expectEqual('prefetch Jobs composed for eu-west', euObjects.length, 0);
      // Issue 12 #6: with the burst the README advises, no XR's breaker opened on the way.
      expectEqual(
        'a watch circuit breaker opened (an XR condition or the Crossplane log)',
        ctx.report.circuitOpened ||
          /WatchCircuitOpen|circuit breaker open/i.test(ctx.crossplaneLog()),
        false,
      );
      ctx.note(`${n} Ready clusters: files sha256-identical to the source; eu-west failed fast`);
    },
  },
  {
    name: 's3-private',
    title:
      'example 5: private S3 (moto); the secret key is a sentinel that must appear nowhere it should not',
    async run(ctx, sources) {
      const example = '5-private-s3';
      const sentinel = `e2e-sentinel-${randomBytes(12).toString('hex')}`;
      await platform(
        ctx,
        example,
        { 'onprem-a': { wl: 0, storageClass: ['cephfs', 'cephfs.csi.ceph.com'] } },
        SINGLE,
      );
      const objects: Record<string, Buffer> = {
        'llama-3.1-8b-support-bot/v7/config.json': Buffer.from('{"model_type":"llama"}\n'),
        'llama-3.1-8b-support-bot/v7/model.safetensors': bytes(700_000, 501),
        'llama-3.1-8b-support-bot/v7/tokenizer/tokenizer.json': Buffer.from('{"v":1}\n'),
        'llama-3.1-8b-support-bot/v6/old.bin': bytes(10_000, 502),
      };
      const endpoint = await sources.s3('ml-models', objects, { id: 'AKIAE2E', secret: sentinel });
      const secret = ctx.example(`${example}/prerequisites/secret.yaml`);
      obj(secret[0]?.['stringData'])['AWS_ACCESS_KEY_ID'] = 'AKIAE2E';
      obj(secret[0]?.['stringData'])['AWS_SECRET_ACCESS_KEY'] = sentinel;
      await ctx.apply(secret);
      const docs = ctx.example(`${example}/xr.yaml`, (d) => {
        obj(obj(obj(obj(d['spec'])['artifact'])['source'])['s3'])['endpoint'] = endpoint;
      });
      await stage(ctx, docs, 1);
      const mc = await expectCache(ctx, 's3-private', NS, 'llama-3-8b-finetune');
      const want: Record<string, Buffer> = {};
      for (const [k, v] of Object.entries(objects)) {
        if (k.startsWith('llama-3.1-8b-support-bot/v7/'))
          want[k.slice('llama-3.1-8b-support-bot/v7/'.length)] = v;
      }
      await expectVolumes(ctx, mc, sha256Map(want), { 'onprem-a': 0 }, 1);
      const leaks = await sentinelLeaks(ctx, sentinel);
      expectEqual('places the sentinel secret appears', leaks, []);
      ctx.note('sentinel secret absent from every XR, event, Object status and component log');
    },
  },
  {
    name: 'oci',
    title:
      'example 11: a modelcar image (crane) from a real registry behind a token challenge; the registry password is a sentinel',
    async run(ctx) {
      const example = '11-oci-modelcar';
      const sentinel = `e2e-sentinel-${randomBytes(12).toString('hex')}`;
      await platform(
        ctx,
        example,
        { 'gpu-west': { wl: 0, storageClass: ['efs-rwx', 'efs.csi.aws.com'] } },
        SINGLE,
      );
      const registry = await startRegistry();
      const front = await startFront(registry.host, {
        bearer: { user: 'ml-team', password: sentinel, token: `tok-${sentinel}` },
      });
      const work = mkdtempSync(join(tmpdir(), 'e2e-oci-'));
      try {
        const weights = bytes(900_000, 1101);
        const ref = `${registry.host}/modelcars/granite-3.1-8b-instruct:v1`;
        const digest = await craneImage(work, ref, [
          [
            { name: 'bin/sh', data: 'not a shell' },
            { name: 'models/model-00001-of-00001.safetensors', data: weights },
            { name: 'models/config.json', data: '{"v":1}\n' },
            { name: 'models/stale.json', data: '{}\n' },
          ],
          [
            { name: 'models/config.json', data: '{"v":2}\n' },
            { name: 'models/.wh.stale.json', data: '' },
            { name: 'models/tokenizer.json', data: '{"vocab":{}}\n' },
            { name: 'models/README.md', data: 'not staged: outside the include globs\n' },
          ],
        ]);
        const secret = ctx.example(`${example}/prerequisites/secret.yaml`);
        const auth = Buffer.from(`ml-team:${sentinel}`).toString('base64');
        obj(secret[0]?.['stringData'])['.dockerconfigjson'] = JSON.stringify({
          auths: { [front.host]: { auth } },
        });
        await ctx.apply(secret);
        const docs = ctx.example(`${example}/xr.yaml`, (d) => {
          const oci = obj(obj(obj(obj(d['spec'])['artifact'])['source'])['oci']);
          oci['ref'] = `${front.host}/modelcars/granite-3.1-8b-instruct:v1`;
          oci['plainHTTP'] = true;
        });
        await stage(ctx, docs, 1);
        const mc = await expectCache(ctx, 'oci', NS, 'granite-8b');
        await expectVolumes(
          ctx,
          mc,
          sha256Map({
            'model-00001-of-00001.safetensors': weights,
            'config.json': '{"v":2}\n',
            'tokenizer.json': '{"vocab":{}}\n',
          }),
          { 'gpu-west': 0 },
          1,
        );
        const replica = await ctx.getXr('ModelCacheReplica', NS, 'granite-8b-gpu-west');
        expectEqual(
          'the revision the replica reports (the tag resolved to its manifest digest)',
          obj(replica?.['status'])['resolvedRevision'],
          digest,
        );
        const challenged = front.requests.filter((r) => r.at === 'realm' && r.status === 200);
        expectEqual('tokens the realm handed out', challenged.length >= 1, true);
        const leaks = await sentinelLeaks(ctx, sentinel);
        expectEqual('places the registry password appears', leaks, []);
        ctx.note(
          `staged image ${digest} through a Bearer challenge; the password appears nowhere it must not`,
        );
      } finally {
        await front.close();
        await registry.stop();
        rmSync(work, { recursive: true, force: true });
      }
    },
  },
  {
    name: 'tokenizer',
    title: 'example 4: weights and a separate tokenizer cache, and a deployment mounting both',
    async run(ctx, sources) {
      const example = '4-separate-tokenizer';
      await platform(ctx, example, US_EAST, [...SINGLE, 'secret.yaml']);
      const files = modelRepo(4);
      const weights = ctx.example(`${example}/xr-weights.yaml`);
      const hub = await sources.hub({
        repo: 'mistralai/Mistral-7B-Instruct-v0.3',
        files,
        commit: revisionOf(weights),
        token: 'hf_replace_me',
      });
      for (const d of weights) hfEdit(hub.endpoint)(d);
      const tokenizer = ctx.example(`${example}/xr-tokenizer.yaml`, hfEdit(hub.endpoint));
      const t0 = Date.now();
      await ctx.apply(tokenizer);
      await stage(ctx, weights, 1);
      await steady(ctx, 'mistral-7b-tokenizer', 1, t0);
      for (const [docs, file] of [
        [weights, 'tokenizer-weights'],
        [tokenizer, 'tokenizer-tokenizer'],
      ] as const) {
        const name = String(obj(docs[0]?.['metadata'])['name']);
        const mc = await expectCache(ctx, file, NS, name);
        await expectVolumes(
          ctx,
          mc,
          sha256Map(matching(files, includeOf(docs))),
          { 'us-east': 0 },
          1,
        );
      }
      await ctx.apply(ctx.example(`${example}/xr-deployment.yaml`));
      await ctx.waitXr(
        'ModelDeployment',
        NS,
        'mistral-7b-chat',
        'placed',
        (x) =>
          condition(x, 'Synced')?.['status'] === 'True' &&
          JSON.stringify(x['status'] ?? {}).includes('us-east'),
        180_000,
      );
      const dep = await waitFor('the Deployment on us-east', 120_000, () =>
        ctx.wl(0).kube.getOrUndefined(`/apis/apps/v1/namespaces/${NS}/deployments/mistral-7b-chat`),
      );
      const claims = JSON.stringify(obj(obj(obj(dep['spec'])['template'])['spec'])['volumes']);
      for (const c of ['modelcache-mistral-7b-weights', 'modelcache-mistral-7b-tokenizer']) {
        if (!claims.includes(c))
          throw new Error(`the Deployment on us-east does not mount claim ${c}: ${claims}`);
      }
      ctx.note(
        'both caches Ready with identical files; the Deployment on us-east mounts both claims',
      );
    },
  },
  {
    name: 'existing-pvc',
    title:
      'ExistingPVC: Pending (ClaimNotBound) until the claim exists and binds, then Ready as is',
    async run(ctx) {
      await platform(ctx, '1-single-cluster-basic', US_EAST, SINGLE);
      const cache: Json = {
        apiVersion: 'modelplane.ai/v1alpha1',
        kind: 'ModelCache',
        metadata: { name: 'prestaged', namespace: NS },
        spec: {
          artifact: {
            kind: 'Weights',
            source: { huggingFace: { repo: 'acme/prestaged-model', revision: COMMIT } },
          },
          mount: { path: '/mnt/models/prestaged' },
          storage: { backend: 'ExistingPVC', existingPVC: { claimName: 'shared-models' } },
        },
      };
      const t0 = Date.now();
      await ctx.apply([cache]);
      await ctx.waitXr(
        'ModelCache',
        NS,
        'prestaged',
        'Pending (ClaimNotBound)',
        (x) => clustersOf(x).some((c) => c.reason === 'ClaimNotBound'),
        180_000,
      );
      await ctx.namespace(NS, ctx.wl(0).kube);
      await ctx.apply(
        [
          {
            apiVersion: 'v1',
            kind: 'PersistentVolumeClaim',
            metadata: { name: 'shared-models', namespace: NS },
            spec: {
              accessModes: ['ReadWriteMany'],
              storageClassName: 'nfs-rwx',
              resources: { requests: { storage: '5Gi' } },
            },
          },
        ],
        ctx.wl(0).kube,
      );
      // Someone else populates the claim: here, straight onto its volume once it binds.
      const content = {
        'config.json': Buffer.from('{"prestaged":true}\n'),
        'weights/model.safetensors': bytes(200_000, 901),
      };
      const dir = await waitFor('the claim bound', 60_000, async () => {
        const pvc = await ctx
          .wl(0)
          .kube.get(`/api/v1/namespaces/${NS}/persistentvolumeclaims/shared-models`);
        const pv =
          typeof obj(pvc['spec'])['volumeName'] === 'string'
            ? String(obj(pvc['spec'])['volumeName'])
            : '';
        if (!pv || obj(pvc['status'])['phase'] !== 'Bound') return undefined;
        return String(
          obj(
            obj((await ctx.wl(0).kube.get(`/api/v1/persistentvolumes/${pv}`))['spec'])['hostPath'],
          )['path'],
        );
      });
      for (const [p, b] of Object.entries(content)) {
        mkdirSync(dirname(join(dir, p)), { recursive: true });
        writeFileSync(join(dir, p), b);
      }
      await steady(ctx, 'prestaged', 1, t0, 240_000);
      const mc = await expectCache(ctx, 'existing-pvc', NS, 'prestaged');
      await expectVolumes(ctx, mc, sha256Map(content), { 'us-east': 0 }, 1, 'shared-models');
      expectEqual(
        'fetch pods run for an ExistingPVC cache',
        ctx.wl(0).kubelet.started.filter((p) => p.at >= t0).length,
        0,
      );
    },
  },
  {
    name: 'refetch',
    title: 'the refetch annotation re-stages the same source once, and Ready again',
    async run(ctx) {
      const example = '6-opaque-bytes';
      await platform(ctx, example, US_EAST, SINGLE);
      const docs = ctx.example(`${example}/xr-inline.yaml`);
      const files = obj(
        obj(obj(obj(obj(docs[0]?.['spec'])['artifact'])['source'])['inline'])['files'],
      ) as Record<string, string>;
      const t0 = Date.now();
      await stage(ctx, docs, 1);
      const before = ctx.wl(0).kubelet.started.filter((p) => p.at >= t0).length;
      expectEqual('fetch pods before the refetch', before, 1);
      const t1 = Date.now();
      await ctx.cp.mergePatch(
        `/apis/modelplane.ai/v1alpha1/namespaces/${NS}/modelcaches/chat-templates`,
        { metadata: { annotations: { 'modelplane.ai/refetch': 'e2e-1' } } },
      );
      await waitFor(
        'a second fetch pod',
        240_000,
        () => (ctx.wl(0).kubelet.started.filter((p) => p.at >= t1).length > 0 ? true : undefined),
        1000,
      );
      await steady(ctx, 'chat-templates', 1, t1, 240_000);
      await pause(5000);
      expectEqual(
        'fetch pods after the refetch',
        ctx.wl(0).kubelet.started.filter((p) => p.at >= t0).length,
        2,
      );
      await expectSingle(ctx, 'refetch', 'chat-templates', sha256Map(files));
    },
  },
  {
    name: 'fetch-fails',
    title: 'a fetch that fails is Failed with its reason, not retried until a new refetch token',
    async run(ctx, sources) {
      await platform(ctx, '1-single-cluster-basic', US_EAST, SINGLE);
      const blob = bytes(300_000, 777);
      const server = await sources.http({});
      const cache: Json = {
        apiVersion: 'modelplane.ai/v1alpha1',
        kind: 'ModelCache',
        metadata: { name: 'gguf', namespace: NS },
        spec: {
          artifact: {
            kind: 'Weights',
            source: { http: { url: server.url('/models/model.gguf'), path: 'model.gguf' } },
          },
          mount: { path: '/mnt/models/gguf' },
          storage: { pvc: { sizeGiB: 1 } },
        },
      };
      const t0 = Date.now();
      const xr = await stage(ctx, [cache], 1);
      expectEqual(
        'phase after a 404',
        clustersOf(xr).map((c) => c.phase),
        ['Failed'],
      );
      await expectCache(ctx, 'fetch-fails', NS, 'gguf');
      const pods = ctx.wl(0).kubelet.started.filter((p) => p.at >= t0).length;
      // A 404 is permanent: the fetch program exits EXIT_PERMANENT and the real Job controller's
      // podFailurePolicy fails the Job on its first pod (it ran backoffLimit + 1 = 4 without).
      expectEqual('fetch pods before Failed', pods, 1);
      const jobs = await ctx.wl(0).kube.list(`/apis/batch/v1/namespaces/${NS}/jobs`);
      expectEqual(
        'why the Job failed',
        jobs.flatMap((j) =>
          ((obj(j['status'])['conditions'] as Json[] | undefined) ?? [])
            .filter((c) => c['type'] === 'Failed')
            .map((c) => c['reason']),
        ),
        ['PodFailurePolicy'],
      );
      // Past the Function's 60 s TTL and provider-kubernetes' 30 s re-observe: nothing retries.
      await pause(75_000);
      expectEqual(
        'fetch pods 75 s after Failed',
        ctx.wl(0).kubelet.started.filter((p) => p.at >= t0).length,
        pods,
      );
      ctx.note(
        `${pods} fetch pod ran before the Job failed by its podFailurePolicy; none in the 75 s after`,
      );
      server.files.set('/models/model.gguf', blob);
      const t1 = Date.now();
      await ctx.cp.mergePatch(`/apis/modelplane.ai/v1alpha1/namespaces/${NS}/modelcaches/gguf`, {
        metadata: { annotations: { 'modelplane.ai/refetch': 'after-fix' } },
      });
      await ctx.waitXr(
        'ModelCache',
        NS,
        'gguf',
        'Ready after the new token',
        (x) => condition(x, 'Ready')?.['status'] === 'True',
        240_000,
      );
      // Then steady: the status compared is the one that stays (Failed was settled too, so
      // steady() alone would return before the refetch began).
      const ready = await steady(ctx, 'gguf', 1, t1, 240_000);
      await expectVolumes(ctx, ready, sha256Map({ 'model.gguf': blob }), { 'us-east': 0 }, 1);
      await expectCache(ctx, 'fetch-fails-refetched', NS, 'gguf');
    },
  },
  {
    name: 'usage-blocks-delete',
    title: 'deleting a cache a ModelDeployment uses is refused by the real Usage webhook',
    async run(ctx) {
      const example = '6-opaque-bytes';
      await platform(ctx, example, US_EAST, SINGLE);
      await stage(ctx, ctx.example(`${example}/xr-inline.yaml`), 1);
      await ctx.apply([
        {
          apiVersion: 'modelplane.ai/v1alpha1',
          kind: 'ModelDeployment',
          metadata: { name: 'chat', namespace: NS },
          spec: {
            caches: [{ name: 'chat-templates', kind: 'Bytes' }],
            replicas: 1,
            engine: { image: 'vllm/vllm-openai:v0.6.3' },
          },
        },
      ]);
      await waitFor(
        'the Usage Ready',
        180_000,
        async () => {
          const us = await ctx.cp.list(
            `/apis/protection.crossplane.io/v1beta1/namespaces/${NS}/usages`,
          );
          return us.some((u) => condition(u, 'Ready')?.['status'] === 'True') ? us : undefined;
        },
        1000,
      );
      let refused = '';
      try {
        await ctx.cp.kubectl([
          '-n',
          NS,
          'delete',
          'modelcache',
          'chat-templates',
          '--dry-run=server',
        ]);
      } catch (err) {
        refused = err instanceof Error ? err.message : String(err);
      }
      if (!/denied the request|in use/i.test(refused))
        throw new Error(`deleting a cache in use was not refused: ${refused || 'it succeeded'}`);
      ctx.note(
        `refused: ${refused.split('\n').find((l) => l.includes('denied')) ?? refused.slice(0, 200)}`,
      );
      await expectCache(ctx, 'usage-blocks-delete', NS, 'chat-templates');
    },
  },
  {
    name: 'gang',
    title:
      'example 2: LeaderWorkerSet gangs placed only where the weights are Ready; leader and workers mount read-only',
    async run(ctx, sources) {
      const example = '2-gang-tensor-pipeline';
      const clusters: Record<string, ClusterSetup> = {
        'us-east': { wl: 0, storageClass: ['nfs-rwx', 'nfs.csi.k8s.io'] },
        'us-west': { wl: 1, storageClass: ['efs-rwx', 'efs.csi.aws.com'] },
        'eu-west': { wl: 2 },
      };
      const crd = parse(readFileSync(ctx.stack.bins.lwsCrd, 'utf8')) as Json;
      for (const w of ctx.stack.workloads) await ctx.apply([crd], w.kube);
      // Established comes before the new resource's watch cache is ready; until then a list
      // answers 429, so wait for every workload cluster to serve one.
      const lwsPath = `/apis/leaderworkerset.x-k8s.io/v1/namespaces/${NS}/leaderworkersets`;
      await waitFor('LeaderWorkerSets served on every workload cluster', 120_000, async () => {
        for (const w of ctx.stack.workloads) await w.kube.list(lwsPath);
        return true;
      });
      await platform(ctx, example, clusters, [
        'providerconfigs.yaml',
        'inferenceclusters.yaml',
        'secret.yaml',
      ]);
      const cache = ctx.example(`${example}/xr-cache.yaml`);
      const files = modelRepo(2);
      const hub = await sources.hub({
        repo: 'meta-llama/Llama-3.1-70B-Instruct',
        files,
        commit: revisionOf(cache),
        token: 'hf_replace_me',
      });
      for (const d of cache) hfEdit(hub.endpoint)(d);
      await stage(ctx, cache, 3);
      const mc = await expectCache(ctx, 'gang-cache', NS, 'llama-3-70b');
      await expectVolumes(
        ctx,
        mc,
        sha256Map(matching(files, includeOf(cache))),
        {
          'us-east': 0,
          'us-west': 1,
          'eu-west': 2,
        },
        2,
      );
      await ctx.apply(ctx.example(`${example}/xr-deployment.yaml`));
      const placed = await waitFor(
        'gangs on us-east and us-west',
        240_000,
        async () => {
          const east = await ctx.wl(0).kube.list(lwsPath);
          const west = await ctx.wl(1).kube.list(lwsPath);
          return east.length > 0 && west.length > 0 ? [...east, ...west] : undefined;
        },
        2000,
      );
      expectEqual('LeaderWorkerSets on eu-west', (await ctx.wl(2).kube.list(lwsPath)).length, 0);
      for (const lws of placed) {
        const tmpl = obj(obj(lws['spec'])['leaderWorkerTemplate']);
        for (const role of ['leaderTemplate', 'workerTemplate']) {
          const pod = obj(obj(tmpl[role])['spec']);
          const mounts = ((pod['containers'] as Json[] | undefined) ?? []).flatMap(
            (c) => (c['volumeMounts'] as Json[] | undefined) ?? [],
          );
          const m = mounts.find((x) => x['mountPath'] === '/mnt/models/llama-3-70b');
          if (m?.['readOnly'] !== true)
            throw new Error(
              `${role} of a gang does not mount the weights read-only: ${JSON.stringify(mounts)}`,
            );
        }
      }
      await waitFor('the ModelDeployment reports its placement', 120_000, async () => {
        const md = await ctx.getXr('ModelDeployment', NS, 'llama-3-70b-chat');
        return condition(md, 'Synced')?.['status'] === 'True' ? md : undefined;
      });
      ctx.note(
        `${placed.length} LeaderWorkerSets (us-east, us-west), none on eu-west; leader and workers mount read-only`,
      );
    },
  },
  {
    name: 'kill-resume',
    title: "the fetch pod killed mid-download: the Job's next pod resumes from the checkpoint",
    async run(ctx, sources) {
      const { docs, want, hub } = await hfSingle(ctx, sources, { slow: true });
      const t0 = Date.now();
      await ctx.apply(docs);
      const pod = await waitDownloading(ctx, 0, 0.3);
      const [ns = '', name = ''] = pod.split('/');
      if (!ctx.wl(0).kubelet.killContainer(ns, name))
        throw new Error(`no container of ${pod} to kill`);
      ctx.note(`killed ${pod} mid-download`);
      await steady(ctx, 'llama-3-8b', 1, t0, 360_000);
      await expectSingle(ctx, 'kill-resume', 'llama-3-8b', want);
      const pods = ctx.wl(0).kubelet.started.filter((p) => p.at >= t0).length;
      expectEqual('fetch pods (the killed one and the one that resumed)', pods, 2);
      const second = ctx.wl(0).kubelet.started.filter((p) => p.at >= t0 && p.name !== name)[0];
      const staged = second ? stagedLine(ctx, 0, second.name) : undefined;
      // The killed pod's lock is taken over at once (the Job starts its next pod only once the
      // killed one has Failed), not after the lock's heartbeat goes stale.
      const lockLines = second
        ? podLogLines(ctx, 0, second.name)
            .filter((l) => String(l['msg']).includes('volume lock'))
            .map((l) => `${String(l['msg'])} (${String(l['why'])})`)
        : [];
      expectEqual('the next pod’s volume-lock log lines', lockLines, [
        'took over the volume lock: its holder is provably gone (gone)',
      ]);
      const resumedBytes = Number(staged?.['bytesResumed'] ?? 0);
      // The killed pod had 30 % or more on disk: the next one must not fetch it all again.
      if (!(resumedBytes > 0.2 * Number(staged?.['bytesTotal'] ?? 0))) {
        throw new Error(`the pod after the kill resumed too little: ${JSON.stringify(staged)}`);
      }
      const served = hub.cdnRequests.reduce((n, r) => n + r.bytes, 0);
      ctx.note(
        `the next pod resumed ${resumedBytes} of ${String(staged?.['bytesTotal'])} bytes; the CDN served ${served} bytes in all`,
      );
    },
  },
  {
    name: 'restarts',
    title: 'provider-kubernetes, the Function and Crossplane restarted mid-hydration: nothing lost',
    async run(ctx, sources) {
      const { docs, want } = await hfSingle(ctx, sources, { slow: true });
      const t0 = Date.now();
      await ctx.apply(docs);
      await waitDownloading(ctx, 0, 0.1);
      for (const c of ['provider-kubernetes', 'function', 'crossplane']) {
        await ctx.stack.restart(c);
        ctx.note(`restarted ${c} at +${Math.round((Date.now() - t0) / 1000)} s`);
        await pause(3000);
      }
      await steady(ctx, 'llama-3-8b', 1, t0, 360_000);
      await expectSingle(ctx, 'restarts', 'llama-3-8b', want);
      expectEqual(
        'fetch pods (one: nothing restarted the download)',
        ctx.wl(0).kubelet.started.filter((p) => p.at >= t0).length,
        1,
      );
    },
  },
  {
    name: 'fleet-200',
    title:
      'issue 12 #6: one cache over 200 InferenceClusters, 197 of them behind provider configs for clusters that do not exist: every replica reports',
    async run(ctx) {
      const real: Record<string, ClusterSetup> = {
        'fleet-0': { wl: 0, storageClass: ['nfs-rwx', 'nfs.csi.k8s.io'] },
        'fleet-1': { wl: 1, storageClass: ['nfs-rwx', 'nfs.csi.k8s.io'] },
        'fleet-2': { wl: 2, storageClass: ['nfs-rwx', 'nfs.csi.k8s.io'] },
      };
      const far = Array.from({ length: FLEET - 3 }, (_, i) => `far-${String(i).padStart(3, '0')}`);
      await ctx.registerClusters(
        Object.fromEntries(Object.entries(real).map(([n, c]) => [n, c.wl])),
      );
      for (const c of Object.values(real)) {
        if (c.storageClass) await ctx.storageClass(c.wl, c.storageClass[0], c.storageClass[1]);
      }
      for (const n of far) ctx.unreachable.add(n);
      await ctx.namespace(NS);
      // Nothing listens on port 1 of loopback: every connection is refused at once.
      await ctx.apply([
        {
          apiVersion: 'v1',
          kind: 'Secret',
          metadata: { name: 'unreachable-kubeconfig', namespace: 'crossplane-system' },
          stringData: { kubeconfig: unreachableKubeconfig() },
        },
      ]);
      const pcs = [...Object.keys(real), ...far].map((name) => ({
        apiVersion: 'kubernetes.m.crossplane.io/v1alpha1',
        kind: 'ClusterProviderConfig',
        metadata: { name },
        spec: {
          credentials: {
            source: 'Secret',
            secretRef: {
              namespace: 'crossplane-system',
              name: name.startsWith('far-') ? 'unreachable-kubeconfig' : `${name}-kubeconfig`,
              key: 'kubeconfig',
            },
          },
        },
      }));
      const ics = [...Object.keys(real), ...far].map((name) => ({
        apiVersion: 'modelplane.ai/v1alpha1',
        kind: 'InferenceCluster',
        metadata: { name, labels: { fleet: 'f200' } },
        spec: {
          providerConfigRef: { kind: 'ClusterProviderConfig', name },
          storage: { storageClassName: 'nfs-rwx' },
        },
      }));
      await ctx.apply([...pcs, ...ics]);
      const docs = ctx.example('6-opaque-bytes/xr-inline.yaml', (d) => {
        if (d['kind'] === 'ModelCache') {
          obj(d['metadata'])['name'] = 'fleet-templates';
          obj(d['spec'])['clusterSelector'] = { matchLabels: { fleet: 'f200' } };
        }
      });
      const files = obj(
        obj(obj(obj(obj(docs[0]?.['spec'])['artifact'])['source'])['inline'])['files'],
      ) as Record<string, string>;
      const t0 = Date.now();
      await ctx.apply(docs);
      // Steady: the cache lists every cluster, each one's replica has reported for the
      // cache's identity (no ReplicaPending), and the three real clusters are Ready.
      const reported = (x: Json): boolean => {
        const cs = clustersOf(x);
        return (
          cs.length === FLEET &&
          cs.every((c) => c.reason !== 'ReplicaPending' && c.phase !== '') &&
          cs.filter((c) => c.phase === 'Ready').length === 3
        );
      };
      let mc = await ctx.waitXr(
        'ModelCache',
        NS,
        'fleet-templates',
        'every replica reporting',
        reported,
        900_000,
      );
      const seconds = (Date.now() - t0) / 1000;
      ctx.report.readySeconds = seconds;
      // Still so half a minute later: a steady state, not a moment.
      await pause(30_000);
      mc = (await ctx.getXr('ModelCache', NS, 'fleet-templates')) ?? {};
      const replicas = await replicasOf(ctx, NS, mc);
      expectEqual('replicas composed', replicas.length, FLEET);
      const unreported = replicas.filter((r) => text(obj(r['status'])['phase']) === '');
      expectEqual(
        'replicas without a phase',
        unreported.map((r) => obj(r['metadata'])['name']),
        [],
      );
      const got = clustersOf(mc).sort((a, b) => a.name.localeCompare(b.name));
      const want = [
        ...Object.keys(real).map((name) => ({ name, phase: 'Ready', reason: 'Staged' })),
        ...far.map((name) => ({ name, phase: 'Pending', reason: FAR_REASON })),
      ].sort((a, b) => a.name.localeCompare(b.name));
      expectEqual('every cluster of the cache (name, phase, reason)', got, want);
      expectEqual('the cache summary', obj(obj(mc['status'])['summary']), FLEET_SUMMARY);
      const n = await expectVolumes(
        ctx,
        mc,
        sha256Map(files),
        { 'fleet-0': 0, 'fleet-1': 1, 'fleet-2': 2 },
        3,
      );
      const farReplica = replicas.find((r) => text(obj(r['spec'])['cluster']) === 'far-000');
      ctx.note(
        `${FLEET} clusters: every replica reporting after ${seconds.toFixed(1)} s; ${n} Ready clusters sha256-identical; far-000 says: ${text(obj(farReplica?.['status'])['message'])}`,
      );
    },
  },
];

/** Where a secret value shows up that it must not: XRs, events, Object status, component logs. */
async function sentinelLeaks(ctx: Ctx, sentinel: string): Promise<string[]> {
  const forms = [sentinel, Buffer.from(sentinel).toString('base64')];
  const hit = (s: string): boolean => forms.some((f) => s.includes(f));
  const out: string[] = [];
  for (const { kind, xr } of await ctx.allXrs()) {
    if (hit(JSON.stringify(xr))) out.push(`${kind.kind} ${String(obj(xr['metadata'])['name'])}`);
  }
  for (const o of await ctx.cp.list(OBJECTS)) {
    if (hit(JSON.stringify(o['status'] ?? {})))
      out.push(`Object ${String(obj(o['metadata'])['name'])} status`);
  }
  for (const k of [ctx.cp, ...ctx.stack.workloads.map((w) => w.kube)]) {
    for (const e of await k.list('/api/v1/events')) {
      if (hit(JSON.stringify(e)))
        out.push(`event ${k.access.name} ${String(obj(e['metadata'])['name'])}`);
    }
  }
  for (const [name, p] of ctx.stack.procs) if (hit(p.logSince(0))) out.push(`log of ${name}`);
  for (const w of ctx.stack.workloads) {
    for (const f of w.kubelet.containerLogs()) {
      if (hit(readFileSync(f, 'utf8'))) out.push(`container log ${f}`);
    }
  }
  // Not a leak the contract forbids, but worth knowing: provider-kubernetes persists values
  // patched from Secrets in the Object's spec.
  const inSpec = (await ctx.cp.list(OBJECTS)).filter((o) =>
    hit(JSON.stringify(o['spec'] ?? {})),
  ).length;
  if (inSpec > 0)
    ctx.note(
      `the sentinel is in the spec of ${inSpec} Object(s) (provider-kubernetes writes patched Secret values there)`,
    );
  await pause(0);
  return out;
}
