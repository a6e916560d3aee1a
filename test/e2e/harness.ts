// What every scenario uses on the booted stack: applying example manifests, registering
// workload clusters, waiting on XRs while watching for the watch circuit breaker, reading back
// a cluster's volume, comparing a status with its expectation, and cleaning up after itself.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  readdirSync,
  readFileSync,
  writeFileSync,
  mkdirSync,
  mkdtempSync,
  lstatSync,
  rmSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { isDeepStrictEqual } from 'node:util';

import { parse, parseAllDocuments, stringify } from 'yaml';

import { KubeError, type Json, type Kube } from './kube.js';
import { waitFor } from './procs.js';
import { CROSSPLANE_NS, type Stack, type WorkloadCluster } from './stack.js';

/** A kind defined by one of apis/*\/definition.yaml. */
export interface XrKind {
  kind: string;
  group: string;
  version: string;
  plural: string;
  namespaced: boolean;
}

export function readXrKinds(root: string): XrKind[] {
  const out: XrKind[] = [];
  for (const d of readdirSync(join(root, 'apis')).sort()) {
    const f = join(root, 'apis', d, 'definition.yaml');
    if (!existsSync(f)) continue;
    const xrd = parse(readFileSync(f, 'utf8')) as Json;
    const spec = xrd['spec'] as Json;
    const names = spec['names'] as Json;
    const versions = spec['versions'] as Json[];
    const served = versions.find((v) => v['referenceable'] === true) ?? versions[0] ?? {};
    out.push({
      kind: names['kind'] as string,
      group: spec['group'] as string,
      version: served['name'] as string,
      plural: names['plural'] as string,
      namespaced: (spec['scope'] ?? 'Namespaced') !== 'Cluster',
    });
  }
  return out;
}

export function xrPath(k: XrKind, namespace?: string, name?: string): string {
  const ns = k.namespaced && namespace !== undefined ? `/namespaces/${namespace}` : '';
  return `/apis/${k.group}/${k.version}${ns}/${k.plural}${name !== undefined ? `/${name}` : ''}`;
}

/** provider-kubernetes' namespaced Object API (Crossplane v2's `.m.` group). */
const OBJECT_API = '/apis/kubernetes.m.crossplane.io/v1alpha1';
export const OBJECTS = `${OBJECT_API}/objects`;

const obj = (v: unknown): Json => (v !== null && typeof v === 'object' ? (v as Json) : {});
const arr = (v: unknown): Json[] => (Array.isArray(v) ? (v as Json[]) : []);
export const text = (v: unknown): string => (typeof v === 'string' ? v : '');

export function conditions(o: Json | undefined): Json[] {
  return arr(obj(o?.['status'])['conditions']);
}

export function condition(o: Json | undefined, type: string): Json | undefined {
  return conditions(o).find((c) => c['type'] === type);
}

export interface ScenarioReport {
  readySeconds?: number;
  functionCalls: number;
  circuitOpened: boolean;
  notes: string[];
}

/** Per scenario: what it created (for cleanup) and what it observed (for the report). */
export class Ctx {
  readonly kinds: XrKind[];
  readonly report: ScenarioReport = { functionCalls: 0, circuitOpened: false, notes: [] };
  private readonly created: { kube: Kube; path: string }[] = [];
  private readonly fnLogStart: number;
  private readonly xpLogStart: number;

  /** Watch events per kind and object, and the field manager of each update (the breaker's input). */
  private readonly tally = new Map<
    string,
    Map<string, { events: number; managers: Map<string, number> }>
  >();
  private readonly watches: { stop: () => void }[] = [];
  /** Each replica's sequence of phase/reason as its watch events showed them (issue 11 item 5). */
  readonly transitions = new Map<string, string[]>();
  /**
   * Provider configs whose cluster does not exist: provider-kubernetes can never finish
   * deleting their Objects (it must reach the cluster first), so cleanup releases them.
   */
  readonly unreachable = new Set<string>();

  constructor(
    readonly stack: Stack,
    readonly root: string,
    readonly name: string,
  ) {
    this.kinds = readXrKinds(stack.src);
    this.fnLogStart = stack.get('function').logSize();
    this.xpLogStart = stack.get('crossplane').logSize();
    const count = (kind: string) => (_type: string, o: Json) => {
      const m = obj(o['metadata']);
      const key = `${typeof m['namespace'] === 'string' ? m['namespace'] : ''}/${String(m['name'])}`;
      const perKind =
        this.tally.get(kind) ??
        new Map<string, { events: number; managers: Map<string, number> }>();
      const e = perKind.get(key) ?? { events: 0, managers: new Map<string, number>() };
      e.events++;
      // The manager whose entry changed last wrote this version (managedFields have 1 s resolution).
      const latest = arr(m['managedFields'])
        .map((f) => ({
          manager: String(f['manager']),
          time: typeof f['time'] === 'string' ? f['time'] : '',
          sub: typeof f['subresource'] === 'string' ? f['subresource'] : '',
        }))
        .sort((x, y) => x.time.localeCompare(y.time))
        .pop();
      const who = latest ? `${latest.manager}${latest.sub ? `/${latest.sub}` : ''}` : 'unknown';
      e.managers.set(who, (e.managers.get(who) ?? 0) + 1);
      perKind.set(key, e);
      this.tally.set(kind, perKind);
      if (kind === 'ModelCacheReplica') {
        const st = obj(o['status']);
        if (typeof st['phase'] === 'string') {
          const step = `${st['phase']}/${typeof st['reason'] === 'string' ? st['reason'] : ''}`;
          const seq = this.transitions.get(key) ?? [];
          if (seq[seq.length - 1] !== step) seq.push(step);
          this.transitions.set(key, seq);
        }
      }
    };
    this.watches.push(stack.cp.watch(OBJECTS, count('Object')));
    for (const k of this.kinds.filter((x) => x.kind !== 'InferenceCluster')) {
      this.watches.push(stack.cp.watch(xrPath(k), count(k.kind)));
    }
  }

  /** One line per kind on the watch events the scenario produced (what feeds the breaker). */
  eventSummary(): string[] {
    const out: string[] = [];
    for (const [kind, perKind] of this.tally) {
      let total = 0;
      const managers = new Map<string, number>();
      let top = { key: '', events: 0 };
      for (const [key, e] of perKind) {
        total += e.events;
        if (e.events > top.events) top = { key, events: e.events };
        for (const [m, n] of e.managers) managers.set(m, (managers.get(m) ?? 0) + n);
      }
      const by = [...managers]
        .sort((x, y) => y[1] - x[1])
        .map(([m, n]) => `${m} ${n}`)
        .join(', ');
      out.push(
        `${kind} watch events: ${total} over ${perKind.size} (most: ${top.events} on ${top.key}); by last writer: ${by}`,
      );
    }
    return out;
  }

  get cp(): Kube {
    return this.stack.cp;
  }

  wl(i: number): WorkloadCluster {
    const w = this.stack.workloads[i];
    if (!w) throw new Error(`no workload cluster ${i}`);
    return w;
  }

  kind(name: string): XrKind {
    const k = this.kinds.find((x) => x.kind === name);
    if (!k) throw new Error(`no XRD defines ${name}`);
    return k;
  }

  note(msg: string): void {
    this.report.notes.push(msg);
  }

  /** The example's manifests, status blocks dropped (apply ignores them; the real composition reports). */
  example(rel: string, edit?: (doc: Json) => void): Json[] {
    const docs = parseAllDocuments(readFileSync(join(this.stack.src, 'examples', rel), 'utf8'))
      .map((d) => d.toJS() as Json | null)
      .filter((d): d is Json => d !== null);
    for (const d of docs) {
      delete d['status'];
      edit?.(d);
    }
    return docs;
  }

  /** Applies manifests on the control plane (or a workload cluster) and remembers them for cleanup. */
  async apply(docs: Json[], kube: Kube = this.cp): Promise<void> {
    await kube.apply(docs.map((d) => stringify(d)).join('---\n'));
    for (const d of docs) this.created.push({ kube, path: await this.pathOf(kube, d) });
  }

  private async pathOf(kube: Kube, d: Json): Promise<string> {
    const meta = obj(d['metadata']);
    const name = meta['name'] as string;
    const ns = meta['namespace'] as string | undefined;
    const [group, version] = String(d['apiVersion']).includes('/')
      ? String(d['apiVersion']).split('/')
      : ['', String(d['apiVersion'])];
    const plural = await this.plural(kube, String(d['apiVersion']), String(d['kind']));
    const base = group ? `/apis/${group}/${version ?? ''}` : `/api/${version ?? ''}`;
    return `${base}${ns ? `/namespaces/${ns}` : ''}/${plural}/${name}`;
  }

  private async plural(kube: Kube, apiVersion: string, kind: string): Promise<string> {
    const base = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
    const res = await kube.get(base);
    const r = arr(res['resources']).find(
      (x) => x['kind'] === kind && !String(x['name']).includes('/'),
    );
    if (!r) throw new Error(`${apiVersion} serves no ${kind}`);
    return r['name'] as string;
  }

  /**
   * Registers workload clusters under the names the example's provider configs use: the
   * kubeconfig Secret crossplane-system/<name>-kubeconfig of workload cluster `index`.
   */
  async registerClusters(map: Record<string, number>): Promise<void> {
    const docs = Object.entries(map).map(([name, i]) => ({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: `${name}-kubeconfig`, namespace: CROSSPLANE_NS },
      stringData: { kubeconfig: readFileSync(this.wl(i).kubeconfig, 'utf8') },
    }));
    await this.apply(docs);
  }

  async namespace(name: string, kube: Kube = this.cp): Promise<void> {
    await this.apply([{ apiVersion: 'v1', kind: 'Namespace', metadata: { name } }], kube);
  }

  /** A StorageClass on workload cluster `i` (what the InferenceCluster composition observes). */
  async storageClass(i: number, name: string, provisioner: string): Promise<void> {
    await this.apply(
      [
        {
          apiVersion: 'storage.k8s.io/v1',
          kind: 'StorageClass',
          metadata: { name },
          provisioner,
          volumeBindingMode: 'Immediate',
        },
      ],
      this.wl(i).kube,
    );
  }

  async getXr(kind: string, ns: string | undefined, name: string): Promise<Json | undefined> {
    return this.cp.getOrUndefined(xrPath(this.kind(kind), ns, name));
  }

  /** Every XR of every kind (for the circuit breaker watch and leak checks). */
  async allXrs(): Promise<{ kind: XrKind; xr: Json }[]> {
    const out: { kind: XrKind; xr: Json }[] = [];
    for (const k of this.kinds) {
      for (const xr of await this.cp.list(xrPath(k))) out.push({ kind: k, xr });
    }
    return out;
  }

  /** Notes any XR whose watch circuit breaker is open (Responsive=False, WatchCircuitOpen). */
  async watchBreaker(): Promise<void> {
    for (const { xr } of await this.allXrs()) {
      const c = condition(xr, 'Responsive');
      if (c && c['status'] === 'False') {
        if (!this.report.circuitOpened) {
          const m = obj(xr['metadata']);
          this.note(
            `circuit breaker open on ${String(xr['kind'])} ${typeof m['namespace'] === 'string' ? m['namespace'] : ''}/${String(m['name'])}: ${String(c['reason'])}`,
          );
        }
        this.report.circuitOpened = true;
      }
    }
  }

  /** Waits until `pred` holds for the XR; watches the breaker meanwhile. */
  async waitXr(
    kind: string,
    ns: string | undefined,
    name: string,
    what: string,
    pred: (xr: Json) => boolean,
    timeoutMs = 300_000,
  ): Promise<Json> {
    return waitFor(
      `${kind} ${ns ?? ''}/${name} ${what}`,
      timeoutMs,
      async () => {
        await this.watchBreaker();
        const xr = await this.getXr(kind, ns, name);
        return xr && pred(xr) ? xr : undefined;
      },
      1000,
    );
  }

  async waitReady(
    kind: string,
    ns: string | undefined,
    name: string,
    timeoutMs = 300_000,
  ): Promise<Json> {
    return this.waitXr(
      kind,
      ns,
      name,
      'Ready',
      (xr) => condition(xr, 'Ready')?.['status'] === 'True',
      timeoutMs,
    );
  }

  /** Function calls (RunFunction log lines) since the scenario started. */
  functionCalls(): number {
    return (
      this.stack.get('function').logSince(this.fnLogStart).split('"msg":"RunFunction"').length - 1
    );
  }

  crossplaneLog(): string {
    return this.stack.get('crossplane').logSince(this.xpLogStart);
  }

  finish(): void {
    for (const w of this.watches) w.stop();
    for (const line of this.eventSummary()) this.note(line);
    for (const [key, seq] of this.transitions) this.note(`replica ${key}: ${seq.join(' -> ')}`);
    this.report.functionCalls = this.functionCalls();
    if (/WatchCircuitOpen|circuit breaker open/i.test(this.crossplaneLog()))
      this.report.circuitOpened = true;
  }

  /** Drops the finalizer of every Object being deleted whose cluster is in `unreachable`. */
  private async releaseUnreachable(): Promise<void> {
    if (this.unreachable.size === 0) return;
    for (const o of await this.cp.list(OBJECTS)) {
      const m = obj(o['metadata']);
      const pc = text(obj(obj(o['spec'])['providerConfigRef'])['name']);
      if (m['deletionTimestamp'] === undefined || !this.unreachable.has(pc)) continue;
      if (arr(m['finalizers']).length === 0) continue;
      await this.cp
        .mergePatch(`${OBJECT_API}/namespaces/${text(m['namespace'])}/objects/${text(m['name'])}`, {
          metadata: { finalizers: null },
        })
        .catch(() => undefined);
    }
  }

  /**
   * Deletes what the scenario made, XRs first (ModelDeployments before the caches they use),
   * and waits until no XR and no Object remains, so the next scenario starts from nothing.
   */
  async cleanup(): Promise<void> {
    const order = [...this.kinds].sort((a, b) => rank(a) - rank(b));
    for (const k of order) {
      for (const xr of await this.cp.list(xrPath(k))) {
        const m = obj(xr['metadata']);
        const path = xrPath(k, m['namespace'] as string | undefined, m['name'] as string);
        // A consumer deleted just before leaves its Usage for the garbage collector to remove:
        // until it does, the Usage webhook refuses the delete (409). Ask again.
        await waitFor(`${k.kind} ${String(m['name'])} deletion accepted`, 120_000, async () => {
          try {
            await this.cp.delete(path);
            return true;
          } catch (err) {
            if (err instanceof KubeError && err.status === 409 && /in-use by/.test(err.body))
              return undefined;
            throw err;
          }
        });
      }
      await waitFor(
        `every ${k.kind} gone`,
        300_000,
        async () => {
          await this.releaseUnreachable();
          return (await this.cp.list(xrPath(k))).length === 0 ? true : undefined;
        },
        1000,
      );
    }
    await waitFor(
      'every Object gone',
      180_000,
      async () => {
        await this.releaseUnreachable();
        return (await this.cp.list(OBJECTS)).length === 0 ? true : undefined;
      },
      1000,
    );
    for (const c of [...this.created].reverse()) await c.kube.delete(c.path);
    for (const w of this.stack.workloads) {
      for (const ns of await w.kube.list('/api/v1/namespaces')) {
        const n = obj(ns['metadata'])['name'] as string;
        if (!n.startsWith('kube-') && n !== 'default')
          await w.kube.delete(`/api/v1/namespaces/${n}`);
      }
    }
    await waitFor(
      'the control plane and workload namespaces of the scenario gone',
      180_000,
      async () => {
        for (const c of this.created) if (await c.kube.getOrUndefined(c.path)) return undefined;
        for (const w of this.stack.workloads) {
          const left = (await w.kube.list('/api/v1/namespaces')).filter((ns) => {
            const n = obj(ns['metadata'])['name'] as string;
            return !n.startsWith('kube-') && n !== 'default';
          });
          if (left.length > 0) return undefined;
        }
        return true;
      },
      1000,
    );
  }
}

/** Consumers before what they consume; the cluster-scoped registrations last. */
function rank(k: XrKind): number {
  if (k.kind === 'ModelDeployment') return 0;
  if (k.kind === 'ModelCache') return 1;
  if (!k.namespaced) return 3;
  return 2;
}

// --- volumes -------------------------------------------------------------------------------

/** The files a claim's volume holds (outside the fetch program's own .modelcache/), by sha256. */
export async function volumeFiles(
  w: WorkloadCluster,
  ns: string,
  claim: string,
): Promise<Record<string, string>> {
  const pvc = await w.kube.get(`/api/v1/namespaces/${ns}/persistentvolumeclaims/${claim}`);
  const pvName = obj(pvc['spec'])['volumeName'] as string | undefined;
  if (!pvName) throw new Error(`${w.name}: claim ${ns}/${claim} is not bound`);
  const pv = await w.kube.get(`/api/v1/persistentvolumes/${pvName}`);
  const dir = obj(obj(pv['spec'])['hostPath'])['path'] as string;
  const out: Record<string, string> = {};
  const walk = (d: string): void => {
    for (const e of readdirSync(d).sort()) {
      const p = join(d, e);
      const rel = relative(dir, p);
      if (rel === '.modelcache') continue;
      if (lstatSync(p).isDirectory()) walk(p);
      else out[rel] = createHash('sha256').update(readFileSync(p)).digest('hex');
    }
  };
  walk(dir);
  return out;
}

export function sha256Map(files: Record<string, Buffer | string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of Object.keys(files).sort())
    out[p] = createHash('sha256')
      .update(files[p] ?? '')
      .digest('hex');
  return out;
}

// --- status expectations -------------------------------------------------------------------

const UID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

/** Volatile values replaced by placeholders; conditions sorted by type. */
export function normalize(v: unknown): unknown {
  if (Array.isArray(v)) {
    // Crossplane's watch circuit breaker (Responsive) depends on event timing, not on the
    // product: it is reported per scenario instead of compared.
    const items = v
      .filter((i) => !(i !== null && typeof i === 'object' && (i as Json)['type'] === 'Responsive'))
      .map(normalize);
    if (
      items.every(
        (i) =>
          i !== null && typeof i === 'object' && 'type' in (i as Json) && 'status' in (i as Json),
      )
    ) {
      return [...(items as Json[])].sort((a, b) =>
        String(a['type']).localeCompare(String(b['type'])),
      );
    }
    return items;
  }
  if (v !== null && typeof v === 'object') {
    const out: Json = {};
    for (const [k, x] of Object.entries(v as Json)) {
      if (k === 'observedGeneration') continue;
      // A hash over the source, whose URL carries the test server's ephemeral port; and one
      // over the remote objects' UIDs.
      out[k] =
        k === 'identity' && typeof x === 'string' && /^[0-9a-f]{64}$/.test(x)
          ? '<identity>'
          : k === 'steady' && typeof x === 'string' && /^[0-9a-f]{32}$/.test(x)
            ? '<steady>'
            : normalize(x);
    }
    return out;
  }
  if (typeof v === 'string' && TIME.test(v)) return '<time>';
  if (typeof v === 'string' && UID.test(v)) return '<uid>';
  if (typeof v === 'string') {
    // Test servers listen on ephemeral loopback ports; Job names carry the identity's prefix.
    return v
      .replace(/127\.0\.0\.1:\d+/g, '127.0.0.1:<port>')
      .replace(/-fetch-[0-9a-f]{8}\b/g, '-fetch-<identity>');
  }
  return v;
}

/**
 * Compares what the scenario observed with test/e2e/expected/<file>.yaml. E2E_UPDATE=1 writes
 * the file instead (then review the diff: the file is the expectation, not a recording).
 */
export function expectStatus(file: string, actual: unknown, root: string): void {
  const path = join(root, 'test/e2e/expected', `${file}.yaml`);
  const got = normalize(actual);
  if (process.env['E2E_UPDATE'] === '1') {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, stringify(got, { lineWidth: 0 }));
    return;
  }
  if (!existsSync(path)) throw new Error(`${path} is missing (E2E_UPDATE=1 writes it; review it)`);
  const want = parse(readFileSync(path, 'utf8')) as unknown;
  if (!isDeepStrictEqual(got, want)) {
    throw new Error(`status differs from ${relative(root, path)}:\n${yamlDiff(want, got)}`);
  }
}

export function expectEqual(what: string, got: unknown, want: unknown): void {
  if (!isDeepStrictEqual(got, want)) throw new Error(`${what}:\n${yamlDiff(want, got)}`);
}

/**
 * The differing lines only (diff -u, 3 lines of context): a whole status printed twice was cut
 * by CI's log excerpt before the line that differed.
 */
export function yamlDiff(want: unknown, got: unknown): string {
  const dir = mkdtempSync(join(tmpdir(), 'e2e-diff-'));
  try {
    const w = join(dir, 'want.yaml');
    const g = join(dir, 'got.yaml');
    writeFileSync(w, stringify(want, { lineWidth: 0 }));
    writeFileSync(g, stringify(got, { lineWidth: 0 }));
    const r = spawnSync('diff', ['-u', '--label', 'want', '--label', 'got', w, g], {
      encoding: 'utf8',
    });
    // Exit 1 is "they differ"; anything else means diff itself failed: say so with both.
    if (r.status === 1) return r.stdout;
    return `(diff failed: ${r.error?.message ?? r.stderr})\n--- want\n${readFileSync(w, 'utf8')}--- got\n${readFileSync(g, 'utf8')}`;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function pause(ms: number): Promise<void> {
  await sleep(ms);
}
