// Staging under faults of volumes, classes, provider configs, Jobs, processes and sources.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

import { HOUR, MINUTE, SECOND } from '../core/clock.js';
import { NS, type Sim } from '../sim.js';
import { modelFiles } from '../sources.js';
import {
  allAre,
  cdnBytes,
  check,
  enginePods,
  equal,
  functionCalls,
  hfCache,
  hub,
  modelDeployment,
  placed,
  rwx,
  world,
  type Scenario,
} from './kit.js';

const H100 = { gpu: 'h100' };

export const healthyFleet: Scenario = {
  name: 'healthy-fleet',
  title:
    'three clusters binding at 10 s, 40 s and 2 min: every cluster staged once, deployment placed on all three',
  async run(ctx) {
    const sim = await world(ctx, [
      rwx('us-east', H100, 10 * SECOND),
      rwx('us-west', H100, 40 * SECOND),
      rwx('eu-west', H100, 2 * MINUTE),
    ]);
    const h = await hub(ctx, modelFiles(1));
    sim.apply(hfCache('llama', h));
    sim.expect('llama', h.expected);
    sim.apply(modelDeployment('chat', ['llama'], { replicas: 3 }));
    const all = ['eu-west', 'us-east', 'us-west'];
    await sim.until(
      'cache Ready on all clusters',
      () => allAre(sim, 'llama', 'Ready/Staged', all),
      30 * MINUTE,
    );
    await sim.until(
      'deployment placed on all clusters',
      () => all.every((c) => enginePods(sim, c) === 1),
      10 * MINUTE,
    );
    await sim.runFor(5 * MINUTE);
    equal(
      sim.condition(sim.cacheRef('llama'), 'Ready')?.status,
      'True',
      'ModelCache Ready condition',
    );
    equal(
      sim.condition(sim.cacheRef('llama'), 'ArtifactReady')?.reason,
      'AllClustersStaged',
      'ArtifactReady reason',
    );
    const lag = sim.readyLag('llama');
    ctx.notes.push(
      `the cache said Ready ${all.map((c) => `${Math.round((lag[c] ?? NaN) / 1000)} s`).join(', ')} after the replicas of ${all.join(', ')} (virtual)`,
    );
    ctx.notes.push(
      `transitions: ${Object.entries(sim.transitions('llama'))
        .sort()
        .map(([c, seq]) => `${c} ${seq.join(' > ')}`)
        .join('; ')}`,
    );
    for (const c of all)
      equal(sim.replica('llama', c)?.resolvedRevision, h.hub.commit, `${c} resolvedRevision`);
    equal(placed(sim, 'chat'), { 'eu-west': 1, 'us-east': 1, 'us-west': 1 }, 'replicas placed');
    // Once Ready, only the namespace and the claim remain composed for each cluster.
    const roles = [...sim.cacheObjects('llama').keys()].map((k) => k.split('/')[1]).sort();
    equal(
      roles,
      ['namespace', 'namespace', 'namespace', 'pvc', 'pvc', 'pvc'],
      'composed roles after Ready',
    );
    equal(
      sim.count('batch/v1', 'Job'),
      { 'us-east': 0, 'us-west': 0, 'eu-west': 0 },
      'Jobs left on clusters',
    );
    equal(sim.fetch.starts.length, 3, 'fetch pods run');
    for (const f of h.files.filter((x) => x.lfs)) {
      equal(
        cdnBytes(h, f.path),
        3 * f.bytes.length,
        `bytes of ${f.path} served (once per cluster)`,
      );
    }
    check(
      sim.consumerChecks.length >= 3 && sim.consumerChecks.every((c) => c.report.ok),
      'every engine pod found verified bytes',
    );
    const warnings = sim.events.about(`ModelCache/${NS}/llama`).filter((e) => e.type === 'Warning');
    equal(
      warnings.map((e) => e.reason),
      [],
      'Warning events on the ModelCache',
    );
  },
};

export const pvcNeverBinds: Scenario = {
  name: 'pvc-never-binds',
  title:
    'one cluster never binds its claim: it stays Pending/PVCPending, no fetch runs there, the rest stage and serve',
  async run(ctx) {
    const sim = await world(ctx, [rwx('us-east', H100), rwx('eu-west', H100, 'never')]);
    const h = await hub(ctx, modelFiles(2));
    sim.apply(hfCache('llama', h));
    sim.expect('llama', h.expected);
    sim.apply(modelDeployment('chat', ['llama'], { replicas: 2 }));
    await sim.until(
      'us-east Ready',
      () => sim.phases('llama')['us-east'] === 'Ready/Staged',
      30 * MINUTE,
    );
    const ours = (): number => functionCalls(sim);
    const before = ours();
    await sim.runFor(1 * HOUR);
    const calls = ours() - before;
    equal(
      sim.phases('llama'),
      { 'eu-west': 'Pending/PVCPending', 'us-east': 'Ready/Staged' },
      'phases after an hour',
    );
    equal(sim.cluster('eu-west').fetchPods.length, 0, 'fetch pods started on eu-west');
    equal(sim.condition(sim.cacheRef('llama'), 'Ready')?.status, 'False', 'ModelCache Ready');
    equal(placed(sim, 'chat'), { 'eu-west': 0, 'us-east': 2 }, 'replicas placed');
    check(
      calls < 600,
      `Function calls for the cache, its two replicas and the deployment in an hour: ${calls} (TTL 60 s, two calls each: about 480)`,
    );
  },
};

export const storageClassMissing: Scenario = {
  name: 'storage-class-missing',
  title:
    'a cluster names a class it does not have, another names none: both Failed/NoRWXStorageClass, no claim created',
  async run(ctx) {
    const sim = await world(ctx, [
      rwx('us-east', H100),
      {
        name: 'ap-south',
        labels: H100,
        storageClassName: 'nfs-rwx',
        classes: { standard: { provisioner: 'ebs.csi.aws.com', bindAfterMs: 5_000 } },
      },
      { name: 'on-prem', labels: H100, classes: {} },
    ]);
    // The platform registered these clusters earlier: their InferenceClusters have observed them.
    await sim.runFor(2 * MINUTE);
    const h = await hub(ctx, modelFiles(3));
    sim.apply(hfCache('llama', h));
    sim.expect('llama', h.expected);
    sim.apply(modelDeployment('chat', ['llama'], { replicas: 3 }));
    await sim.until(
      'us-east Ready',
      () => sim.phases('llama')['us-east'] === 'Ready/Staged',
      30 * MINUTE,
    );
    await sim.runFor(10 * MINUTE);
    equal(
      sim.phases('llama'),
      {
        'ap-south': 'Failed/NoRWXStorageClass',
        'on-prem': 'Failed/NoRWXStorageClass',
        'us-east': 'Ready/Staged',
      },
      'phases',
    );
    equal(
      sim.count('v1', 'PersistentVolumeClaim'),
      { 'us-east': 1, 'ap-south': 0, 'on-prem': 0 },
      'claims per cluster',
    );
    equal(
      sim.condition(sim.cacheRef('llama'), 'ArtifactReady')?.reason,
      'SomeClustersFailed',
      'ArtifactReady reason',
    );
    equal(placed(sim, 'chat'), { 'ap-south': 0, 'on-prem': 0, 'us-east': 3 }, 'replicas placed');
  },
};

export const providerConfigLate: Scenario = {
  name: 'provider-config-missing-then-added',
  title:
    'a cluster registered before its ClusterProviderConfig: Failed/ProviderConfigNotFound, then staged once it exists',
  async run(ctx) {
    const sim = await world(ctx, [
      rwx('us-east', H100),
      { ...rwx('eu-west', H100), providerConfig: false },
    ]);
    const h = await hub(ctx, modelFiles(4));
    sim.apply(hfCache('llama', h));
    sim.expect('llama', h.expected);
    await sim.until(
      'us-east Ready',
      () => sim.phases('llama')['us-east'] === 'Ready/Staged',
      30 * MINUTE,
    );
    await sim.runFor(5 * MINUTE);
    equal(
      sim.phases('llama')['eu-west'],
      'Failed/ProviderConfigNotFound',
      'eu-west without a provider config',
    );
    equal(sim.remote('eu-west', 'v1', 'PersistentVolumeClaim').length, 0, 'claims on eu-west');
    sim.addProviderConfig('eu-west');
    const t = sim.clock.now();
    await sim.until(
      'eu-west Ready',
      () => sim.phases('llama')['eu-west'] === 'Ready/Staged',
      30 * MINUTE,
    );
    ctx.notes.push(
      `eu-west staged ${Math.round((sim.clock.now() - t) / 1000)} s (virtual) after its provider config appeared`,
    );
  },
};

export const jobFailsTwice: Scenario = {
  name: 'job-fails-twice-then-succeeds',
  title:
    'the CDN refuses a weight twice (403): two pods fail, the third stages everything within the Job backoff limit',
  async run(ctx) {
    const sim = await world(ctx, [rwx('us-east', H100)]);
    const files = modelFiles(5);
    const h = await hub(ctx, files);
    const weight = files[2]?.path ?? '';
    h.hub.faults.add(weight, { kind: 'status', status: 403 }, { times: 2 });
    sim.apply(hfCache('llama', h));
    sim.expect('llama', h.expected);
    await sim.until('Ready', () => sim.phases('llama')['us-east'] === 'Ready/Staged', 1 * HOUR);
    equal(sim.cluster('us-east').fetchPods.length, 3, 'fetch pods run');
    const failed = sim
      .remote('us-east', 'v1', 'Pod', NS)
      .filter((p) => (p['status'] as { phase?: string }).phase === 'Failed');
    equal(failed.length, 2, 'failed pods kept for their logs');
  },
};

/**
 * A file refused for good, then a refetch token. Where the refusal comes from decides how the
 * Job ends: the hub's own 403 is permanent (the fetch program exits EXIT_PERMANENT and the
 * Job's podFailurePolicy fails it on its first pod); the CDN's 403 may be a signed URL that
 * expired, which the next pod's fresh redirect would mend, so the Job spends its backoffLimit.
 */
function refusedForGood(
  name: string,
  title: string,
  pick: (files: ReturnType<typeof modelFiles>) => string,
  want: { pods: number; reason: string },
): Scenario {
  return {
    name,
    title,
    async run(ctx) {
      const sim = await world(ctx, [rwx('us-east', H100)]);
      const files = modelFiles(6);
      const h = await hub(ctx, files);
      const refused = pick(files);
      h.hub.faults.add(refused, { kind: 'status', status: 403 }, { sticky: true });
      sim.apply(hfCache('llama', h));
      sim.expect('llama', h.expected);
      await sim.until(
        'FetchFailed',
        () => sim.phases('llama')['us-east'] === 'Failed/FetchFailed',
        2 * HOUR,
      );
      const pods = sim.cluster('us-east').fetchPods.length;
      equal(pods, want.pods, 'pods run before Failed');
      const failedBy = sim
        .remote('us-east', 'batch/v1', 'Job')
        .flatMap(
          (j) =>
            (j['status'] as { conditions?: { type: string; reason?: string }[] }).conditions ?? [],
        )
        .filter((c) => c.type === 'Failed')
        .map((c) => c.reason);
      equal(failedBy, [want.reason], 'why the Job failed');
      const msg = sim.replica('llama', 'us-east')?.message ?? '';
      check(
        msg.includes(refused) && msg.includes('403'),
        `the failure names the file and the cause: ${msg}`,
      );
      await sim.runFor(3 * HOUR, 600_000);
      equal(
        sim.cluster('us-east').fetchPods.length,
        pods,
        'pods after three more hours (no hot loop)',
      );
      equal(sim.phases('llama')['us-east'], 'Failed/FetchFailed', 'still Failed');
      equal(sim.remote('us-east', 'batch/v1', 'Job').length, 1, 'the failed Job kept for its logs');
      h.hub.faults.clear();
      sim.patchMeta(sim.cacheRef('llama'), {
        annotations: { 'modelplane.ai/refetch': '2026-01-02' },
      });
      await sim.until(
        'Ready after refetch',
        () => sim.phases('llama')['us-east'] === 'Ready/Staged',
        1 * HOUR,
      );
      await sim.runFor(5 * MINUTE);
      equal(sim.remote('us-east', 'batch/v1', 'Job').length, 0, 'Jobs left after Ready');
    },
  };
}

export const jobFailsForGood = refusedForGood(
  'job-fails-for-good-then-refetch',
  "the CDN refuses a weight for good: the Job's 4 pods, Failed/FetchFailed naming the file, no retry loop for hours; a refetch token stages it",
  (files) => files[3]?.path ?? '',
  { pods: 4, reason: 'BackoffLimitExceeded' },
);

export const hubRefusesForGood = refusedForGood(
  'hub-refuses-fails-fast',
  'the hub itself refuses a file (403): one pod, the Job failed by its podFailurePolicy, Failed/FetchFailed naming the file; a refetch token stages it',
  (files) => files[1]?.path ?? '',
  { pods: 1, reason: 'PodFailurePolicy' },
);

export const processKilled: Scenario = {
  name: 'process-killed-mid-download',
  title:
    'the fetch process is SIGKILLed mid-file: the next pod resumes from its checkpoint, no byte lost or fetched twice over',
  async run(ctx) {
    const sim = await world(ctx, [rwx('us-east', H100)]);
    const files = modelFiles(7, [6_000_000, 200_000]);
    const h = await hub(ctx, files);
    const big = files[2];
    check(big !== undefined, 'artifact');
    h.hub.faults.add(big.path, { kind: 'slow', chunk: 64 * 1024, everyMs: 15 }, { sticky: true });
    sim.apply(hfCache('llama', h));
    sim.expect('llama', h.expected);
    // Kill once at least 2 MiB of it are checkpointed on the volume (durably staged).
    await sim.until(
      '2 MiB of the big file checkpointed',
      () => checkpointed(sim) >= 2 * 1024 * 1024,
      30 * MINUTE,
    );
    const pod = sim.cluster('us-east').runningFetchPods()[0];
    check(pod !== undefined, 'a running fetch pod');
    check(sim.cluster('us-east').killProcess(pod.uid, 'SIGKILL'), 'killed');
    // The second pod waits for the dead pod's volume lock to go stale: a minute of wall time.
    await sim.until(
      'Ready',
      () => sim.phases('llama')['us-east'] === 'Ready/Staged',
      2 * HOUR,
      240_000,
    );
    equal(sim.cluster('us-east').fetchPods.length, 2, 'fetch pods run');
    const served = cdnBytes(h, big.path);
    check(
      served < big.bytes.length * 1.5,
      `bytes of the big file served: ${served} for ${big.bytes.length} (resumed, not restarted)`,
    );
    const waited = lockWait(sim);
    ctx.notes.push(
      `big file: ${big.bytes.length} bytes, ${served} served across the kill${waited !== undefined ? `; the second pod waited ${waited} s (wall) for the dead pod's volume lock to go stale` : ''}`,
    );
  },
};

export const corruptOnce: Scenario = {
  name: 'corrupt-bytes-once',
  title:
    'the CDN flips a byte once: the digest check catches it, the file is fetched again, staged bytes equal the source',
  async run(ctx) {
    const sim = await world(ctx, [rwx('us-east', H100)]);
    const files = modelFiles(8);
    const h = await hub(ctx, files);
    const weight = files[2];
    check(weight !== undefined, 'artifact');
    h.hub.faults.add(weight.path, { kind: 'corrupt', at: 12_345 }, { times: 1 });
    sim.apply(hfCache('llama', h));
    sim.expect('llama', h.expected);
    await sim.until('Ready', () => sim.phases('llama')['us-east'] === 'Ready/Staged', 1 * HOUR);
    equal(sim.cluster('us-east').fetchPods.length, 1, 'fetch pods run');
    equal(cdnBytes(h, weight.path), 2 * weight.bytes.length, 'corrupt file fetched twice');
  },
};

export const corruptAlways: Scenario = {
  name: 'corrupt-source',
  title:
    'the source always serves a corrupt weight: FetchFailed, nothing published, no marker, no workload placed',
  async run(ctx) {
    const sim = await world(ctx, [rwx('us-east', H100)]);
    const files = modelFiles(9);
    const h = await hub(ctx, files);
    const weight = files[3];
    check(weight !== undefined, 'artifact');
    h.hub.faults.add(weight.path, { kind: 'corrupt', at: 100 }, { sticky: true });
    sim.apply(hfCache('llama', h));
    sim.expect('llama', h.expected);
    sim.apply(modelDeployment('chat', ['llama']));
    await sim.until(
      'FetchFailed',
      () => sim.phases('llama')['us-east'] === 'Failed/FetchFailed',
      2 * HOUR,
    );
    await sim.runFor(10 * MINUTE);
    const msg = sim.replica('llama', 'us-east')?.message ?? '';
    check(msg.includes('sha256 mismatch'), `the failure says why: ${msg}`);
    const dir = sim.cluster('us-east').volumeOf(NS, 'modelcache-llama');
    check(dir !== undefined, 'the volume exists');
    const top = readdirSync(dir).filter((n) => n !== '.modelcache');
    equal(top, [], 'artifact files published at the volume root');
    equal(
      readdirSync(`${dir}/.modelcache`).includes('complete.json'),
      false,
      'completion marker present',
    );
    equal(enginePods(sim, 'us-east'), 0, 'engine pods on the cluster');
  },
};

/** Bytes durably checkpointed in the staging area of the first cluster's volume. */
function checkpointed(sim: Sim): number {
  const dir = sim.cluster('us-east').volumeOf(NS, 'modelcache-llama');
  if (dir === undefined) return 0;
  let n = 0;
  const root = join(dir, '.modelcache', 'staging');
  for (const id of safeList(root)) {
    for (const f of safeList(join(root, id, 'parts'))) {
      if (!f.endsWith('.json')) continue;
      try {
        const ck = JSON.parse(readFileSync(join(root, id, 'parts', f), 'utf8')) as {
          offset?: number;
        };
        n = Math.max(n, ck.offset ?? 0);
      } catch {
        // being replaced
      }
    }
  }
  return n;
}

function safeList(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** Seconds the second fetch pod logged waiting for the volume lock, if it waited. */
function lockWait(sim: Sim): number | undefined {
  const second = sim.fetch.starts[1];
  if (!second) return undefined;
  const lines = readFileSync(second.logFile, 'utf8').split('\n');
  const time = (needle: string): number | undefined => {
    const l = lines.find((x) => x.includes(needle));
    const m = l === undefined ? null : /"time":"([^"]+)"/.exec(l);
    return m?.[1] === undefined ? undefined : Date.parse(m[1]);
  };
  const a = time('holds the volume lock');
  const b = time('listing the source');
  return a === undefined || b === undefined ? undefined : Math.round((b - a) / 1000);
}

export const STAGING: Scenario[] = [
  // First: its minute of waiting for a stale lock overlaps the scenarios run beside it.
  processKilled,
  healthyFleet,
  pvcNeverBinds,
  storageClassMissing,
  providerConfigLate,
  jobFailsTwice,
  jobFailsForGood,
  hubRefusesForGood,
  corruptOnce,
  corruptAlways,
];
