// `npm run render -- examples/<n>-<slug> [--stage <stage>] [--xr <file>] [-r]`
//
// Prints what `crossplane composition render` prints for an example (the XR with its status,
// then the composed resources; with -r the Results too), without Go, Docker or a running
// Function: the Function is called in process and the composition reconciler around it is
// emulated (test/render/engine.ts). The conformance suite checks both give the same documents on every
// golden. The upstream command for the same case is printed with --upstream.
//
// A ModelCache composes ModelCacheReplicas, which Crossplane reconciles as XRs of their own: the
// example's replica fixtures (replicas/<name>.yaml) are rendered too, each to its cluster's
// Objects; `--xr replicas/<name>.yaml` renders one.
import { parseArgs } from 'node:util';
import { resolve } from 'node:path';
import { stringify } from 'yaml';
import {
  CREATED_STAGE,
  casesOf,
  listExamples,
  normalizeDocuments,
  rel,
  type RenderCase,
} from '../test/conformance/examples.js';
import { pinnedVersions } from '../test/conformance/upstream.js';
import { renderCaseInProcess } from '../test/render/run.js';

const USAGE = `usage: npm run render -- examples/<n>-<slug> [options]

Renders an example's XR(s) the way \`crossplane composition render\` does, in process.

options:
  --stage <name>   lifecycle stage to render (a folder under stages/); default ${CREATED_STAGE}
  --xr <file>      only this XR file of the example, or one replica: replicas/<name>.yaml
                   (default: every XR file at the stage, then every replica)
  -r, --include-function-results
                   also print the Results (events), as render -r does
  --upstream       print the equivalent upstream command line instead of rendering
  -h, --help       this text
`;

function fail(message: string): never {
  process.stderr.write(`render: ${message}\n`);
  process.exit(2);
}

const { values, positionals } = (() => {
  try {
    return parseArgs({
      allowPositionals: true,
      options: {
        stage: { type: 'string' },
        xr: { type: 'string' },
        'include-function-results': { type: 'boolean', short: 'r' },
        upstream: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    return fail(`${err instanceof Error ? err.message : String(err)}\n\n${USAGE}`);
  }
})();
if (values.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}
if (positionals.length !== 1) fail(`want one example folder\n\n${USAGE}`);
const target = resolve(positionals[0] as string);
const example = listExamples().find((ex) => resolve(ex.dir) === target);
if (!example) {
  fail(
    `${positionals[0] as string} is not an example folder; one of:\n  ${listExamples()
      .map((ex) => rel(ex.dir))
      .join('\n  ')}`,
  );
}
if (example.notRenderable !== undefined) {
  fail(`${example.name} is not rendered in process: ${example.notRenderable}`);
}
const stage = values.stage ?? CREATED_STAGE;
const cases: RenderCase[] = casesOf(example).filter(
  (c) => c.stage === stage && (values.xr === undefined || c.xrFile === values.xr),
);
if (cases.length === 0) {
  const stages = [CREATED_STAGE, ...example.stages].join(', ');
  const atStage = casesOf(example)
    .filter((c) => c.stage === stage)
    .map((c) => c.xrFile);
  fail(
    `no XR of ${example.name} at stage ${stage}${values.xr ? ` named ${values.xr}` : ''} (stages: ${stages}${atStage.length > 0 ? `; XR files at ${stage}: ${atStage.join(', ')}` : ''})`,
  );
}

if (values.upstream) {
  for (const c of cases) {
    const args = [
      'crossplane composition render',
      rel(c.xrPath),
      rel(c.compositionPath),
      rel(c.functionsPath),
      `--xrd=${rel(c.xrdPath)}`,
      ...(c.observedPath ? [`--observed-resources=${rel(c.observedPath)}`] : []),
      ...c.requiredPaths.map((p) => `--required-resources=${rel(p)}`),
      ...(values['include-function-results'] ? ['--include-function-results'] : []),
      // Built by test/conformance/build-crossplane.sh; without the flag render uses Docker.
      `--crossplane-binary=.cache/bin/core-${pinnedVersions()['CROSSPLANE_CORE_VERSION'] ?? ''}/crossplane`,
    ];
    process.stdout.write(`${args.join(' \\\n    ')}\n`);
  }
  process.exit(0);
}

let failed = false;
for (const c of cases) {
  // Several renders in one stream: a comment says which file each comes from.
  if (cases.length > 1) process.stdout.write(`# ${rel(c.xrPath)}\n`);
  const out = await renderCaseInProcess(c);
  if ('fatal' in out) {
    // The same line the upstream CLI prints when a step returns a FATAL result.
    process.stderr.write(
      `crossplane: error: cannot render composite resource: cannot compose resources: pipeline step ${JSON.stringify(out.step)} returned a fatal result: ${out.fatal}\n`,
    );
    failed = true;
    continue;
  }
  const docs = values['include-function-results']
    ? normalizeDocuments([...out.documents, ...out.results])
    : out.documents;
  for (const d of docs) {
    process.stdout.write(`---\n${stringify(d, { sortMapEntries: true, lineWidth: 0 })}`);
  }
}
process.exit(failed ? 1 : 0);
