// Credentials, fleet membership, control-plane faults, the Function's own restarts.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

import {
  RunFunctionResponse as RunFunctionResponseCodec,
  type RunFunctionRequest,
  type RunFunctionResponse,
} from '@crossplane-org/function-sdk-typescript';

import { HOUR, MINUTE, SECOND } from '../core/clock.js';
import { FunctionProcess } from '../crossplane/function.js';
import { NS, XR_API_VERSION } from '../sim.js';
import { modelFiles } from '../sources.js';
import { expectedOf } from '../checks.js';
import {
  allAre,
  check,
  enginePods,
  equal,
  functionCalls,
  hfCache,
  hfTokenSecret,
  hub,
  modelDeployment,
  placed,
  rwx,
  world,
  type Scenario,
} from './kit.js';

const H100 = { gpu: 'h100' };
const icRef = (name: string) => ({ apiVersion: XR_API_VERSION, kind: 'InferenceCluster', name });

export const credentialsLate: Scenario = {
  name: 'credentials-secret-missing-then-created',
  title:
    'a gated repo whose token Secret does not exist yet: WaitingForCredentials, then staged once it is created',
  async run(ctx) {
    const sim = await world(ctx, [rwx('us-east', H100)]);
    const h = await hub(ctx, modelFiles(10), { token: 'hf_sim_token_0123456789' });
    sim.secret('hf_sim_token_0123456789');
    sim.apply(hfCache('llama', h, { secret: 'hf-token' }));
    sim.expect('llama', h.expected);
    await sim.runFor(10 * MINUTE);
    const phase = sim.phases('llama')['us-east'];
    equal(phase, 'Pending/WaitingForCredentials', 'phase while the Secret is missing');
    equal(sim.cluster('us-east').fetchPods.length, 0, 'fetch pods started without credentials');
    sim.apply(hfTokenSecret('hf-token', 'hf_sim_token_0123456789'));
    await sim.until('Ready', () => sim.phases('llama')['us-east'] === 'Ready/Staged', 1 * HOUR);
    await sim.runFor(5 * MINUTE);
    equal(
      sim.remote('us-east', 'v1', 'Secret', NS).length,
      0,
      'credential copies left on the cluster after Ready',
    );
  },
};

export const secretRotated: Scenario = {
  name: 'secret-rotated-after-ready',
  title:
    'the token Secret is rotated after Ready: nothing re-downloads, nothing is recreated, the new value never reaches the Function',
  async run(ctx) {
    const sim = await world(ctx, [rwx('us-east', H100), rwx('eu-west', H100)]);
    const h = await hub(ctx, modelFiles(11), { token: 'hf_first_token_abcdef' });
    sim.apply(hfTokenSecret('hf-token', 'hf_first_token_abcdef'));
    sim.apply(hfCache('llama', h, { secret: 'hf-token' }));
    sim.expect('llama', h.expected);
    sim.apply(modelDeployment('chat', ['llama'], { replicas: 2 }));
    await sim.until(
      'Ready',
      () => allAre(sim, 'llama', 'Ready/Staged', ['eu-west', 'us-east']),
      1 * HOUR,
    );
    await sim.runFor(5 * MINUTE);
    const pods = sim.fetch.starts.length;
    const composed = [...sim.cacheObjects('llama').keys()].sort();
    sim.secret('hf_rotated_token_uvwxyz');
    sim.apply(hfTokenSecret('hf-token', 'hf_rotated_token_uvwxyz'));
    await sim.runFor(1 * HOUR);
    equal(sim.fetch.starts.length, pods, 'fetch pods after rotation');
    equal(
      [...sim.cacheObjects('llama').keys()].sort(),
      composed,
      'composed resources after rotation',
    );
    equal(
      sim.phases('llama'),
      { 'eu-west': 'Ready/Staged', 'us-east': 'Ready/Staged' },
      'phases after rotation',
    );
    equal(placed(sim, 'chat'), { 'eu-west': 1, 'us-east': 1 }, 'replicas after rotation');
  },
};

export const clusterJoins: Scenario = {
  name: 'cluster-added-to-selector',
  title:
    'a registered cluster gains the selected label: noticed within the TTL, staged, and the deployment spreads to it',
  async run(ctx) {
    const sim = await world(ctx, [
      rwx('us-east', H100),
      rwx('us-west', H100),
      rwx('eu-west', { region: 'eu' }),
    ]);
    const h = await hub(ctx, modelFiles(12));
    sim.apply(hfCache('llama', h));
    sim.expect('llama', h.expected);
    sim.apply(modelDeployment('chat', ['llama'], { replicas: 3 }));
    await sim.until(
      'Ready on two',
      () => allAre(sim, 'llama', 'Ready/Staged', ['us-east', 'us-west']),
      1 * HOUR,
    );
    await sim.until(
      'placed on two',
      () => JSON.stringify(placed(sim, 'chat')) === JSON.stringify({ 'us-east': 2, 'us-west': 1 }),
      10 * MINUTE,
    );
    const t = sim.clock.now();
    sim.patchMeta(icRef('eu-west'), { labels: { gpu: 'h100' } });
    await sim.until(
      'eu-west matched',
      () => sim.phases('llama')['eu-west'] !== undefined,
      5 * MINUTE,
    );
    const noticed = Math.round((sim.clock.now() - t) / SECOND);
    check(noticed <= 66, `noticed ${noticed} s after the label changed (TTL 60 s + 10 % jitter)`);
    await sim.until(
      'Ready on three',
      () => allAre(sim, 'llama', 'Ready/Staged', ['eu-west', 'us-east', 'us-west']),
      1 * HOUR,
    );
    await sim.until(
      'spread over three',
      () =>
        JSON.stringify(placed(sim, 'chat')) ===
        JSON.stringify({ 'eu-west': 1, 'us-east': 1, 'us-west': 1 }),
      10 * MINUTE,
    );
    ctx.notes.push(
      `new cluster noticed after ${noticed} s, Ready after ${Math.round((sim.clock.now() - t) / SECOND)} s (virtual)`,
    );
  },
};

export const clusterLeaves: Scenario = {
  name: 'cluster-removed-from-selector',
  title:
    'a cluster loses the selected label: its workload and volume go, the other clusters are untouched',
  async run(ctx) {
    const all = ['eu-west', 'us-east', 'us-west'];
    const sim = await world(
      ctx,
      all.map((n) => rwx(n, H100)),
    );
    const h = await hub(ctx, modelFiles(13));
    sim.apply(hfCache('llama', h));
    sim.expect('llama', h.expected);
    sim.apply(modelDeployment('chat', ['llama'], { replicas: 3 }));
    await sim.until('Ready on three', () => allAre(sim, 'llama', 'Ready/Staged', all), 1 * HOUR);
    await sim.until(
      'placed on three',
      () => all.every((c) => enginePods(sim, c) === 1),
      10 * MINUTE,
    );
    const uids = (c: string) =>
      sim.remote(c, 'v1', 'PersistentVolumeClaim', NS).map((p) => p.metadata.uid);
    const keep = { 'us-east': uids('us-east'), 'us-west': uids('us-west') };
    sim.patchMeta(icRef('eu-west'), { labels: { gpu: null } });
    await sim.until(
      'eu-west claim gone',
      () => sim.remote('eu-west', 'v1', 'PersistentVolumeClaim').length === 0,
      1 * HOUR,
    );
    await sim.runFor(5 * MINUTE);
    equal(sim.phases('llama'), { 'us-east': 'Ready/Staged', 'us-west': 'Ready/Staged' }, 'phases');
    equal(
      { 'us-east': uids('us-east'), 'us-west': uids('us-west') },
      keep,
      'claims of the remaining clusters (same objects)',
    );
    equal(enginePods(sim, 'eu-west'), 0, 'engine pods left on eu-west');
    equal(placed(sim, 'chat'), { 'us-east': 2, 'us-west': 1 }, 'replicas re-spread');
    equal(sim.cluster('eu-west').volumes.size, 0, 'volumes left on eu-west');
    check(
      sim.events.about(`ModelCache/${NS}/llama`).some((e) => e.reason === 'ClusterDeselected'),
      'a ClusterDeselected event',
    );
  },
};

export const requiredFetchFails: Scenario = {
  name: 'required-resources-fetch-fails',
  title:
    'Crossplane cannot list InferenceClusters for a while: reconciles fail and apply nothing; nothing is deleted; it recovers',
  async run(ctx) {
    const sim = await world(ctx, [rwx('us-east', H100), rwx('eu-west', H100)]);
    const h = await hub(ctx, modelFiles(14));
    sim.apply(hfCache('llama', h));
    sim.expect('llama', h.expected);
    sim.apply(modelDeployment('chat', ['llama'], { replicas: 2 }));
    await sim.until(
      'Ready',
      () => allAre(sim, 'llama', 'Ready/Staged', ['eu-west', 'us-east']),
      1 * HOUR,
    );
    await sim.runFor(2 * MINUTE);
    const deletes = sim.provider.writes.filter((w) => w.op === 'delete').length;
    sim.faults.failFetches.set('InferenceCluster', 8);
    await sim.until(
      'XR reports the failure',
      () => sim.condition(sim.cacheRef('llama'), 'Synced')?.status === 'False',
      10 * MINUTE,
    );
    const synced = sim.condition(sim.cacheRef('llama'), 'Synced');
    check(
      (synced?.message ?? '').includes('cannot list required resources'),
      `Synced says why: ${synced?.message ?? ''}`,
    );
    await sim.until(
      'fetches succeed again',
      () => (sim.faults.failFetches.get('InferenceCluster') ?? 0) === 0,
      1 * HOUR,
    );
    await sim.until(
      'Synced again',
      () => sim.condition(sim.cacheRef('llama'), 'Synced')?.status === 'True',
      10 * MINUTE,
    );
    await sim.runFor(5 * MINUTE);
    equal(
      sim.provider.writes.filter((w) => w.op === 'delete').length,
      deletes,
      'remote deletes during the outage',
    );
    equal(sim.phases('llama'), { 'eu-west': 'Ready/Staged', 'us-east': 'Ready/Staged' }, 'phases');
    equal(placed(sim, 'chat'), { 'eu-west': 1, 'us-east': 1 }, 'replicas');
  },
};

export const inferenceClusterRecreated: Scenario = {
  name: 'inferencecluster-briefly-absent',
  title:
    'an InferenceCluster is deleted and re-applied 3 min later: the cache converges back to Ready on it with verified bytes',
  async run(ctx) {
    const sim = await world(ctx, [rwx('us-east', H100), rwx('eu-west', H100)]);
    const h = await hub(ctx, modelFiles(15));
    sim.apply(hfCache('llama', h));
    sim.expect('llama', h.expected);
    await sim.until(
      'Ready',
      () => allAre(sim, 'llama', 'Ready/Staged', ['eu-west', 'us-east']),
      1 * HOUR,
    );
    await sim.runFor(2 * MINUTE);
    const claim = sim.remote('eu-west', 'v1', 'PersistentVolumeClaim', NS)[0]?.metadata.uid;
    const pods = sim.cluster('eu-west').fetchPods.length;
    const ic = sim.get(icRef('eu-west'));
    check(ic !== undefined, 'InferenceCluster');
    check(sim.delete(icRef('eu-west')) === undefined, 'deleted');
    await sim.runFor(3 * MINUTE);
    const during = sim.phases('llama');
    sim.apply({
      apiVersion: ic.apiVersion,
      kind: ic.kind,
      metadata: { name: 'eu-west', labels: ic.metadata.labels ?? {} },
      spec: ic['spec'],
    });
    await sim.until(
      'Ready again',
      () => allAre(sim, 'llama', 'Ready/Staged', ['eu-west', 'us-east']),
      1 * HOUR,
    );
    await sim.runFor(5 * MINUTE);
    const after = sim.remote('eu-west', 'v1', 'PersistentVolumeClaim', NS)[0]?.metadata.uid;
    const restaged = sim.cluster('eu-west').fetchPods.length - pods;
    ctx.notes.push(
      `while absent the cache reported ${JSON.stringify(during)}; eu-west volume ${after === claim ? 'kept' : 'deleted and re-created'}, ${restaged} extra fetch pod(s)`,
    );
  },
};

export const functionRestarted: Scenario = {
  name: 'function-restarted-mid-hydration',
  title:
    'the Function is SIGKILLed while Jobs download and back 2 min later: reconciles fail meanwhile, Jobs carry on, nothing is redone',
  async run(ctx) {
    const logDir = mkdtempSync(join(tmpdir(), 'modelcache-sim-fn-'));
    const own = new FunctionProcess(join(logDir, 'function.log'));
    await own.start();
    ctx.cleanups.push(async () => {
      await own.stop();
      rmSync(logDir, { recursive: true, force: true });
    });
    const sim = await world({ ...ctx, fn: own }, [rwx('us-east', H100), rwx('eu-west', H100)]);
    const files = modelFiles(16, [3_000_000, 200_000]);
    const h = await hub(ctx, files);
    const big = files[2]?.path ?? '';
    h.hub.faults.add(big, { kind: 'slow', chunk: 64 * 1024, everyMs: 25 }, { sticky: true });
    sim.apply(hfCache('llama', h));
    sim.expect('llama', h.expected);
    await sim.until(
      'both Jobs running',
      () =>
        sim.cluster('us-east').runningFetchPods().length +
          sim.cluster('eu-west').runningFetchPods().length ===
        2,
      30 * MINUTE,
    );
    const deletes = sim.provider.writes.filter((w) => w.op === 'delete').length;
    await own.kill();
    await sim.runFor(2 * MINUTE);
    const synced = sim.condition(sim.cacheRef('llama'), 'Synced');
    equal(synced?.status, 'False', 'Synced while the Function is down');
    check(
      (synced?.message ?? '').includes('cannot run Composition pipeline step'),
      `Synced says why: ${synced?.message ?? ''}`,
    );
    equal(
      sim.provider.writes.filter((w) => w.op === 'delete').length,
      deletes,
      'remote deletes while the Function is down',
    );
    await own.start();
    await sim.until(
      'Ready',
      () => allAre(sim, 'llama', 'Ready/Staged', ['eu-west', 'us-east']),
      1 * HOUR,
    );
    equal(sim.fetch.starts.length, 2, 'fetch pods (one per cluster)');
    equal(own.starts, 2, 'Function starts');
  },
};

export const twoCaches: Scenario = {
  name: 'two-caches-one-namespace',
  title:
    'two caches in one namespace on the same clusters: separate claims and Jobs; deleting one leaves the other intact',
  async run(ctx) {
    const sim = await world(ctx, [rwx('us-east', H100), rwx('eu-west', H100)]);
    const h = await hub(ctx, modelFiles(17));
    sim.apply(hfCache('llama', h));
    sim.expect('llama', h.expected);
    const prompts = {
      'system.txt': 'You are a helpful assistant.\n',
      'few-shot/one.txt': 'Q: 2+2?\nA: 4\n',
    };
    sim.apply({
      apiVersion: XR_API_VERSION,
      kind: 'ModelCache',
      metadata: { name: 'prompts', namespace: NS },
      spec: {
        artifact: { kind: 'Bytes', source: { inline: { files: prompts } } },
        mount: { path: '/mnt/prompts' },
        clusterSelector: { matchLabels: H100 },
      },
    });
    sim.expect(
      'prompts',
      expectedOf(
        Object.entries(prompts).map(([path, text]) => ({ path, bytes: Buffer.from(text) })),
      ),
    );
    const both = ['eu-west', 'us-east'];
    await sim.until(
      'both Ready',
      () =>
        allAre(sim, 'llama', 'Ready/Staged', both) && allAre(sim, 'prompts', 'Ready/Staged', both),
      1 * HOUR,
    );
    for (const c of both) {
      equal(
        sim
          .remote(c, 'v1', 'PersistentVolumeClaim', NS)
          .map((p) => p.metadata.name)
          .sort(),
        ['modelcache-llama', 'modelcache-prompts'],
        `claims on ${c}`,
      );
      equal(
        sim.remote(c, 'v1', 'Namespace').filter((n) => n.metadata.name === NS).length,
        1,
        `namespace on ${c}`,
      );
    }
    const llamaClaims = both.map(
      (c) =>
        sim
          .remote(c, 'v1', 'PersistentVolumeClaim', NS)
          .find((p) => p.metadata.name === 'modelcache-llama')?.metadata.uid,
    );
    check(sim.delete(sim.cacheRef('prompts')) === undefined, 'prompts deleted');
    await sim.until(
      'prompts claims gone',
      () => both.every((c) => sim.remote(c, 'v1', 'PersistentVolumeClaim', NS).length === 1),
      1 * HOUR,
    );
    await sim.runFor(5 * MINUTE);
    equal(
      both.map((c) => sim.remote(c, 'v1', 'PersistentVolumeClaim', NS)[0]?.metadata.uid),
      llamaClaims,
      'llama claims (same objects)',
    );
    equal(
      sim.phases('llama'),
      { 'eu-west': 'Ready/Staged', 'us-east': 'Ready/Staged' },
      'llama phases',
    );
    for (const c of both)
      equal(
        sim.remote(c, 'v1', 'Namespace').some((n) => n.metadata.name === NS),
        true,
        `namespace kept on ${c}`,
      );
  },
};

export const duplicateReconciles: Scenario = {
  name: 'duplicate-reconciles',
  title:
    'a reconcile every second for ten minutes: one Job per cluster, each file fetched once, identical requests get identical answers',
  async run(ctx) {
    const sim = await world(ctx, [rwx('us-east', H100), rwx('eu-west', H100)]);
    const h = await hub(ctx, modelFiles(18));
    const seen = new Map<string, string>();
    let differing = 0;
    const tap = (req: RunFunctionRequest, rsp: RunFunctionResponse): void => {
      const tag = req.meta?.tag ?? '';
      const body = JSON.stringify({ ...rsp, meta: { ...rsp.meta, tag: '' } });
      const prev = seen.get(tag);
      if (prev !== undefined && prev !== body) differing++;
      seen.set(tag, body);
    };
    sim.runner.taps.push(tap);
    sim.apply(hfCache('llama', h));
    sim.expect('llama', h.expected);
    const key = sim.key(sim.cacheRef('llama'));
    for (let i = 1; i <= 600; i++) {
      sim.clock.schedule(i * SECOND, 'extra reconcile', () => {
        sim.xr.ModelCache.queue.enqueue(key);
      });
    }
    await sim.until(
      'Ready',
      () => allAre(sim, 'llama', 'Ready/Staged', ['eu-west', 'us-east']),
      1 * HOUR,
    );
    await sim.runFor(11 * MINUTE);
    equal(differing, 0, 'different responses to identical requests');
    equal(sim.fetch.starts.length, 2, 'fetch pods');
    const jobs = sim.provider.writes.filter((w) => w.op === 'create' && w.kind === 'Job').length;
    equal(jobs, 2, 'Jobs created');
    for (const f of h.files.filter((x) => x.lfs)) {
      const sha = h.hub.sha256Of(f.path);
      const served = h.hub.cdnRequests
        .filter((r) => r.path.includes(sha))
        .reduce((n, r) => n + r.bytes, 0);
      equal(served, 2 * f.bytes.length, `bytes of ${f.path} served`);
    }
    ctx.notes.push(
      `${sim.xr.ModelCache.queue.reconciles} ModelCache reconciles, ${seen.size} distinct requests`,
    );
  },
};

export const deploymentWaits: Scenario = {
  name: 'deployment-waits-for-unready-cache',
  title:
    'a deployment referencing a cache that never becomes Ready: nothing placed for hours, no hot loop, no consumer pod',
  async run(ctx) {
    const sim = await world(ctx, [rwx('us-east', H100, 'never'), rwx('eu-west', H100, 'never')]);
    const h = await hub(ctx, modelFiles(19));
    sim.apply(hfCache('llama', h));
    sim.apply(modelDeployment('chat', ['llama'], { replicas: 2 }));
    await sim.runFor(10 * MINUTE);
    const ours = (): number => functionCalls(sim);
    const calls0 = ours();
    await sim.runFor(3 * HOUR, 600_000);
    const calls = ours() - calls0;
    const workloads = [...sim.composed(sim.deploymentRef('chat')).keys()].filter((k) =>
      k.endsWith('/workload'),
    );
    equal(workloads, [], 'workloads composed');
    equal(
      sim.condition(sim.deploymentRef('chat'), 'Scheduled')?.reason,
      'NoEligibleClusters',
      'Scheduled reason',
    );
    equal(
      sim.condition(sim.deploymentRef('chat'), 'CachesReady')?.reason,
      'WaitingForCache',
      'CachesReady reason',
    );
    equal(
      sim.condition(sim.deploymentRef('chat'), 'Ready')?.status,
      'False',
      'ModelDeployment Ready',
    );
    equal(sim.consumerChecks.length, 0, 'engine pods started');
    // Four XRs (the cache, its two replicas, the deployment), a 60 s TTL and two calls per
    // reconcile (requirements settle on the second): about 1,440 in three hours. A hot loop
    // would be tens of thousands.
    check(
      calls < 1_800,
      `Function calls for the cache, its replicas and the deployment over three hours: ${calls}`,
    );
    ctx.notes.push(
      `${calls} Function calls for the cache, its two replicas and the deployment over 3 hours of waiting`,
    );
  },
};

export const cacheDeletedInUse: Scenario = {
  name: 'cache-deleted-while-in-use',
  title:
    'deleting a cache a deployment uses is refused; bytes stay; once the deployment goes the deletion replays and volumes go',
  async run(ctx) {
    const both = ['eu-west', 'us-east'];
    const sim = await world(
      ctx,
      both.map((n) => rwx(n, H100)),
    );
    const h = await hub(ctx, modelFiles(20));
    sim.apply(hfCache('llama', h));
    sim.expect('llama', h.expected);
    sim.apply(modelDeployment('chat', ['llama'], { replicas: 2 }));
    await sim.until(
      'Ready and placed',
      () =>
        allAre(sim, 'llama', 'Ready/Staged', both) && both.every((c) => enginePods(sim, c) === 1),
      1 * HOUR,
    );
    await sim.runFor(2 * MINUTE);
    const refused = sim.delete(sim.cacheRef('llama'));
    check(
      refused !== undefined && refused.includes('in-use'),
      `deletion refused: ${String(refused)}`,
    );
    await sim.runFor(10 * MINUTE);
    check(
      sim.get(sim.cacheRef('llama'))?.metadata.deletionTimestamp === undefined,
      'the cache is not being deleted',
    );
    equal(
      sim.phases('llama'),
      { 'eu-west': 'Ready/Staged', 'us-east': 'Ready/Staged' },
      'phases after the refused delete',
    );
    check(
      both.every((c) => enginePods(sim, c) === 1),
      'engine pods still running',
    );
    const v = sim.verifyCache('llama');
    check(
      v.lost === 0 && v.verified > 0,
      `bytes intact under the workloads: ${v.problems.join('; ')}`,
    );
    check(sim.delete(sim.deploymentRef('chat')) === undefined, 'deployment deleted');
    await sim.until(
      'cache gone (deletion replayed)',
      () => sim.get(sim.cacheRef('llama')) === undefined,
      1 * HOUR,
    );
    await sim.until(
      'volumes released',
      () => both.every((c) => sim.cluster(c).volumes.size === 0),
      1 * HOUR,
    );
    equal(sim.count('v1', 'PersistentVolumeClaim'), { 'eu-west': 0, 'us-east': 0 }, 'claims left');
    await sim.until(
      'every composed Object finalized',
      () =>
        sim.cp.list('kubernetes.m.crossplane.io/v1alpha1', 'Object', { namespace: NS }).length ===
        0,
      10 * MINUTE,
    );
  },
};

export const fanOut: Scenario = {
  name: 'fan-out-200-clusters',
  title:
    'a cache over 200 InferenceClusters, 197 of them unreachable: one replica each, every replica reports, the 3 reachable stage',
  async run(ctx) {
    const reachable = ['eu-west', 'us-east', 'us-west'];
    const sim = await world(
      ctx,
      reachable.map((n) => rwx(n, H100)),
    );
    const far = Array.from({ length: 197 }, (_, i) => `edge-${String(i).padStart(3, '0')}`);
    for (const n of far) sim.registerUnreachable(n, H100);
    const all = [...reachable, ...far].sort();
    // The platform registered these clusters earlier: their InferenceClusters have observed them.
    await sim.runFor(2 * MINUTE);
    const h = await hub(ctx, modelFiles(26));
    let largest = 0;
    sim.runner.taps.push((_req, rsp) => {
      largest = Math.max(largest, RunFunctionResponseCodec.encode(rsp).finish().length);
    });
    const calls0 = functionCalls(sim);
    const wall0 = performance.now();
    sim.apply(hfCache('llama', h));
    sim.expect('llama', h.expected);
    const reported = (): boolean => {
      const entries = sim.clustersOf('llama');
      const replicas = sim.replicas('llama');
      return (
        entries.size === all.length &&
        all.every((c) => entries.get(c)?.reason !== 'ReplicaPending' && replicas.has(c))
      );
    };
    await sim.until('every replica reports', reported, 30 * MINUTE, 300_000);
    // Function calls cost no virtual time, so what it takes to get there is counted in calls
    // and wall time, not in cluster time.
    const reportedAfter = `${functionCalls(sim) - calls0} Function calls and ${((performance.now() - wall0) / 1000).toFixed(1)} s of wall time`;
    await sim.until(
      'the reachable clusters Ready',
      () => reachable.every((c) => sim.phases('llama')[c] === 'Ready/Staged'),
      30 * MINUTE,
      300_000,
    );
    await sim.runFor(2 * MINUTE, 300_000);
    const phases = sim.phases('llama');
    const far0 = phases[far[0] ?? ''];
    equal(
      Object.keys(phases).sort(),
      all,
      'clusters in the cache status (one entry per matched cluster)',
    );
    equal(
      far.filter((c) => phases[c] !== far0),
      [],
      `unreachable clusters all ${far0 ?? ''}`,
    );
    equal(
      sim.cp.list(XR_API_VERSION, 'ModelCacheReplica', { namespace: NS }).length,
      all.length,
      'replicas',
    );
    const cache = sim.get(sim.cacheRef('llama'));
    const bytes = Buffer.byteLength(JSON.stringify(cache));
    const responsive = sim.condition(sim.cacheRef('llama'), 'Responsive');
    const cacheKey = sim.key(sim.cacheRef('llama'));
    const lag = sim.readyLag('llama');
    ctx.notes.push(
      `the cache said Ready ${reachable.map((c) => `${Math.round((lag[c] ?? NaN) / 1000)} s`).join(', ')} after the replicas of ${reachable.join(', ')} (virtual)`,
    );
    ctx.notes.push(
      `every replica reported after ${reportedAfter}; unreachable clusters report ${far0 ?? '?'} ("${sim.replica('llama', far[0] ?? '')?.message ?? ''}")`,
    );
    ctx.notes.push(
      `${sim.xr.ModelCache.breaker.counted.get(cacheKey) ?? 0} watch events mapped to the ModelCache (${((sim.xr.ModelCache.breaker.counted.get(cacheKey) ?? 0) / all.length).toFixed(1)} per replica)`,
    );
    ctx.notes.push(
      `ModelCache object ${bytes} bytes as JSON (${Math.round(bytes / all.length)} per cluster); largest RunFunctionResponse ${largest} bytes; cache Responsive=${responsive?.status ?? '?'}${responsive?.reason !== undefined ? ` (${responsive.reason})` : ''}`,
    );
  },
};

export const FLEET: Scenario[] = [
  credentialsLate,
  secretRotated,
  clusterJoins,
  clusterLeaves,
  requiredFetchFails,
  inferenceClusterRecreated,
  functionRestarted,
  twoCaches,
  duplicateReconciles,
  deploymentWaits,
  cacheDeletedInUse,
];
