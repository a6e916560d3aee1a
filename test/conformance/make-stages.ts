// Writes the generated fixtures of the examples: the ModelCacheReplicas each ModelCache composes
// (examples/<n>/replicas/) and the observed fixtures of every lifecycle stage, from stage.yaml:
//
//   npx tsx test/conformance/make-stages.ts [examples/<n>-<slug> ...]   (default: every example)
//
// A stage folder's stage.yaml says which earlier stage it follows and what each workload cluster
// reports by then. For each XR file it names, this renders the earlier stage (in process, which
// the conformance suite proves equal to the upstream render) and writes, beside stage.yaml:
//
// - the XR with the status the earlier reconcile wrote, and `<xr>.observed.yaml`: what it
//   composed, as observed now;
// - for a ModelCache, each ModelCacheReplica it composed, under replicas/: the replica with the
//   status its own earlier reconcile wrote, and `<replica>.observed.yaml`: the Objects that
//   reconcile applied, as provider-kubernetes reports them for the remote state in stage.yaml.
//   The ModelCache observes its replicas with the status their reconcile at this stage writes
//   (each replica is rendered at this stage for it): replicas report, then the cache aggregates.
//
// Review the result like any fixture, then regenerate the goldens (UPDATE_GOLDEN=1 npm test,
// which also runs this). `npm test` fails when a fixture is not what this writes for the current
// Function, or when a generated folder holds a file this would not write.
//
// stage.yaml:
//   from: 0-created                       # the stage this one follows
//   xrs:
//     xr.yaml:                            # an XR file of the example
//       us-east:                          # an InferenceCluster; roles not listed are synced
//         pvc: Bound                      # NotObserved | Pending | Bound | Lost
//         job: { state: running, done: 1073741824, total: 16060522496 }
//                                         # NotObserved | created | running | complete | failed
//         credentials: { syncFailed: 'cannot get referenced Secret team-a/hf-token' }
//   annotations:                          # optional: what a user changed on an XR since `from`
//     xr.yaml: { modelplane.ai/refetch: '1' }
//
// An XR at a stage is the XR of the stage it follows (its spec and metadata, the edits of earlier
// stages included) with that stage's annotations applied and the status its reconcile wrote.
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { pathToFileURL } from 'node:url';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { Environment } from '@marcbachmann/cel-js';
import * as prettier from 'prettier';
import { parse, stringify } from 'yaml';
import { KIND_MODEL_CACHE_REPLICA } from '../../function/constants.js';
import type { Json } from '../../function/k8s/object.js';
import * as f from '../support/fixtures.js';
import { CONDITION_TIME } from '../render/engine.js';
import { outcomeOf, renderCaseInProcess } from '../render/run.js';
import {
  EXAMPLES_DIR,
  CREATED_STAGE,
  REPLICAS_DIR,
  STAGES_DIR,
  casesOf,
  listExamples,
  observedFileOf,
  readDocs,
  rel,
  type Doc,
  type Example,
  type RenderCase,
} from './examples.js';

const ANNOTATION_RESOURCE_NAME = 'crossplane.io/composition-resource-name';
const STAGE_FILE = 'stage.yaml';

type RoleState = string | { syncFailed: string } | f.JobObservation;
/** Cluster name → role (pvc, job, credentials, ...) → what it reports. */
type ClusterStates = Record<string, Record<string, RoleState> | null>;

interface StageSpec {
  from: string;
  xrs: Record<string, ClusterStates>;
  annotations?: Record<string, Record<string, string>>;
}

/** A generated file: its path relative to the example folder, and its content. */
interface Generated {
  rel: string;
  text: string;
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function readSpec(path: string): StageSpec {
  const raw: unknown = parse(readFileSync(path, 'utf8'));
  if (!isObj(raw) || typeof raw['from'] !== 'string' || !isObj(raw['xrs'])) {
    throw new Error(`${rel(path)}: want "from: <stage>" and "xrs: {<file>: {<cluster>: ...}}"`);
  }
  const annotations = raw['annotations'];
  if (annotations !== undefined) {
    const ok =
      isObj(annotations) &&
      Object.entries(annotations).every(
        ([file, a]) =>
          isObj(raw['xrs']) &&
          file in raw['xrs'] &&
          isObj(a) &&
          Object.values(a).every((v) => typeof v === 'string'),
      );
    if (!ok) {
      throw new Error(
        `${rel(path)}: want "annotations: {<file listed under xrs>: {<key>: <string>}}"`,
      );
    }
  }
  return raw as unknown as StageSpec;
}

/** apiVersion, kind and metadata first, as kubectl prints objects. */
function ordered(d: Json): Json {
  const { apiVersion, kind, metadata, ...rest } = d;
  return { apiVersion, kind, metadata, ...rest };
}

/** Conditions carry a lastTransitionTime (the Object CRD requires one); render's fixed time. */
function stamped(d: Json): Json {
  const status = d['status'];
  if (!isObj(status) || !Array.isArray(status['conditions'])) return d;
  const conditions = (status['conditions'] as unknown[]).map((c) =>
    isObj(c) ? { ...c, lastTransitionTime: c['lastTransitionTime'] ?? CONDITION_TIME } : c,
  );
  return { ...d, status: { ...status, conditions } };
}

function metadataOf(d: Json): Json {
  return d['metadata'] as Json;
}

function resourceName(d: Json): string {
  return String((metadataOf(d)['annotations'] as Json)[ANNOTATION_RESOURCE_NAME]);
}

function isReplica(d: Json): boolean {
  return d['kind'] === KIND_MODEL_CACHE_REPLICA;
}

const cel = new Environment().registerVariable('object', 'dyn');

/**
 * The Ready condition provider-kubernetes (v1.2, namespaced Object) sets once it has observed
 * the remote object: with readiness policy SuccessfulCreate (the default) Available once the
 * object exists; with DeriveFromCelQuery, Available when the query over the remote object is
 * true, else Unavailable. Without a remote object (not created yet, or failing to sync) it
 * sets none.
 */
function readyCondition(observed: Json): Json | undefined {
  const status = observed['status'] as Json | undefined;
  const remote = (status?.['atProvider'] as Json | undefined)?.['manifest'];
  if (!isObj(remote)) return undefined;
  const readiness = (observed['spec'] as Json)['readiness'] as Json | undefined;
  const policy = readiness?.['policy'] ?? 'SuccessfulCreate';
  const unavailable = { type: 'Ready', status: 'False', reason: 'Unavailable' };
  if (policy === 'SuccessfulCreate') return { type: 'Ready', status: 'True', reason: 'Available' };
  if (policy !== 'DeriveFromCelQuery') {
    throw new Error(`readiness policy ${JSON.stringify(policy)} is not modelled here`);
  }
  try {
    return cel.evaluate(String(readiness?.['celQuery']), { object: remote }) === true
      ? { type: 'Ready', status: 'True', reason: 'Available' }
      : unavailable;
  } catch (err) {
    // A query over a field the object lacks (a remote object with no status yet) is an error,
    // which the provider reports as the Unavailable condition's message.
    const msg = err instanceof Error ? (err.message.split('\n')[0] ?? '') : String(err);
    return {
      ...unavailable,
      message: `failed to eval the program: ${msg.charAt(0).toLowerCase()}${msg.slice(1)}`,
    };
  }
}

/** An observed Object with the conditions the provider's observe of its remote object sets. */
function withReady(observed: Json): Json {
  const ready = readyCondition(observed);
  if (ready === undefined) return observed;
  const status = observed['status'] as Json;
  const conditions = (status['conditions'] as Json[] | undefined) ?? [];
  // An observe that read the remote object succeeded: the managed reconciler says Synced.
  const synced = conditions.some((c) => c['type'] === 'Synced')
    ? []
    : [{ type: 'Synced', status: 'True', reason: 'ReconcileSuccess' }];
  return { ...observed, status: { ...status, conditions: [...synced, ...conditions, ready] } };
}

/** The Object as provider-kubernetes reports it once the remote object is in `state`. */
function observe(desired: Json, role: string, state: RoleState | undefined): Json {
  const keep = (o: Json): Json =>
    ordered(stamped({ ...withReady(o), metadata: metadataOf(desired) }));
  // Not a provider-kubernetes Object (a ModelDeployment's Usage): observed as applied.
  if (!isObj((desired['spec'] as Json | undefined)?.['forProvider'])) return keep(desired);
  const isJob = role.startsWith('fetch-');
  const s = state ?? (role === 'pvc' || isJob ? 'NotObserved' : 'synced');
  if (s === 'NotObserved') return keep(f.observedObject(desired, undefined));
  if (s === 'synced') return keep(f.synced(desired));
  if (isObj(s) && 'syncFailed' in s) return keep(f.syncFailed(desired, s.syncFailed));
  if (role === 'pvc' && (s === 'Pending' || s === 'Bound' || s === 'Lost')) {
    return keep(f.pvcObserved(desired, s));
  }
  if (isJob && isObj(s) && 'state' in s) return keep(f.jobObserved(desired, s));
  throw new Error(`role ${role}: cannot observe ${JSON.stringify(s)}`);
}

/** The name stage.yaml gives a role: the prefetch Job (fetch-<identity>) is `job`. */
function stageRole(role: string): string {
  return role.startsWith('fetch-') ? 'job' : role;
}

/** What one cluster reports for one role. */
function stateOf(states: ClusterStates, cluster: string, role: string): RoleState | undefined {
  return states[cluster]?.[stageRole(role)];
}

/**
 * stage.yaml may only describe Objects the earlier reconcile applied: a state for anything else
 * would be silently dropped, and the stage would not show what its name says.
 */
function checkStates(where: string, states: ClusterStates, composed: Set<string>): void {
  for (const [cluster, roles] of Object.entries(states)) {
    for (const role of Object.keys(roles ?? {})) {
      if (!composed.has(`${cluster}/${role}`)) {
        throw new Error(
          `${where}: stage.yaml says what ${role} reports on ${cluster}, but the reconcile it follows composed no ${role} there (it composed: ${[...composed].sort().join(', ') || 'nothing'})`,
        );
      }
    }
  }
}

function header(lines: string[]): string {
  return lines.map((l) => `# ${l}`.trimEnd()).join('\n') + '\n';
}

/** YAML 1.1 quoting (timestamps, yes/no stay strings for Go's parsers), then prettier's format. */
function toYaml(v: unknown): string {
  return stringify(v, { version: '1.1', lineWidth: 0, aliasDuplicateObjects: false });
}

/**
 * Documents of one file. No "---" before the first document: Go's YAML reader would make the
 * header comment an empty document, which render rejects as an observed resource without a name.
 */
function docsYaml(docs: Json[]): string {
  return docs.map(toYaml).join('---\n');
}

/** The documents an in-process render of a case produced: the XR, then what it composed. */
async function rendered(c: RenderCase): Promise<{ xr: Doc; composed: Json[] }> {
  const out = outcomeOf(await renderCaseInProcess(c));
  if (!('documents' in out)) throw new Error(`${rel(c.xrPath)} does not render: ${out.fatal}`);
  const [xr, ...rest] = out.documents;
  if (xr === undefined) throw new Error(`${rel(c.xrPath)} renders no XR`);
  return { xr, composed: rest.filter((d) => d['kind'] !== 'Result') };
}

/** Files are generated into a working copy of the example, and read back from it. */
class Writer {
  readonly files: Generated[] = [];
  constructor(
    private readonly work: Example,
    private readonly realDir: string,
  ) {}

  async write(relPath: string, text: string): Promise<void> {
    // Formatted as the repository's own file would be (prettier's config is found from there).
    const real = join(this.realDir, relPath);
    const options = (await prettier.resolveConfig(real)) ?? {};
    const out = await prettier.format(text, { ...options, filepath: real });
    const path = join(this.work.dir, relPath);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, out);
    this.files.push({ rel: relPath, text: out });
  }

  /** The case of `xrFile` at `stage`, as the working copy holds it now. */
  caseOf(xrFile: string, stage: string): RenderCase | undefined {
    return casesOf(this.work).find((c) => c.xrFile === xrFile && c.stage === stage);
  }

  private readonly renders = new Map<string, Promise<{ xr: Doc; composed: Json[] }>>();
  /**
   * The render of a case, once: a case is rendered only after every file it reads is written,
   * and a stage's files are not written again once a later stage reads them.
   */
  render(c: RenderCase): Promise<{ xr: Doc; composed: Json[] }> {
    const key = `${c.stage}\u0000${c.xrFile}`;
    let r = this.renders.get(key);
    if (r === undefined) {
      r = rendered(c);
      this.renders.set(key, r);
    }
    return r;
  }
}

/** The replicas the example's XRs compose when first reconciled (stage 0-created). */
async function createdReplicas(w: Writer, ex: Example): Promise<void> {
  for (const xrFile of ex.xrFiles) {
    const c = w.caseOf(xrFile, CREATED_STAGE);
    if (c === undefined || c.expectRejected) continue;
    const { composed } = await w.render(c);
    for (const replica of composed.filter(isReplica)) {
      const name = String(metadataOf(replica)['name']);
      await w.write(
        `${REPLICAS_DIR}/${name}.yaml`,
        header([
          `The ModelCacheReplica for cluster ${String((replica['spec'] as Json)['cluster'])} as the reconcile of ${xrFile} at`,
          `${CREATED_STAGE} composes it (Crossplane adds the label, annotation and owner reference);`,
          `not yet reconciled itself. Written by test/conformance/make-stages.ts.`,
        ]) + toYaml(ordered(replica)),
      );
    }
  }
}

/** One stage's fixtures, written after the stage it follows. */
async function stageFixtures(w: Writer, ex: Example, stage: string): Promise<void> {
  const dir = `${STAGES_DIR}/${stage}`;
  const spec = readSpec(join(ex.dir, dir, STAGE_FILE));
  /** Per cache XR file: the replicas it composed at `from`, to be observed at this stage. */
  const replicasOf = new Map<string, Json[]>();

  for (const [xrFile, clusters] of Object.entries(spec.xrs)) {
    if (!ex.xrFiles.includes(xrFile))
      throw new Error(`${rel(ex.dir)}/${dir}: no XR file ${xrFile}`);
    const from = w.caseOf(xrFile, spec.from);
    if (!from) throw new Error(`${rel(ex.dir)}/${dir}: no stage ${spec.from} for ${xrFile}`);
    const { xr: xrOut, composed } = await w.render(from);
    // The XR as the earlier stage held it, its old status replaced below.
    const xr = { ...(readDocs(from.xrPath)[0] as Doc) };
    Reflect.deleteProperty(xr, 'status');
    const edits = spec.annotations?.[xrFile];
    if (edits !== undefined) {
      const meta = { ...(xr['metadata'] as Json) };
      meta['annotations'] = { ...(meta['annotations'] as Json | undefined), ...edits };
      xr['metadata'] = meta;
    }
    await w.write(
      `${dir}/${xrFile}`,
      header([
        `${xrFile} as observed at stage ${stage}: the status is what the reconcile at stage`,
        `${spec.from} wrote. Written by test/conformance/make-stages.ts from stage.yaml.`,
      ]) + toYaml({ ...xr, status: xrOut['status'] }),
    );

    const replicas = composed.filter(isReplica);
    const others = composed.filter((d) => !isReplica(d));
    /** cluster/role of every Object applied at `from`, as stage.yaml names them. */
    const applied = new Set<string>();
    for (const d of others) {
      const [cluster = '', role = ''] = resourceName(d).split('/');
      applied.add(`${cluster}/${stageRole(role)}`);
    }
    if (replicas.length > 0) replicasOf.set(xrFile, replicas);
    if (others.length > 0) {
      const observed = others.map((d) => {
        const [cluster = '', role = ''] = resourceName(d).split('/');
        return observe(d, role, stateOf(clusters, cluster, role));
      });
      await w.write(
        `${dir}/${observedFileOf(xrFile)}`,
        header([
          `The composed resources of ${xrFile} as Crossplane observes them at stage ${stage}:`,
          `the Objects the reconcile at stage ${spec.from} applied, as provider-kubernetes`,
          `reports them for the remote state in stage.yaml. Written by make-stages.ts.`,
        ]) + docsYaml(observed),
      );
    }

    for (const replica of replicas) {
      const name = String(metadataOf(replica)['name']);
      const cluster = String((replica['spec'] as Json)['cluster']);
      const replicaFile = `${REPLICAS_DIR}/${name}.yaml`;
      // A replica the cache composed for the first time at `from` has not reconciled yet.
      const before = w.caseOf(replicaFile, spec.from);
      const last = before ? await w.render(before) : undefined;
      for (const d of last?.composed ?? []) applied.add(`${cluster}/${stageRole(resourceName(d))}`);
      await w.write(
        `${dir}/${replicaFile}`,
        header([
          `The ModelCacheReplica for cluster ${cluster} at stage ${stage}: as the reconcile of`,
          `${xrFile} at stage ${spec.from} composed it, with the status its own reconcile at`,
          `stage ${spec.from} wrote. Written by test/conformance/make-stages.ts.`,
        ]) + toYaml(ordered({ ...replica, ...(last ? { status: last.xr['status'] } : {}) })),
      );
      if (last === undefined || last.composed.length === 0) continue;
      await w.write(
        `${dir}/${observedFileOf(replicaFile)}`,
        header([
          `The Objects of replica ${name} as Crossplane observes them at stage ${stage}: what`,
          `its reconcile at stage ${spec.from} applied, as provider-kubernetes reports them for`,
          `what stage.yaml says cluster ${cluster} reports. Written by make-stages.ts.`,
        ]) +
          docsYaml(
            last.composed.map((d) =>
              observe(d, resourceName(d), stateOf(clusters, cluster, resourceName(d))),
            ),
          ),
      );
    }
    checkStates(`${ex.name}/${dir} (${xrFile})`, clusters, applied);
  }

  // The caches observe their replicas as the replicas' reconcile at this stage leaves them.
  for (const [xrFile, replicas] of replicasOf) {
    const observed: Json[] = [];
    for (const replica of replicas) {
      const name = String(metadataOf(replica)['name']);
      const now = w.caseOf(`${REPLICAS_DIR}/${name}.yaml`, stage);
      if (now === undefined) throw new Error(`${rel(ex.dir)}/${dir}: replica ${name} not written`);
      const { xr } = await w.render(now);
      observed.push(ordered({ ...replica, status: xr['status'] }));
    }
    await w.write(
      `${dir}/${observedFileOf(xrFile)}`,
      header([
        `The ModelCacheReplicas of ${xrFile} as Crossplane observes them at stage ${stage}: as`,
        `the reconcile at stage ${spec.from} composed them, with the status each replica's own`,
        `reconcile at this stage writes (replicas/). Written by make-stages.ts.`,
      ]) + docsYaml(observed),
    );
  }
}

/** Paths (relative to an example folder) that make-stages writes: any other file there is stale. */
function isGenerated(relPath: string): boolean {
  const parts = relPath.split('/');
  if (parts[0] === REPLICAS_DIR) return true;
  return (
    parts[0] === STAGES_DIR && parts.length >= 3 && !(parts.length === 3 && parts[2] === STAGE_FILE)
  );
}

function filesUnder(dir: string, base = dir): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? filesUnder(p, base) : [relative(base, p)];
  });
}

/** Every generated file of an example, computed in a scratch copy holding only its sources. */
async function generate(ex: Example): Promise<Generated[]> {
  const root = mkdtempSync(join(tmpdir(), 'make-stages-'));
  try {
    cpSync(ex.dir, join(root, ex.name), {
      recursive: true,
      filter: (src) => !isGenerated(relative(ex.dir, src)),
    });
    const work = listExamples(root).find((e) => e.name === ex.name);
    if (!work) throw new Error(`${ex.name}: not an example once copied`);
    const w = new Writer(work, ex.dir);
    if (work.notRenderable === undefined) {
      await createdReplicas(w, work);
      for (const stage of work.stages) await stageFixtures(w, work, stage);
    }
    return w.files;
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

/**
 * The example's generated files compared with what it holds: the result lists the files that
 * differ, are missing, or should not be there. `write` also brings the example up to date.
 */
export async function syncStages(ex: Example, write: boolean): Promise<string[]> {
  const files = await generate(ex);
  const wanted = new Set(files.map((g) => g.rel));
  const stale: string[] = [];
  for (const g of files) {
    const path = join(ex.dir, g.rel);
    if (existsSync(path) && readFileSync(path, 'utf8') === g.text) continue;
    stale.push(rel(path));
    if (write) {
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, g.text);
    }
  }
  for (const r of filesUnder(ex.dir).filter((p) => isGenerated(p) && !wanted.has(p))) {
    stale.push(rel(join(ex.dir, r)));
    if (write) rmSync(join(ex.dir, r));
  }
  if (write) {
    // A replicas/ folder left empty by removed fixtures goes too.
    for (const d of [ex.dir, ...ex.stages.map((s) => join(ex.dir, STAGES_DIR, s))]) {
      const replicas = join(d, REPLICAS_DIR);
      if (existsSync(replicas) && filesUnder(replicas).length === 0)
        rmSync(replicas, { recursive: true });
    }
  }
  return stale;
}

// Run as a program: write every example's generated fixtures (or the named examples').
if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const wanted = new Set(process.argv.slice(2).map((a) => basename(resolve(a))));
  for (const ex of listExamples(EXAMPLES_DIR)) {
    if (wanted.size > 0 && !wanted.has(ex.name)) continue;
    for (const path of await syncStages(ex, true)) console.log(`updated ${path}`);
  }
}
