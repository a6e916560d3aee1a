// Writes the observed fixtures of the examples' lifecycle stages from their stage.yaml:
//
//   npx tsx test/conformance/make-stages.ts [examples/<n>-<slug> ...]   (default: every example)
//
// A stage folder's stage.yaml says which earlier stage it follows and what each workload cluster
// reports by then. This renders the earlier stage (in process, which the conformance suite
// proves equal to the upstream render), turns each composed Object into the Object
// provider-kubernetes would report for that remote state, and writes, beside stage.yaml, the XR
// with the status the earlier reconcile wrote and `<xr>.observed.yaml`. Review the result like
// any fixture, then regenerate the goldens (UPDATE_GOLDEN=1 npm test, which also runs this).
// `npm test` fails when a fixture is not what this writes for the current Function.
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
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { basename, join, resolve } from 'node:path';
import * as prettier from 'prettier';
import { parse, stringify } from 'yaml';
import type { Json } from '../../function/k8s/object.js';
import * as f from '../support/fixtures.js';
import { CONDITION_TIME } from '../render/engine.js';
import { outcomeOf, renderCaseInProcess } from '../render/run.js';
import {
  CREATED_STAGE,
  EXAMPLES_DIR,
  STAGES_DIR,
  casesOf,
  listExamples,
  readDocs,
  rel,
  stemOf,
  type Doc,
  type Example,
} from './examples.js';

const ANNOTATION_RESOURCE_NAME = 'crossplane.io/composition-resource-name';

type RoleState = string | { syncFailed: string } | f.JobObservation;

interface StageSpec {
  from: string;
  xrs: Record<string, Record<string, Record<string, RoleState> | null>>;
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function readSpec(path: string): StageSpec {
  const raw: unknown = parse(readFileSync(path, 'utf8'));
  if (!isObj(raw) || typeof raw['from'] !== 'string' || !isObj(raw['xrs'])) {
    throw new Error(`${rel(path)}: want "from: <stage>" and "xrs: {<file>: {<cluster>: ...}}"`);
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

/** The Object as provider-kubernetes reports it once the remote object is in `state`. */
function observe(desired: Json, role: string, state: RoleState | undefined): Json {
  const keep = (o: Json): Json => ordered(stamped({ ...o, metadata: metadataOf(desired) }));
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

function header(lines: string[]): string {
  return lines.map((l) => `# ${l}`.trimEnd()).join('\n') + '\n';
}

/** YAML 1.1 quoting (timestamps, yes/no stay strings for Go's parsers), then prettier's format. */
function toYaml(v: unknown): string {
  return stringify(v, { version: '1.1', lineWidth: 0, aliasDuplicateObjects: false });
}

async function formatted(path: string, text: string): Promise<{ path: string; text: string }> {
  const options = (await prettier.resolveConfig(path)) ?? {};
  return { path, text: await prettier.format(text, { ...options, filepath: path }) };
}

/** The fixture files of one stage (the XRs as observed and their observed resources). */
export async function stageFiles(
  ex: Example,
  stage: string,
): Promise<{ path: string; text: string }[]> {
  const files: { path: string; text: string }[] = [];
  const dir = join(ex.dir, STAGES_DIR, stage);
  const spec = readSpec(join(dir, 'stage.yaml'));
  for (const [xrFile, clusters] of Object.entries(spec.xrs)) {
    if (!ex.xrFiles.includes(xrFile)) throw new Error(`${rel(dir)}: no XR file ${xrFile}`);
    const from = casesOf(ex).find((c) => c.xrFile === xrFile && c.stage === spec.from);
    if (!from) throw new Error(`${rel(dir)}: no stage ${spec.from} for ${xrFile}`);
    const out = outcomeOf(await renderCaseInProcess(from));
    if (!('documents' in out)) throw new Error(`${rel(from.xrPath)} does not render: ${out.fatal}`);
    const [xrOut, ...rest] = out.documents;
    const composed = rest.filter((d) => d['kind'] !== 'Result') as Json[];

    const observed = composed.map((d) => {
      const key = String((metadataOf(d)['annotations'] as Json)[ANNOTATION_RESOURCE_NAME]);
      const [cluster = '', role = ''] = key.split('/');
      return observe(d, role, clusters[cluster]?.[role.startsWith('fetch-') ? 'job' : role]);
    });
    const xr = readDocs(join(ex.dir, xrFile))[0] as Doc;
    const staged = { ...xr, status: (xrOut as Doc)['status'] };
    files.push(
      await formatted(
        join(dir, xrFile),
        header([
          `${xrFile} as observed at stage ${stage}: the status is what the reconcile at stage`,
          `${spec.from} wrote. Written by test/conformance/make-stages.ts from stage.yaml.`,
        ]) + toYaml(staged),
      ),
    );
    files.push(
      await formatted(
        join(dir, `${stemOf(xrFile)}.observed.yaml`),
        header([
          `The composed resources of ${xrFile} as Crossplane observes them at stage ${stage}:`,
          `the Objects the reconcile at stage ${spec.from} applied, as provider-kubernetes`,
          `reports them for the remote state in stage.yaml. Written by make-stages.ts.`,
          // No "---" before the first document: Go's YAML reader would make the comment an empty
          // document, which render rejects as an observed resource without a name.
        ]) + observed.map(toYaml).join('---\n'),
      ),
    );
  }
  return files;
}

/**
 * Every stage of an example in order, each written before the next is computed (a stage follows
 * an earlier one). `write` false only compares: the result lists the files that differ.
 */
export async function syncStages(ex: Example, write: boolean): Promise<string[]> {
  const stale: string[] = [];
  for (const stage of ex.stages) {
    if (stage === CREATED_STAGE) continue;
    for (const f of await stageFiles(ex, stage)) {
      const current = existsSync(f.path) ? readFileSync(f.path, 'utf8') : undefined;
      if (current === f.text) continue;
      stale.push(rel(f.path));
      if (write) writeFileSync(f.path, f.text);
    }
  }
  return stale;
}

// Run as a program: write every example's stage fixtures (or the named examples').
if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const wanted = new Set(process.argv.slice(2).map((a) => basename(resolve(a))));
  for (const ex of listExamples(EXAMPLES_DIR)) {
    if (wanted.size > 0 && !wanted.has(ex.name)) continue;
    for (const path of await syncStages(ex, true)) console.log(`wrote ${path}`);
  }
}
