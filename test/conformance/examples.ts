// The examples/ folders as render cases. One convention, so adding an example is adding a folder:
//
//   examples/<n>-<slug>/
//     README.md
//     <xr>.yaml           one XR per file (what users kubectl apply)
//     functions.yaml      the Functions for render (function-modelcache: Development runtime)
//     prerequisites/      what the example assumes exists: InferenceClusters, provider configs,
//                         Secrets, ConfigMaps, other XRs. Render gets them as required resources.
//     replicas/           the ModelCacheReplicas the example's ModelCaches compose when first
//                         reconciled (stage 0-created), one per file; written by make-stages.ts
//     stages/<k>-<name>/  one lifecycle stage after creation, for each XR file F it covers:
//       stage.yaml        what the workload clusters report (test/conformance/make-stages.ts)
//       F                 the XR as observed then (status written by the previous reconcile)
//       <F stem>.observed.yaml   its observed composed resources (render -o); for a ModelCache,
//                         its replicas with the status their own reconcile at this stage wrote
//       replicas/<replica>.yaml  each replica as observed then, and beside it
//       replicas/<replica>.observed.yaml  its cluster's Objects as provider-kubernetes reports them
//
// A replica is an XR of its own (Crossplane reconciles it with compositions/modelcachereplica.yaml),
// so it is rendered like the example's XR files, at every stage that holds it, with the example's
// XRs as of that stage (its parent ModelCache among them) as required resources.
//
// Other top-level YAML files are classified by what they hold: Compositions and XRDs of the
// example's own (third-party) kinds are used for those kinds, anything else is passed as
// required resources. Every XR file is also rendered as just created (stage "0-created": no
// status, nothing observed). Examples named <n>-preview-<slug> show v0.2 shapes that the v0.1 API
// must reject. When rendering one XR, the example's other XRs (as of the same stage) are required
// resources too, so a consumer can read the caches it uses.
//
// Only examples whose Functions are all function-modelcache are rendered here: another Function
// would run from its image, which needs Docker (`renderable` says why not).
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { basename, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const EXAMPLES_DIR = join(ROOT, 'examples');
export const CREATED_STAGE = '0-created';
export const FUNCTIONS_FILE = 'functions.yaml';
export const PREREQUISITES_DIR = 'prerequisites';
export const STAGES_DIR = 'stages';
/** Replica fixtures, under the example folder (stage 0-created) and under each stage folder. */
export const REPLICAS_DIR = 'replicas';
export const OBSERVED_SUFFIX = '.observed.yaml';

export type Doc = Record<string, unknown>;

export interface RenderCase {
  /** Example folder name, e.g. 1-single-cluster-basic. */
  example: string;
  /**
   * XR file, relative to the example folder or a stage folder: xr.yaml, or for a replica
   * replicas/<name>.yaml.
   */
  xrFile: string;
  /** True for a ModelCacheReplica (a file under replicas/), composed by one of the XR files. */
  replica: boolean;
  /** Stage name: 0-created or a folder under stages/. */
  stage: string;
  /** Absolute paths of what render reads. */
  xrPath: string;
  compositionPath: string;
  xrdPath: string;
  functionsPath: string;
  observedPath: string | undefined;
  /** Files and folders passed as required resources. */
  requiredPaths: string[];
  /** The XR as parsed from xrPath. */
  xr: Doc;
  /** True for <n>-preview-<slug> examples: the v0.1 API must reject the XR. */
  expectRejected: boolean;
  /** Golden name (test/golden/<name>.json). */
  golden: string;
}

export interface Example {
  name: string;
  dir: string;
  xrFiles: string[];
  stages: string[];
  expectRejected: boolean;
  /** The example's own Compositions and XRDs (files), for kinds the repository does not define. */
  localCompositions: string[];
  localXrds: string[];
  /** Other top-level files, passed as required resources. */
  extraRequired: string[];
  /** Function names in functions.yaml. */
  functions: string[];
  /** Why the example is not rendered here, or undefined when it is. */
  notRenderable: string | undefined;
}

/** The Function this repository builds; the only one render and the harness run locally. */
export const OUR_FUNCTION = 'function-modelcache';

/** All YAML documents of a file, as plain objects; empty documents are dropped. */
export function readDocs(path: string): Doc[] {
  const docs = parseAllDocuments(readFileSync(path, 'utf8'));
  return docs.flatMap((d) => {
    if (d.errors.length > 0) throw new Error(`${path}: ${d.errors.map(String).join('; ')}`);
    const v: unknown = d.toJS();
    if (v === null || v === undefined) return [];
    if (!isDoc(v)) throw new Error(`${path}: not an object`);
    return [v];
  });
}

export function isDoc(v: unknown): v is Doc {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function readOne(path: string): Doc {
  const docs = readDocs(path);
  if (docs.length !== 1)
    throw new Error(`${path}: want exactly one document, found ${docs.length}`);
  return docs[0] as Doc;
}

export function yamlFiles(dir: string): string[] {
  return existsSync(dir)
    ? readdirSync(dir)
        .filter((f) => /\.ya?ml$/.test(f) && statSync(join(dir, f)).isFile())
        .sort()
    : [];
}

function isDir(path: string): boolean {
  return existsSync(path) && statSync(path).isDirectory();
}

function byNumber(a: string, b: string): number {
  return Number.parseInt(a, 10) - Number.parseInt(b, 10) || a.localeCompare(b);
}

function kindOf(d: Doc): string {
  return typeof d['kind'] === 'string' ? d['kind'] : '';
}

/** The composite kind a Composition composes or an XRD defines. */
function compositeKind(d: Doc): string | undefined {
  const spec = d['spec'] as Record<string, unknown> | undefined;
  if (kindOf(d) === 'Composition') {
    return (spec?.['compositeTypeRef'] as Record<string, unknown> | undefined)?.['kind'] as string;
  }
  if (kindOf(d) === 'CompositeResourceDefinition') {
    return (spec?.['names'] as Record<string, unknown> | undefined)?.['kind'] as string;
  }
  return undefined;
}

/** The repository's own XRD and Composition files. */
export function repoXrds(): string[] {
  return readdirSync(join(ROOT, 'apis'))
    .map((d) => join(ROOT, 'apis', d, 'definition.yaml'))
    .filter((p) => existsSync(p))
    .sort();
}

export function repoCompositions(): string[] {
  return yamlFiles(join(ROOT, 'compositions')).map((f) => join(ROOT, 'compositions', f));
}

/** Example folders, in numeric order. */
export function listExamples(dir = EXAMPLES_DIR): Example[] {
  const composedKinds = new Set(repoCompositions().flatMap((p) => readDocs(p).map(compositeKind)));
  return readdirSync(dir)
    .filter((n) => /^\d+-[a-z0-9-]+$/.test(n) && isDir(join(dir, n)))
    .sort(byNumber)
    .map((name) => {
      const exDir = join(dir, name);
      const stagesDir = join(exDir, STAGES_DIR);
      const localCompositions: string[] = [];
      const localXrds: string[] = [];
      const extraRequired: string[] = [];
      const candidates: { file: string; docs: Doc[] }[] = [];
      for (const f of yamlFiles(exDir).filter((x) => x !== FUNCTIONS_FILE)) {
        const docs = readDocs(join(exDir, f));
        if (docs.length > 0 && docs.every((d) => kindOf(d) === 'Composition')) {
          localCompositions.push(join(exDir, f));
          for (const d of docs) composedKinds.add(compositeKind(d));
        } else if (
          docs.length > 0 &&
          docs.every((d) => kindOf(d) === 'CompositeResourceDefinition')
        ) {
          localXrds.push(join(exDir, f));
        } else {
          candidates.push({ file: f, docs });
        }
      }
      const xrFiles: string[] = [];
      for (const c of candidates) {
        if (c.docs.length === 1 && composedKinds.has(kindOf(c.docs[0] as Doc)))
          xrFiles.push(c.file);
        else extraRequired.push(join(exDir, c.file));
      }
      const fnPath = join(exDir, FUNCTIONS_FILE);
      const functions = existsSync(fnPath) ? readDocs(fnPath).map((d) => metaOf(d).name) : [];
      const foreign = functions.filter((f) => f !== OUR_FUNCTION);
      return {
        name,
        dir: exDir,
        xrFiles,
        stages: isDir(stagesDir)
          ? readdirSync(stagesDir)
              .filter((s) => isDir(join(stagesDir, s)))
              .sort(byNumber)
          : [],
        expectRejected: /^\d+-preview-/.test(name),
        localCompositions,
        localXrds,
        extraRequired,
        functions,
        notRenderable:
          foreign.length > 0
            ? `its pipeline also runs ${foreign.join(', ')}, which render runs from its image (Docker)`
            : undefined,
      };
    });
}

export function metaOf(doc: Doc): { name: string; namespace: string | undefined } {
  const meta = doc['metadata'] as Record<string, unknown> | undefined;
  const name = meta?.['name'];
  if (typeof name !== 'string') throw new Error('document without metadata.name');
  const ns = meta?.['namespace'];
  return { name, namespace: typeof ns === 'string' ? ns : undefined };
}

type KindFinder = (what: 'xrd' | 'composition', kind: string) => string;

/**
 * Finds the file defining (XRD) or composing (Composition) a kind, the example's own first.
 * Each file is parsed once per finder: the XRDs are large, and every case needs two lookups.
 */
function kindFinder(ex: Example): KindFinder {
  const kinds = new Map<string, (string | undefined)[]>();
  const kindsIn = (p: string): (string | undefined)[] => {
    let k = kinds.get(p);
    if (k === undefined) {
      k = readDocs(p).map(compositeKind);
      kinds.set(p, k);
    }
    return k;
  };
  return (what, kind) => {
    const paths =
      what === 'xrd'
        ? [...ex.localXrds, ...repoXrds()]
        : [...ex.localCompositions, ...repoCompositions()];
    const found = paths.find((p) => kindsIn(p).includes(kind));
    if (found === undefined) throw new Error(`${ex.name}: no ${what} for kind ${kind}`);
    return found;
  };
}

export function stemOf(xrFile: string): string {
  return basename(xrFile).replace(/\.ya?ml$/, '');
}

/** The folder holding a stage's fixtures: the example folder itself for 0-created. */
export function stageDirOf(ex: Example, stage: string): string {
  return stage === CREATED_STAGE ? ex.dir : join(ex.dir, STAGES_DIR, stage);
}

/** The replica files of a stage folder, as replicas/<name>.yaml. */
export function replicaFiles(stageDir: string): string[] {
  return yamlFiles(join(stageDir, REPLICAS_DIR))
    .filter((f) => !f.endsWith(OBSERVED_SUFFIX))
    .map((f) => `${REPLICAS_DIR}/${f}`);
}

/** What render -o reads for an XR file of a stage folder: <stem>.observed.yaml beside it. */
export function observedFileOf(xrFile: string): string {
  return xrFile.replace(/\.ya?ml$/, OBSERVED_SUFFIX);
}

/** Every (XR file, stage) of an example, then every (replica, stage). */
export function casesOf(ex: Example): RenderCase[] {
  const out: RenderCase[] = [];
  const prerequisites = join(ex.dir, PREREQUISITES_DIR);
  const findByKind = kindFinder(ex);
  for (const stage of [CREATED_STAGE, ...ex.stages]) {
    const stageDir = stageDirOf(ex, stage);
    const xrPathOf = (f: string): string =>
      existsSync(join(stageDir, f)) ? join(stageDir, f) : join(ex.dir, f);
    const toCase = (xrFile: string, replica: boolean): RenderCase => {
      const xrPath = replica ? join(stageDir, xrFile) : xrPathOf(xrFile);
      const xr = readOne(xrPath);
      const kind = String(xr['kind']);
      const observed = join(stageDir, observedFileOf(xrFile));
      return {
        example: ex.name,
        xrFile,
        replica,
        stage,
        xrPath,
        compositionPath: findByKind('composition', kind),
        xrdPath: findByKind('xrd', kind),
        functionsPath: join(ex.dir, FUNCTIONS_FILE),
        observedPath: stage !== CREATED_STAGE && existsSync(observed) ? observed : undefined,
        // A replica reads its parent ModelCache (and nothing else of the example's XRs) by name;
        // the others are there as they would be on the control plane.
        requiredPaths: [
          ...(isDir(prerequisites) ? [prerequisites] : []),
          ...ex.extraRequired,
          ...ex.xrFiles.filter((f) => f !== xrFile).map(xrPathOf),
        ],
        xr,
        expectRejected: ex.expectRejected,
        golden: `conformance/${ex.name}/${xrFile.replace(/\.ya?ml$/, '')}/${stage}`,
      };
    };
    // A stage folder may cover only some XRs; the others are rendered only where covered.
    const xrFiles = ex.xrFiles.filter(
      (f) => stage === CREATED_STAGE || existsSync(join(stageDir, f)),
    );
    out.push(...xrFiles.map((f) => toCase(f, false)));
    out.push(...replicaFiles(stageDir).map((f) => toCase(f, true)));
  }
  return out;
}

/** The cases of every example rendered here (see Example.notRenderable for the others). */
export function allCases(dir = EXAMPLES_DIR): RenderCase[] {
  return listExamples(dir)
    .filter((ex) => ex.notRenderable === undefined)
    .flatMap(casesOf);
}

/** A path relative to the repository root, for messages and command lines users can copy. */
export function rel(path: string): string {
  return relative(ROOT, path) || '.';
}

// ---------------------------------------------------------------------------------------------
// What a render produced, in the form the goldens store.

export type RenderOutcome = { documents: Doc[] } | { fatal: string };

function sortKey(d: Doc): string {
  return [d['severity'], d['reason'], d['message']].map((v) => String(v)).join('\u0000');
}

/**
 * Render output put in a stable form: the XR first, composed resources sorted by composition
 * resource name (render already does), then Results sorted by severity, reason and message.
 * Crossplane emits its "Composed resource ... is not yet ready" events in Go map order, so their
 * order is not part of the contract.
 */
export function normalizeDocuments(docs: Doc[]): Doc[] {
  const results = docs.filter((d) => d['kind'] === 'Result');
  const others = docs.filter((d) => d['kind'] !== 'Result');
  return [...others, ...results.sort((a, b) => (sortKey(a) < sortKey(b) ? -1 : 1))];
}

/** The message of a FATAL result, from render's error line. */
export function fatalMessage(stderr: string): string | undefined {
  const marker = 'returned a fatal result: ';
  const at = stderr.lastIndexOf(marker);
  return at < 0 ? undefined : stderr.slice(at + marker.length).trim();
}
