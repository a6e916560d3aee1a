// `npm run demo`: the product end to end on this machine, no cluster needed. Starts the real
// Function (gRPC on loopback), a Hugging Face–compatible test hub, and a simulated fleet
// (the clusters examples/3-multi-cluster-replication registers), applies that example's
// ModelCache and a ModelDeployment, shows per-cluster progress (each cluster's
// ModelCacheReplica; the head line is the cache's own compact status) until Ready, verifies the
// staged bytes against the source, and prints the workloads rendered on the clusters.
//
// A program for users, so it lives in tools/; the simulator it runs is the fleet simulation's
// (test/sim), so what the demo shows is what the fault scenarios test.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

import { stringify } from 'yaml';

import { bytes } from '../test/support/fetch-harness.js';
import { SECOND } from '../test/sim/core/clock.js';
import { str, type Json } from '../test/sim/core/json.js';
import type { KObject } from '../test/sim/core/store.js';
import { FunctionProcess } from '../test/sim/crossplane/function.js';
import { NS, Sim, XR_API_VERSION, type ClusterEntry } from '../test/sim/sim.js';
import { startHub, type ArtifactFile } from '../test/sim/sources.js';
import { expectedOf } from '../test/sim/checks.js';

const EXAMPLE = 'examples/3-multi-cluster-replication';
const RATE = 20;
const BIND_AFTER: Record<string, number> = { 'us-east': 20, 'us-west': 45, 'eu-west': 90 };
const MIB = 1024 * 1024;

const tty = process.stdout.isTTY;
const out = (s = ''): void => {
  process.stdout.write(`${s}\n`);
};

function fmt(n: number | undefined): string {
  if (n === undefined) return '?';
  if (n < 1024) return `${n} B`;
  if (n < MIB) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / MIB).toFixed(1)} MiB`;
}

function glob(pattern: string): RegExp {
  return new RegExp(
    `^${pattern
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '[^/]*')
      .replace(/\?/g, '.')}$`,
  );
}

/** A model repo shaped like the example's: what its include globs keep, and what they leave. */
function repoFiles(): ArtifactFile[] {
  const text = (s: string): Buffer => Buffer.from(s);
  return [
    { path: 'README.md', bytes: text('# Mistral-7B-Instruct-v0.3 (simulated)\n'), lfs: false },
    {
      path: 'config.json',
      bytes: text(
        '{"architectures":["MistralForCausalLM"],"hidden_size":4096,"num_hidden_layers":32}\n',
      ),
      lfs: false,
    },
    {
      path: 'generation_config.json',
      bytes: text('{"bos_token_id":1,"eos_token_id":2}\n'),
      lfs: false,
    },
    { path: 'tokenizer_config.json', bytes: text('{"model_max_length":32768}\n'), lfs: false },
    { path: 'tokenizer.json', bytes: bytes(600_000, 901), lfs: true },
    { path: 'tokenizer.model.v3', bytes: bytes(580_000, 902), lfs: true },
    { path: 'model-00001-of-00003.safetensors', bytes: bytes(8 * MIB, 903), lfs: true },
    { path: 'model-00002-of-00003.safetensors', bytes: bytes(8 * MIB, 904), lfs: true },
    { path: 'model-00003-of-00003.safetensors', bytes: bytes(6 * MIB, 905), lfs: true },
    { path: 'consolidated.safetensors', bytes: bytes(256 * 1024, 906), lfs: true },
  ];
}

/** What a row shows: a replica's report, or the cache's entry before the replica has one. */
type Row = Pick<ClusterEntry, 'phase' | 'reason' | 'progress'>;

function bar(e: Row | undefined, width = 28): string {
  if (!e) return `[${' '.repeat(width)}]`;
  const frac =
    e.phase === 'Ready'
      ? 1
      : e.progress && e.progress.bytesTotal > 0
        ? e.progress.bytesDone / e.progress.bytesTotal
        : 0;
  const n = Math.round(frac * width);
  return `[${'#'.repeat(n)}${'.'.repeat(width - n)}]`;
}

function bytesOf(e: Row | undefined, total: number): string {
  if (!e) return '';
  if (e.phase === 'Ready') return `${fmt(total)} / ${fmt(total)}`;
  if (e.progress) return `${fmt(e.progress.bytesDone)} / ${fmt(e.progress.bytesTotal)}`;
  return `${fmt(0)} / ?`;
}

/** The remote object as a user would `kubectl get -o yaml` it, without server bookkeeping. */
function clean(o: KObject): Json {
  const meta: Json = { name: o.metadata.name, namespace: o.metadata.namespace };
  if (o.metadata.labels) meta['labels'] = o.metadata.labels;
  const ann = { ...(o.metadata.annotations ?? {}) };
  delete ann['kubectl.kubernetes.io/last-applied-configuration'];
  if (Object.keys(ann).length > 0) meta['annotations'] = ann;
  return { apiVersion: o.apiVersion, kind: o.kind, metadata: meta, spec: o['spec'] };
}

async function main(): Promise<void> {
  const t0 = performance.now();
  const wall = (): string => `${((performance.now() - t0) / 1000).toFixed(1)}s`;
  const logDir = mkdtempSync(join(tmpdir(), 'modelcache-demo-'));
  const fn = new FunctionProcess(join(logDir, 'function.log'));
  await fn.start();

  const xr = Sim.docs(`${EXAMPLE}/xr.yaml`)[0];
  if (!xr) throw new Error(`${EXAMPLE}/xr.yaml holds no ModelCache`);
  const hf = (xr['spec'] as { artifact: { source: { huggingFace: Json } } }).artifact.source
    .huggingFace;
  const repo = typeof hf['repo'] === 'string' ? hf['repo'] : '';
  const revision = typeof hf['revision'] === 'string' ? hf['revision'] : 'main';
  const include = Array.isArray(hf['include']) ? (hf['include'] as string[]).map(glob) : [/.*/];
  const files = repoFiles();
  const hub = await startHub({
    repo,
    files,
    ...(/^[0-9a-f]{40}$/.test(revision) ? { commit: revision } : {}),
  });
  // A CDN that is not infinitely fast, so there is progress to watch: ~0.6 MiB/s per file.
  for (const f of files.filter((x) => x.lfs)) {
    hub.hub.faults.add(f.path, { kind: 'slow', chunk: 64 * 1024, everyMs: 100 }, { sticky: true });
  }
  const staged = files.filter((f) => include.some((r) => r.test(f.path)));
  const total = staged.reduce((n, f) => n + f.bytes.length, 0);

  const sim = await Sim.start({ fn, rate: RATE });
  const ics = Sim.docs(`${EXAMPLE}/prerequisites/inferenceclusters.yaml`);
  const pcs = Sim.docs(`${EXAMPLE}/prerequisites/providerconfigs.yaml`);

  out(
    'ModelCache demo: a simulated fleet, the real Function, the real fetch program. No cluster needed.',
  );
  out();
  out(`  Function       ${fn.program.shown}, gRPC on ${fn.target}`);
  out(`  Fetch program  ${sim.fetch.program.shown}, one child process per prefetch pod`);
  out(
    `  Source         test Hugging Face hub on ${hub.hub.endpoint}: ${repo}@${revision.slice(0, 7)}, ${files.length} files`,
  );
  out(`  Fleet          ${ics.length} workload clusters, each with its own API server on loopback`);
  for (const ic of ics) {
    const name = str(ic, 'metadata', 'name') ?? '';
    const cls = str(ic, 'spec', 'storage', 'storageClassName') ?? '';
    const labels = Object.entries(
      (ic['metadata'] as { labels?: Record<string, string> }).labels ?? {},
    )
      .map(([k, v]) => `${k}=${v}`)
      .join(',');
    out(
      `                   ${name.padEnd(9)} ${cls.padEnd(14)} claims bind after ${String(BIND_AFTER[name] ?? 20).padStart(2)} s   ${labels}`,
    );
    await sim.addCluster(name, {
      register: false,
      classes: {
        [cls]: {
          provisioner: str(ic, 'status', 'storage', 'provisioner') ?? 'nfs.csi.k8s.io',
          bindAfterMs: (BIND_AFTER[name] ?? 20) * SECOND,
        },
      },
    });
  }
  out(
    `  Time           virtual: ${RATE} s of cluster time per wall second while bytes move, instant otherwise`,
  );
  out();
  for (const doc of [...pcs, ...ics]) {
    sim.apply(Object.fromEntries(Object.entries(doc).filter(([k]) => k !== 'status')));
  }
  out(
    `applied ${EXAMPLE}/prerequisites/providerconfigs.yaml (${pcs.length} ClusterProviderConfigs)`,
  );
  out(`applied ${EXAMPLE}/prerequisites/inferenceclusters.yaml (${ics.length} InferenceClusters)`);
  const cache = structuredClone(xr);
  hf['endpoint'] = hub.hub.endpoint;
  (cache['spec'] as { artifact: { source: { huggingFace: Json } } }).artifact.source.huggingFace =
    hf;
  sim.apply(cache);
  const name = str(cache, 'metadata', 'name') ?? '';
  const ns = str(cache, 'metadata', 'namespace') ?? NS;
  sim.expect(name, expectedOf(staged), ns);
  out(
    `applied ${EXAMPLE}/xr.yaml (ModelCache ${ns}/${name}; huggingFace.endpoint set to the test hub)`,
  );
  const selector =
    (cache['spec'] as { clusterSelector?: { matchLabels?: Record<string, string> } })
      .clusterSelector?.matchLabels ?? {};
  const deployment = {
    apiVersion: XR_API_VERSION,
    kind: 'ModelDeployment',
    metadata: { name: 'mistral-chat', namespace: ns },
    spec: {
      caches: [{ name, kind: 'Weights' }],
      clusterSelector: { matchLabels: selector },
      replicas: 3,
      engine: {
        image: 'vllm/vllm-openai:v0.6.3',
        args: [
          '--model',
          str(cache, 'spec', 'mount', 'path') ?? '/mnt/model',
          '--served-model-name',
          name,
        ],
        resources: { requests: { cpu: '4', memory: '24Gi' } },
      },
    },
  };
  sim.apply(deployment);
  out(
    `applied ModelDeployment ${ns}/mistral-chat (3 replicas of vLLM on ${Object.entries(selector)
      .map(([k, v]) => `${k}=${v}`)
      .join(',')}, mounting ${name})`,
  );
  out();

  const selected = ics
    .filter((ic) =>
      Object.entries(selector).every(
        ([k, v]) => (ic['metadata'] as { labels?: Record<string, string> }).labels?.[k] === v,
      ),
    )
    .map((ic) => str(ic, 'metadata', 'name') ?? '');
  let last = '';
  let lastDraw = 0;
  let lines = 0;
  const frame = (): string[] => {
    // The head is the cache's own compact status; each row is that cluster's
    // ModelCacheReplica (`kubectl get modelcachereplicas`), where progress lives.
    const cl = sim.clustersOf(name, ns);
    const replicas = sim.replicas(name, ns);
    const ready = [...cl.values()].filter((e) => e.phase === 'Ready').length;
    const head = `ModelCache ${ns}/${name}: ${ready}/${selected.length} Ready`;
    const rows = selected.map((c) => {
      const e: Row | undefined = replicas.get(c) ?? cl.get(c);
      return `  ${c.padEnd(9)} ${(e?.phase ?? '-').padEnd(9)} ${(e?.reason ?? '').padEnd(16)} ${bar(e)} ${bytesOf(e, total).padStart(21)}`;
    });
    return [head, ...rows];
  };
  const draw = (force = false): void => {
    // Nothing to show until the first reconcile has written per-cluster status.
    if (sim.clustersOf(name, ns).size === 0) return;
    const body = frame();
    const now = performance.now();
    if (tty) {
      if (!force && now - lastDraw < 200) return;
      lastDraw = now;
      if (lines > 0) process.stdout.write(`\x1b[${lines}A`);
      const text = [
        `[${sim.clock.stamp()} virtual, ${wall()} wall] ${body[0] ?? ''}`,
        ...body.slice(1),
      ];
      process.stdout.write(text.map((l) => `${l}\x1b[K`).join('\n') + '\n');
      lines = text.length;
      return;
    }
    // Not a terminal (CI, a pipe): a new frame whenever a phase, reason or progress changes.
    const changed = body.join('\n');
    if (!force && changed === last) return;
    last = changed;
    out(`[${sim.clock.stamp()} virtual, ${wall()} wall] ${body[0] ?? ''}`);
    for (const l of body.slice(1)) out(l);
  };
  // The deployment is done when it is Ready with replicas on every selected cluster: it
  // re-spreads on its own TTL once the last cache cluster turns Ready.
  const deployReady = (): boolean => {
    const st = sim.get(sim.deploymentRef('mistral-chat', ns))?.['status'] as
      { clusters?: { name: string; replicas: number }[] } | undefined;
    const placedOn = new Set((st?.clusters ?? []).filter((c) => c.replicas > 0).map((c) => c.name));
    return (
      sim.condition(sim.deploymentRef('mistral-chat', ns), 'Ready')?.status === 'True' &&
      selected.every((c) => placedOn.has(c))
    );
  };
  const cacheReady = (): boolean =>
    sim.condition(sim.cacheRef(name, ns), 'Ready')?.status === 'True';
  let cacheReadyAt: string | undefined;
  await sim.until(
    'the ModelCache and the ModelDeployment Ready',
    () => {
      draw();
      if (cacheReadyAt === undefined && cacheReady()) {
        cacheReadyAt = `${sim.clock.stamp()} of cluster time, ${wall()} wall`;
      }
      return cacheReady() && deployReady();
    },
    2 * 60 * 60 * SECOND,
    55_000,
  );
  draw(tty);
  out();
  const v = sim.verifyCache(name, ns);
  if (v.lost > 0 || v.problems.length > 0 || sim.violations.length > 0) {
    throw new Error(
      `staged bytes do not match the source: ${[...v.problems, ...sim.violations.map((x) => x.message)].join('; ')}`,
    );
  }
  const identity = sim.replica(name, selected[0] ?? '', ns)?.resolvedRevision ?? '';
  out(`ModelCache Ready at ${cacheReadyAt ?? '?'}.`);
  out(
    `Verified: ${selected.length} volumes each hold ${staged.length} files, ${fmt(total)}, sha256-identical to the source (revision ${identity.slice(0, 12)});`,
  );
  out(
    `${files.length - staged.length} files outside the example's include globs were not fetched; ${sim.fetch.starts.length} fetch pods ran in all.`,
  );
  const status = sim.get(sim.deploymentRef('mistral-chat', ns))?.['status'] as
    { clusters?: { name: string; replicas: number; reason: string }[] } | undefined;
  out(
    `ModelDeployment ${ns}/mistral-chat Ready at ${sim.clock.stamp()} of cluster time: ${(status?.clusters ?? []).map((c) => `${c.name} ${c.replicas} (${c.reason})`).join(', ')}`,
  );
  out();
  out('Rendered workloads, as provider-kubernetes applied them on each cluster:');
  const rendered = selected.map((c) => ({ c, o: sim.remote(c, 'apps/v1', 'Deployment', ns)[0] }));
  const first = rendered[0];
  if (first?.o) {
    out();
    out(`# ${first.c}`);
    out(stringify(clean(first.o), { lineWidth: 100 }).trimEnd());
    for (const r of rendered.slice(1)) {
      const specOf = (o: KObject): string => {
        const spec = { ...((clean(o)['spec'] ?? {}) as Json) };
        Reflect.deleteProperty(spec, 'replicas');
        return JSON.stringify(spec);
      };
      const replicas = (o: KObject): string =>
        String((o['spec'] as Json | undefined)?.['replicas']);
      if (r.o === undefined) out(`# ${r.c}: none`);
      else if (specOf(r.o) === specOf(first.o)) {
        out(`# ${r.c}: the same Deployment with replicas: ${replicas(r.o)}`);
      } else {
        out(`# ${r.c}`);
        out(stringify(clean(r.o), { lineWidth: 100 }).trimEnd());
      }
    }
  }
  const others = ics
    .map((ic) => str(ic, 'metadata', 'name') ?? '')
    .filter((c) => !selected.includes(c));
  for (const c of others) {
    out(
      `# ${c}: not selected by the cache or the deployment; nothing composed there (${sim.remote(c, 'v1', 'PersistentVolumeClaim').length} claims, ${sim.remote(c, 'apps/v1', 'Deployment').length} deployments)`,
    );
  }
  await sim.close();
  await hub.hub.close();
  await fn.stop();
  rmSync(logDir, { recursive: true, force: true });
  out();
  out(`Done in ${wall()}.`);
}

await main();
