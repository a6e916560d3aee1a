// Other sources and backends, refetches, and what operators and networks do to running Jobs.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { startMoto } from '../../support/fetch-python.js';
import { bytes } from '../../support/fetch-harness.js';
import { expectedOf } from '../checks.js';
import { HOUR, MINUTE } from '../core/clock.js';
import { NS, XR_API_VERSION } from '../sim.js';
import { modelFiles } from '../sources.js';
import {
  allAre,
  check,
  enginePods,
  equal,
  hfCache,
  hub,
  modelDeployment,
  placed,
  rwx,
  world,
  type Scenario,
} from './kit.js';

const H100 = { gpu: 'h100' };

export const refetchAfterReady: Scenario = {
  name: 'refetch-after-ready',
  title:
    'a refetch token on a Ready cache re-stages every cluster under a new identity while the running workloads are held',
  async run(ctx) {
    const both = ['eu-west', 'us-east'];
    const sim = await world(
      ctx,
      both.map((n) => rwx(n, H100)),
    );
    const h = await hub(ctx, modelFiles(21));
    sim.apply(hfCache('llama', h));
    sim.expect('llama', h.expected);
    sim.apply(modelDeployment('chat', ['llama'], { replicas: 2 }));
    await sim.until(
      'Ready and serving on both clusters',
      () =>
        allAre(sim, 'llama', 'Ready/Staged', both) &&
        both.every(
          (c) => enginePods(sim, c) === 1 && sim.consumerChecks.some((k) => k.cluster === c),
        ),
      1 * HOUR,
    );
    await sim.runFor(1 * MINUTE);
    const first = sim.replica('llama', 'us-east')?.identity;
    const consumers = sim.consumerChecks.length;
    sim.patchMeta(sim.cacheRef('llama'), { annotations: { 'modelplane.ai/refetch': 'r2' } });
    let minPods = Infinity;
    let whenMin = '';
    const reasons = new Set<string>();
    await sim.until(
      'Ready under the new identity',
      () => {
        const now = Math.min(...both.map((c) => enginePods(sim, c)));
        if (now < minPods) {
          minPods = now;
          whenMin = `${sim.clock.stamp()} cache ${JSON.stringify(sim.phases('llama'))} deployment ${JSON.stringify(sim.get(sim.deploymentRef('chat'))?.['status'])}`;
        }
        const st = sim.get(sim.deploymentRef('chat'))?.['status'] as
          { clusters?: { reason: string }[] } | undefined;
        for (const c of st?.clusters ?? []) reasons.add(c.reason);
        const cl = sim.clustersOf('llama');
        const rs = sim.replicas('llama');
        return both.every((c) => cl.get(c)?.phase === 'Ready' && rs.get(c)?.identity !== first);
      },
      1 * HOUR,
    );
    await sim.runFor(5 * MINUTE);
    equal(
      minPods,
      1,
      `engine pods per cluster never dropped during the re-stage (lowest at ${whenMin})`,
    );
    // The deployment notices the re-stage only if its TTL reconcile falls inside it (required
    // resources are not watched); either way its workloads must stay.
    ctx.notes.push(
      `the deployment's clusters reported ${[...reasons].sort().join(', ')} while the cache re-staged`,
    );
    equal(sim.fetch.starts.length, 4, 'fetch pods (two per cluster)');
    equal(sim.consumerChecks.length, consumers, 'engine pods restarted');
    equal(placed(sim, 'chat'), { 'eu-west': 1, 'us-east': 1 }, 'replicas');
  },
};

export const refetchWhileHydrating: Scenario = {
  name: 'refetch-while-hydrating',
  title:
    'a refetch token while the first Job downloads: the old Job is deleted in the foreground (its pod goes first), one writer at a time, new identity staged',
  async run(ctx) {
    const sim = await world(ctx, [rwx('us-east', H100)]);
    const files = modelFiles(22, [3_000_000, 100_000]);
    const h = await hub(ctx, files);
    h.hub.faults.add(
      files[2]?.path ?? '',
      { kind: 'slow', chunk: 64 * 1024, everyMs: 20 },
      { sticky: true },
    );
    sim.apply(hfCache('llama', h));
    sim.expect('llama', h.expected);
    await sim.until(
      'first pod running',
      () => sim.cluster('us-east').runningFetchPods().length === 1,
      30 * MINUTE,
    );
    const first = sim.replica('llama', 'us-east')?.identity;
    sim.patchMeta(sim.cacheRef('llama'), { annotations: { 'modelplane.ai/refetch': 'now' } });
    await sim.until(
      'Ready under the new identity',
      () => {
        const e = sim.clustersOf('llama').get('us-east');
        return e?.phase === 'Ready' && sim.replica('llama', 'us-east')?.identity !== first;
      },
      2 * HOUR,
    );
    await sim.runFor(5 * MINUTE);
    const jobs = sim.remote('us-east', 'batch/v1', 'Job');
    equal(jobs.length, 0, 'Jobs left');
    const orphans = sim
      .remote('us-east', 'v1', 'Pod', NS)
      .filter((p) => (p.metadata.ownerReferences ?? []).length === 0);
    // The Job carries the foregroundDeletion finalizer, so provider-kubernetes' delete (no
    // propagation policy) does not orphan its pod as batch/v1's default would.
    equal(
      orphans.map((p) => p.metadata.name),
      [],
      "pods orphaned by the old Job's deletion",
    );
    ctx.notes.push(`${sim.fetch.starts.length} fetch pods`);
  },
};

export const jobDeletedMidDownload: Scenario = {
  name: 'job-deleted-mid-download',
  title:
    'an operator deletes the running Job on the workload cluster: provider-kubernetes recreates it and the new pod resumes',
  async run(ctx) {
    const sim = await world(ctx, [rwx('us-east', H100)]);
    const files = modelFiles(23, [3_000_000, 100_000]);
    const h = await hub(ctx, files);
    h.hub.faults.add(
      files[2]?.path ?? '',
      { kind: 'slow', chunk: 64 * 1024, everyMs: 20 },
      { sticky: true },
    );
    sim.apply(hfCache('llama', h));
    sim.expect('llama', h.expected);
    await sim.until(
      'pod running',
      () => sim.cluster('us-east').runningFetchPods().length === 1,
      30 * MINUTE,
    );
    const job = sim.remote('us-east', 'batch/v1', 'Job', NS)[0];
    check(job !== undefined, 'the Job');
    // kubectl delete job: propagationPolicy Background, so its pod goes too (SIGTERM).
    sim
      .cluster('us-east')
      .store.delete(
        { apiVersion: 'batch/v1', kind: 'Job', name: job.metadata.name, namespace: NS },
        'Background',
      );
    await sim.until('Ready', () => sim.phases('llama')['us-east'] === 'Ready/Staged', 1 * HOUR);
    equal(sim.cluster('us-east').fetchPods.length, 2, 'fetch pods');
    equal(
      sim.provider.writes.filter((w) => w.op === 'create' && w.kind === 'Job').length,
      2,
      'Job created twice (recreated by the provider)',
    );
  },
};

export const partition: Scenario = {
  name: 'control-plane-partition',
  title:
    'the control plane loses a cluster for 10 min mid-download: Objects go unsynced, nothing is deleted or redone, Ready after',
  async run(ctx) {
    const sim = await world(ctx, [rwx('us-east', H100), rwx('eu-west', H100)]);
    const files = modelFiles(24, [2_000_000, 100_000]);
    const h = await hub(ctx, files);
    h.hub.faults.add(
      files[2]?.path ?? '',
      { kind: 'slow', chunk: 64 * 1024, everyMs: 20 },
      { sticky: true },
    );
    sim.apply(hfCache('llama', h));
    sim.expect('llama', h.expected);
    await sim.until(
      'eu-west pod running',
      () => sim.cluster('eu-west').runningFetchPods().length === 1,
      30 * MINUTE,
    );
    const server = sim.cluster('eu-west').server;
    const deletes = sim.provider.writes.filter(
      (w) => w.op === 'delete' && w.server === server,
    ).length;
    sim.cluster('eu-west').reachable = false;
    await sim.runFor(10 * MINUTE);
    const unsynced = [...sim.cacheObjects('llama')]
      .filter(([k]) => k.startsWith('eu-west/'))
      .filter(([, o]) =>
        (
          (o['status'] as { conditions?: { type: string; status: string }[] } | undefined)
            ?.conditions ?? []
        ).some((c) => c.type === 'Synced' && c.status === 'False'),
      );
    check(unsynced.length > 0, 'eu-west Objects report they cannot sync');
    check(
      sim.phases('llama')['eu-west'] !== 'Failed/FetchFailed',
      `eu-west while partitioned: ${sim.phases('llama')['eu-west'] ?? ''}`,
    );
    equal(
      sim.provider.writes.filter((w) => w.op === 'delete' && w.server === server).length,
      deletes,
      'remote deletes on eu-west',
    );
    sim.cluster('eu-west').reachable = true;
    await sim.until(
      'Ready',
      () => allAre(sim, 'llama', 'Ready/Staged', ['eu-west', 'us-east']),
      1 * HOUR,
    );
    equal(sim.cluster('eu-west').fetchPods.length, 1, 'fetch pods on eu-west');
  },
};

export const existingPvc: Scenario = {
  name: 'existing-pvc-backend',
  title:
    'ExistingPVC: an observe-only claim that does not exist yet is ClaimNotBound, then Ready once an operator creates it; no Job',
  async run(ctx) {
    const sim = await world(ctx, [rwx('us-east', H100)]);
    const h = await hub(ctx, modelFiles(25));
    sim.apply({
      apiVersion: XR_API_VERSION,
      kind: 'ModelCache',
      metadata: { name: 'shared', namespace: NS },
      spec: {
        artifact: {
          kind: 'Weights',
          source: { huggingFace: { repo: h.repo, endpoint: h.hub.endpoint } },
        },
        storage: { backend: 'ExistingPVC', existingPVC: { claimName: 'shared-weights' } },
        clusterSelector: { matchLabels: H100 },
      },
    });
    await sim.runFor(5 * MINUTE);
    equal(sim.phases('shared'), { 'us-east': 'Pending/ClaimNotBound' }, 'phase without the claim');
    const msg = sim.replica('shared', 'us-east')?.message ?? '';
    check(msg.includes('was not found'), `message: ${msg}`);
    // The platform team provisions the namespace and the claim (and fills it) out of band.
    sim
      .cluster('us-east')
      .store.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } }, 'kubectl');
    sim.cluster('us-east').store.create(
      {
        apiVersion: 'v1',
        kind: 'PersistentVolumeClaim',
        metadata: { name: 'shared-weights', namespace: NS },
        spec: {
          accessModes: ['ReadWriteMany'],
          storageClassName: 'nfs-rwx',
          resources: { requests: { storage: '10Gi' } },
        },
      },
      'kubectl',
    );
    await sim.until(
      'Ready',
      () => sim.phases('shared')['us-east'] === 'Ready/ClaimBound',
      1 * HOUR,
    );
    equal(sim.remote('us-east', 'batch/v1', 'Job').length, 0, 'Jobs');
    equal(sim.fetch.starts.length, 0, 'fetch pods');
    equal(
      sim.provider.writes.filter((w) => w.kind === 'PersistentVolumeClaim').length,
      0,
      'writes to the claim by the provider',
    );
  },
};

export const s3Private: Scenario = {
  name: 's3-private-bucket',
  title:
    "an S3 prefix (moto's S3 server) with a credentials Secret copied whole: staged under the prefix, bytes equal the objects",
  async run(ctx) {
    const moto = await startMoto();
    ctx.cleanups.push(() => moto.stop());
    const creds = {
      accessKeyId: 'AKIASIMULATEDKEY01',
      secretAccessKey: 'sim-secret-access-key-0123456789',
    };
    // The bucket is filled with plain path-style S3 requests (moto does not check signatures);
    // objects carry a stored SHA-256 checksum, as `aws s3 cp --checksum-algorithm SHA256` leaves.
    const put = async (path: string, body?: Buffer): Promise<void> => {
      const res = await fetch(`${moto.endpoint}/${path}`, {
        method: 'PUT',
        ...(body !== undefined
          ? {
              body,
              headers: {
                'x-amz-checksum-sha256': createHash('sha256').update(body).digest('base64'),
                'x-amz-sdk-checksum-algorithm': 'SHA256',
              },
            }
          : {}),
      });
      await res.body?.cancel();
      check(res.ok, `PUT ${path}: HTTP ${res.status}`);
    };
    await put('models');
    const objects = [
      { path: 'config.json', bytes: Buffer.from('{"model_type":"mistral"}\n') },
      { path: 'weights/model.safetensors', bytes: bytes(900_000, 31) },
    ];
    for (const o of objects) await put(`models/mistral/${o.path}`, o.bytes);
    await put('models/other/not-this.bin', Buffer.from('x'));
    const sim = await world(ctx, [rwx('us-east', H100), rwx('eu-west', H100)]);
    sim.apply({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 's3-creds', namespace: NS },
      stringData: {
        AWS_ACCESS_KEY_ID: creds.accessKeyId,
        AWS_SECRET_ACCESS_KEY: creds.secretAccessKey,
      },
    });
    sim.apply({
      apiVersion: XR_API_VERSION,
      kind: 'ModelCache',
      metadata: { name: 'mistral', namespace: NS },
      spec: {
        artifact: {
          kind: 'Weights',
          source: {
            s3: {
              uri: 's3://models/mistral/',
              region: 'us-east-1',
              endpoint: moto.endpoint,
              secretRef: { name: 's3-creds' },
            },
          },
        },
        storage: { pvc: { sizeGiB: 1 } },
        clusterSelector: { matchLabels: H100 },
      },
    });
    sim.expect('mistral', expectedOf(objects));
    await sim.until(
      'Ready',
      () => allAre(sim, 'mistral', 'Ready/Staged', ['eu-west', 'us-east']),
      1 * HOUR,
    );
    const dir = sim.cluster('us-east').volumeOf(NS, 'modelcache-mistral') ?? '';
    const manifest = JSON.parse(
      readFileSync(join(dir, '.modelcache', 'manifest.json'), 'utf8'),
    ) as {
      files: { path: string; verifiedBy: string }[];
    };
    equal(
      manifest.files.map((f) => `${f.path}:${f.verifiedBy}`),
      ['config.json:sha256', 'weights/model.safetensors:sha256'],
      'files verified against S3 checksums',
    );
  },
};

export const configMapLate: Scenario = {
  name: 'configmap-source-missing-then-created',
  title:
    'a Bytes cache from a ConfigMap that does not exist yet: WaitingForConfigMap, then staged with exactly its data',
  async run(ctx) {
    const sim = await world(ctx, [rwx('us-east', H100)]);
    sim.apply({
      apiVersion: XR_API_VERSION,
      kind: 'ModelCache',
      metadata: { name: 'prompts', namespace: NS },
      spec: {
        artifact: { kind: 'Bytes', source: { configMap: { name: 'prompts' } } },
        mount: { path: '/mnt/prompts' },
        clusterSelector: { matchLabels: H100 },
      },
    });
    const data = { 'system.txt': 'You are terse.\n', 'style.md': '# Style\nShort answers.\n' };
    sim.expect(
      'prompts',
      expectedOf(Object.entries(data).map(([path, t]) => ({ path, bytes: Buffer.from(t) }))),
    );
    await sim.runFor(10 * MINUTE);
    equal(
      sim.phases('prompts')['us-east'],
      'Pending/WaitingForConfigMap',
      'phase while the ConfigMap is missing',
    );
    sim.apply({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'prompts', namespace: NS },
      data,
    });
    await sim.until('Ready', () => sim.phases('prompts')['us-east'] === 'Ready/Staged', 1 * HOUR);
  },
};

export const LIFECYCLE: Scenario[] = [
  refetchAfterReady,
  refetchWhileHydrating,
  jobDeletedMidDownload,
  partition,
  existingPvc,
  s3Private,
  configMapLate,
];
