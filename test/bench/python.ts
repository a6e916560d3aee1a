// npm run bench:python — this Function and the Python function it is modelled on
// (modelplaneai/modelplane, functions/compose-model-cache, Apache-2.0), side by side over gRPC.
//
// The Python code is never committed here: at run time this extracts it from a local copy of the
// modelplane repository (MODELPLANE_REPO: a clone's work tree or its git directory; required, as
// the benchmark cannot guess where a reader keeps one) into .cache/modelplane (git-ignored), makes a venv with its dependencies from PyPI,
// and starts its server on loopback as its own main.py does, with mTLS as Crossplane dials
// Functions (both servers; BENCH_TLS=0 for plaintext).
//
// The same scenario in each API: one ModelCache pulling a gated Hugging Face repo (token Secret)
// onto N matched InferenceClusters, mid-hydration: every claim Bound, every prefetch/hydration Job
// running, every composed Object observed back with its remote object, as provider-kubernetes
// reports it. Each side's observed Objects are made from what that side itself composes on the
// call before (its first call with the clusters resolved), the way test/bench/compose-scenario.ts
// does for ours, and all of them as the API server returns them (stored.ts: owner, finalizer,
// managedFields). The shapes differ: the Python function composes 3 Objects per cluster (claim,
// Job, token Secret) in one call; this one composes one ModelCacheReplica per cluster in the
// ModelCache call, and each replica its cluster's 7 Objects (namespace, claim, Secret copy, Job,
// and the Job's ServiceAccount, Role and RoleBinding for progress reports) in a call of its own.
// So a whole cache reconciled is one call there and 1 + N calls here: both are printed, and
// their sum. Request sizes are printed beside the times. Both servers are called by the same client, a Go
// program configured as Crossplane v2.3.4's (test/bench/go-client.ts: grpc-go, 4 MiB receive
// limit, each request marshalled afresh on every call), in alternating turns, so both see the
// same client and the same machine load, and pay Crossplane's own codec as they would under it.
// This repeats one request (a poll where nothing changed); BENCH_COLD=1 makes every call differ
// in every cluster's Job progress instead.
//
// Env: BENCH_SIZES=100,1000   BENCH_ITERATIONS=300   BENCH_TLS=0   MODELPLANE_REPO=/path/to/modelplane
import {
  RunFunctionRequest,
  RunFunctionResponse,
  Severity,
} from '@crossplane-org/function-sdk-typescript';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { scenarioAt } from './bench-cases.js';
import { cacheRequests, replicaRequests } from './compose-scenario.js';
import { goCall, type CallError } from './go-client.js';
import { newRawClient, type RawClient } from './raw-client.js';
import { benchTransport, type Transport } from './mtls.js';
import { forkServer } from './server-launch.js';
import { crossplaneSpec, stored } from './stored.js';
import { percentile } from './stats.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CACHE = join(ROOT, '.cache', 'modelplane');
const SRC = join(CACHE, 'src');
const VENV = join(CACHE, 'venv');
const MODELPLANE_URL = 'https://github.com/modelplaneai/modelplane';
const FUNCTION_DIR = 'functions/compose-model-cache';
const SIZES = (process.env['BENCH_SIZES'] ?? '100,1000').split(',').map(Number);
/** Calls per server and size (default 300, 50 from 1,000 clusters). */
const ITERATIONS =
  process.env['BENCH_ITERATIONS'] === undefined
    ? undefined
    : Number(process.env['BENCH_ITERATIONS']);
type Who = 'py' | 'cache' | 'replica';
const WHO: readonly Who[] = ['py', 'cache', 'replica'];
const LABEL: Record<Who, string> = {
  py: 'Python',
  cache: 'ModelCache call',
  replica: 'replica call',
};
/** Each server is measured in this many turns, alternating, so both see the same load. */
const TURNS = 5;
/** Calls not counted at the start of each turn (a fresh client connects). */
const WARMUP_PER_TURN = 10;
/** BENCH_COLD=1: every call to this Function differs from the one before in every cluster. */
const COLD = process.env['BENCH_COLD'] === '1';
/** mTLS for both servers, as Crossplane dials Functions; BENCH_TLS=0 for plaintext. */
const TLS = process.env['BENCH_TLS'] !== '0';

const run = promisify(execFile);

type Json = Record<string, unknown>;

function step(message: string): void {
  console.log(`- ${message}`);
}

/** The git directory of the modelplane copy MODELPLANE_REPO names, or an error saying how to get one. */
function modelplaneGitDir(setting: string | undefined): string {
  const howTo = `git clone ${MODELPLANE_URL} <dir>, then run MODELPLANE_REPO=<dir> npm run bench:python`;
  if (setting === undefined || setting === '') {
    throw new Error(
      `MODELPLANE_REPO is not set: it names a copy of modelplaneai/modelplane (${howTo})`,
    );
  }
  const dotGit = join(setting, '.git');
  const gitDir = existsSync(dotGit) ? dotGit : setting;
  if (!existsSync(join(gitDir, 'HEAD'))) {
    throw new Error(
      `MODELPLANE_REPO=${setting} is not a git checkout of modelplaneai/modelplane (${howTo})`,
    );
  }
  return gitDir;
}

/** Extract the Python function and the models it imports from the local git copy. */
async function extract(): Promise<void> {
  const repo = modelplaneGitDir(process.env['MODELPLANE_REPO']);
  rmSync(SRC, { recursive: true, force: true });
  mkdirSync(SRC, { recursive: true });
  const { stdout: commit } = await run('git', ['--git-dir', repo, 'rev-parse', 'HEAD']);
  await run('bash', [
    '-c',
    `git --git-dir "$0" archive HEAD ${FUNCTION_DIR} schemas/python | tar -x -C "$1"`,
    repo,
    SRC,
  ]);
  step(`extracted ${FUNCTION_DIR} and schemas/python at ${commit.trim().slice(0, 12)}`);
}

/** A venv with the function's PyPI dependencies (its pyproject, minus the in-repo models). */
async function venv(): Promise<string> {
  const python = join(VENV, 'bin', 'python');
  const pyproject = readFileSync(join(SRC, FUNCTION_DIR, 'pyproject.toml'), 'utf8');
  const block = /dependencies\s*=\s*\[([^\]]*)\]/.exec(pyproject)?.[1] ?? '';
  const deps = [...block.matchAll(/"([^"]+)"/g)]
    .map((m) => m[1] ?? '')
    .filter((d) => d !== '' && !d.startsWith('crossplane-models'));
  // The models package (schemas/python) is imported from source; it needs pydantic.
  deps.push('pydantic>=2');
  if (!existsSync(python)) {
    step('creating a venv in .cache/modelplane/venv');
    await run('python3', ['-m', 'venv', VENV]);
  }
  step(`installing from PyPI: ${deps.join(' ')}`);
  await run(python, ['-m', 'pip', 'install', '--quiet', ...deps], { maxBuffer: 16 * 2 ** 20 });
  const { stdout } = await run(python, [
    '-c',
    'import importlib.metadata as m; print(m.version("crossplane-function-sdk-python"), m.version("grpcio"))',
  ]);
  const [sdk, grpcio] = stdout.trim().split(' ');
  step(`crossplane-function-sdk-python ${sdk ?? '?'}, grpcio ${grpcio ?? '?'}`);
  return python;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => {
        resolve(port);
      });
    });
  });
}

/** Start the Python function's server as its main.py does, on loopback (mTLS unless BENCH_TLS=0). */
async function startPython(
  python: string,
  tls: Transport,
): Promise<{ port: number; child: ChildProcess }> {
  const port = await freePort();
  const security =
    tls.serve.tlsCertsDir !== undefined
      ? ['--tls-certs-dir', tls.serve.tlsCertsDir]
      : ['--insecure'];
  const child = spawn(
    python,
    ['-m', 'function.main', ...security, '--address', `127.0.0.1:${String(port)}`],
    {
      cwd: join(SRC, FUNCTION_DIR),
      env: {
        ...process.env,
        PYTHONPATH: [join(SRC, FUNCTION_DIR), join(SRC, 'schemas', 'python')].join(':'),
      },
      // It logs a line per call at info, as it ships; the lines are discarded, not shown.
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
  const client = newRawClient(`127.0.0.1:${String(port)}`, tls.rawOptions, tls.raw);
  const probe = Buffer.from(RunFunctionRequest.encode(pythonRequest(0, {}, 'probe')).finish());
  for (let i = 0; ; i++) {
    try {
      await client.call(probe, 2000);
      break;
    } catch (err) {
      if (child.exitCode !== null || i > 60) {
        client.close();
        child.kill('SIGKILL');
        throw new Error(`the Python function did not start: ${stderr.slice(-2000) || String(err)}`);
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  client.close();
  return { port, child };
}

// --- the scenario in the Python function's API --------------------------------------------------

const NS = 'team-a';
const PY_UID = '7f8e6c1a-0000-4000-8000-000000000001';
const COMPOSITE = { manager: 'apiextensions.crossplane.io/composite', operation: 'Apply' } as const;

function clusterName(i: number): string {
  return `cluster-${String(i).padStart(4, '0')}`;
}

/** An InferenceCluster as its XRD has it: provisioned, with an RWX class reported. */
function pythonCluster(i: number): Json {
  const name = clusterName(i);
  return {
    apiVersion: 'modelplane.ai/v1alpha1',
    kind: 'InferenceCluster',
    metadata: { name },
    spec: { cluster: { source: 'GKE', gke: { project: 'bench', region: 'us-central1' } } },
    status: { providerConfigRef: { name }, cache: { storageClassName: 'nfs-rwx' } },
  };
}

function pythonRequest(
  n: number,
  observed: Record<string, Json>,
  tag = 'bench',
): RunFunctionRequest {
  const clusters = Array.from({ length: n }, (_, i) => clusterName(i));
  const xr: Json = {
    apiVersion: 'modelplane.ai/v1alpha1',
    kind: 'ModelCache',
    metadata: { name: 'llama', namespace: NS, uid: PY_UID },
    spec: {
      source: 'HuggingFace',
      huggingFace: {
        repo: 'meta-llama/Llama-3.1-8B-Instruct',
        revision: 'main',
        sizeGiB: 40,
        authSecret: { name: 'hf-token', key: 'HF_TOKEN' },
      },
    },
    status: {
      summary: { ready: `0/${String(n)}` },
      clusters: clusters.map((name) => ({ name, phase: 'Hydrating' })),
      conditions: [
        {
          type: 'ArtifactReady',
          status: 'False',
          reason: 'Hydrating',
          lastTransitionTime: '2026-06-08T00:00:00Z',
        },
      ],
    },
  };
  const composite = stored(xr, {
    namespace: NS,
    crossplane: crossplaneSpec('model-cache', Object.values(observed)),
    statusManager: COMPOSITE,
  });
  return RunFunctionRequest.fromPartial({
    meta: { tag },
    observed: {
      composite: { resource: composite },
      resources: Object.fromEntries(Object.entries(observed).map(([k, v]) => [k, { resource: v }])),
    },
    requiredResources: {
      clusters: {
        items: Array.from({ length: n }, (_, i) => ({
          resource: stored(pythonCluster(i), { statusManager: COMPOSITE }),
        })),
      },
      'auth-secret': {
        items: [
          {
            resource: {
              apiVersion: 'v1',
              kind: 'Secret',
              metadata: { name: 'hf-token', namespace: NS },
              type: 'Opaque',
              data: { HF_TOKEN: Buffer.from('hf_benchmark_token').toString('base64') },
            },
          },
        ],
      },
    },
  });
}

/** What provider-kubernetes reports for a desired Object: remote object and status echoed. */
function observedObject(desired: Json, remoteStatus: Json | undefined, ready: boolean): Json {
  const spec = desired['spec'] as Json;
  const manifest = (spec['forProvider'] as Json)['manifest'] as Json;
  return {
    ...desired,
    metadata: {
      name: 'llama-x1y2z',
      namespace: NS,
      annotations: { 'crossplane.io/composition-resource-name': 'x' },
    },
    spec: { ...spec, managementPolicies: spec['managementPolicies'] ?? ['*'] },
    status: {
      atProvider: { manifest: remoteStatus ? { ...manifest, status: remoteStatus } : manifest },
      conditions: [
        {
          type: 'Ready',
          status: ready ? 'True' : 'False',
          reason: ready ? 'Available' : 'Unavailable',
          lastTransitionTime: '2026-06-08T00:00:00Z',
        },
        {
          type: 'Synced',
          status: 'True',
          reason: 'ReconcileSuccess',
          lastTransitionTime: '2026-06-08T00:00:00Z',
        },
      ],
    },
  };
}

/** Mid-hydration in the Python API, from the Objects it composes once the clusters resolve. */
async function pythonMidHydration(client: RawClient, n: number): Promise<Buffer> {
  const first = RunFunctionResponse.decode(
    await client.call(Buffer.from(RunFunctionRequest.encode(pythonRequest(n, {})).finish())),
  );
  const observed: Record<string, Json> = {};
  for (const [key, res] of Object.entries(first.desired?.resources ?? {})) {
    const body = res.resource;
    if (!body) continue;
    if (key.startsWith('pvc-')) observed[key] = observedObject(body, { phase: 'Bound' }, true);
    else if (key.startsWith('hydrate-')) observed[key] = observedObject(body, { active: 1 }, false);
    else observed[key] = observedObject(body, undefined, true);
  }
  if (Object.keys(observed).length < n) {
    throw new Error(
      `the Python function composed ${String(Object.keys(observed).length)} Objects for ${String(n)} clusters`,
    );
  }
  // As the API server returns them, as ours are (stored.ts): owner, finalizer, managedFields.
  const owner = {
    apiVersion: 'modelplane.ai/v1alpha1',
    kind: 'ModelCache',
    name: 'llama',
    uid: PY_UID,
  };
  for (const [key, obj] of Object.entries(observed)) {
    observed[key] = stored(obj, {
      namespace: NS,
      owner,
      resourceName: key,
      statusManager: { manager: 'provider-kubernetes', operation: 'Update' },
    });
  }
  return Buffer.from(RunFunctionRequest.encode(pythonRequest(n, observed)).finish());
}

function checkResponse(who: string, bytes: Buffer, n: number): number {
  const rsp = RunFunctionResponse.decode(bytes);
  const fatal = rsp.results.find((r) => r.severity === Severity.SEVERITY_FATAL);
  const resources = Object.keys(rsp.desired?.resources ?? {}).length;
  if (fatal !== undefined || resources < n) {
    throw new Error(
      `${who} at ${String(n)} clusters: ${fatal?.message ?? `${String(resources)} resources`}`,
    );
  }
  return resources;
}

async function main(): Promise<void> {
  console.log(
    `bench:python  ${TLS ? 'mTLS' : 'plaintext'}  sizes ${SIZES.join(',')}  ${COLD ? 'cold (every cluster changed every call)' : 'repeat (the same request every call)'}  load average at start: ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
  await extract();
  const python = await venv();
  const tls = await benchTransport(TLS);
  const py = await startPython(python, tls);
  const ours = await forkServer(tls.serve);
  const pyClient = newRawClient(`127.0.0.1:${String(py.port)}`, tls.rawOptions, tls.raw);
  const ourClient = newRawClient(
    `127.0.0.1:${String(ours.port)}`,
    { 'grpc-node.flow_control_window': 8 * 2 ** 20, ...tls.rawOptions },
    tls.raw,
  );
  const rows: string[] = [];
  const totals: string[] = [];
  try {
    for (const n of SIZES) {
      // The Python server keeps grpcio's 4 MiB receive limit as it ships: past it, it refuses the
      // request (as it would Crossplane's), and only this Function is measured at that size.
      let pyBytes: Buffer = Buffer.alloc(0);
      let pyObjects = 0;
      let pyRefused: string | undefined;
      try {
        pyBytes = await pythonMidHydration(pyClient, n);
        pyObjects = checkResponse('Python', await pyClient.call(pyBytes), n);
      } catch (err) {
        pyRefused = err instanceof Error ? err.message : String(err);
      }
      const who = pyRefused === undefined ? WHO : WHO.filter((w) => w !== 'py');
      const scenario = scenarioAt(n);
      const cacheReqs = cacheRequests(scenario, COLD ? 'cold' : 'repeat');
      // Different replicas in turn, as Crossplane reconciles a cache's N replicas.
      const replicaReqs = replicaRequests(scenario, 'cold');
      const cacheObjects = checkResponse(
        'ModelCache',
        await ourClient.call(cacheReqs[0] ?? Buffer.alloc(0)),
        n,
      );
      const replicaObjects = checkResponse(
        'replica',
        await ourClient.call(replicaReqs[0] ?? Buffer.alloc(0)),
        1,
      );
      // One client process per server and turn, each with its own connection; turns alternate
      // so all see the same load.
      const ourAddress = `127.0.0.1:${String(ours.port)}`;
      const targets: Record<Who, { address: string; requests: Buffer[] }> = {
        py: { address: `127.0.0.1:${String(py.port)}`, requests: [pyBytes] },
        cache: { address: ourAddress, requests: cacheReqs },
        replica: { address: ourAddress, requests: replicaReqs },
      };
      const times: Record<Who, number[]> = { py: [], cache: [], replica: [] };
      const errors: Record<Who, CallError[]> = { py: [], cache: [], replica: [] };
      const iterations = ITERATIONS ?? (n >= 1000 ? 50 : 300);
      const perTurn = Math.ceil(iterations / TURNS);
      for (let turn = 0; turn < TURNS; turn++) {
        for (const w of who) {
          const { address, requests } = targets[w];
          const r = await goCall(address, requests, {
            ...tls.call,
            warmup: WARMUP_PER_TURN,
            iterations: perTurn,
            samples: true,
          });
          times[w].push(...(r.samples ?? []));
          errors[w].push(...r.errors);
        }
      }
      for (const who of WHO) {
        for (const e of errors[who]) {
          rows.push(
            `${' '.repeat(8)}  ${LABEL[who]} at ${String(n)} clusters: ${e.code}: ${e.message} (${String(e.count)} calls)`,
          );
        }
      }
      const p = (who: Who, q: number): number => percentile(times[who], q);
      const line = (who: Who, bytes: number, objects: number, extra = ''): string =>
        [
          (who === 'py' ? String(n) : '').padStart(8),
          `${LABEL[who]} ${(bytes / 1024).toFixed(0)} KiB → ${String(objects)} resources`.padEnd(
            44,
          ),
          `p50 ${p(who, 50).toFixed(2)} / p99 ${p(who, 99).toFixed(2)} ms (${String(times[who].length)} calls)`.padEnd(
            40,
          ),
          extra,
        ].join('  ');
      const callRatio = p('py', 50) / p('cache', 50);
      rows.push(
        pyRefused === undefined
          ? line('py', pyBytes.length, pyObjects)
          : `${String(n).padStart(8)}  Python: ${pyRefused}`,
        line(
          'cache',
          cacheReqs[0]?.length ?? 0,
          cacheObjects,
          pyRefused === undefined ? `Python / ModelCache call p50 ${callRatio.toFixed(2)}x` : '',
        ),
        line('replica', replicaReqs[0]?.length ?? 0, replicaObjects),
      );
      // A whole cache reconciled: the Python function's one call; ours, the ModelCache call and
      // one call per replica (p50 each; the replicas measured are 8 of the N in turn).
      const ourTotal = p('cache', 50) + n * p('replica', 50);
      const pyTotal =
        pyRefused === undefined ? `${p('py', 50).toFixed(1)} ms` : 'refused the request';
      totals.push(
        `  ${String(n).padStart(6)} clusters: Python ${pyTotal}; this Function ${ourTotal.toFixed(1)} ms (ModelCache ${p('cache', 50).toFixed(1)} + ${String(n)} × replica ${p('replica', 50).toFixed(2)}); ${pyRefused === undefined ? `this Function / Python ${(ourTotal / p('py', 50)).toFixed(2)}x` : 'no ratio'}`,
      );
    }
  } finally {
    pyClient.close();
    ourClient.close();
    py.child.kill('SIGTERM');
    await ours.stop();
    tls.close();
  }
  console.log(
    `\nclusters  request → response                              latency through the Go client (in ${String(TURNS)} alternating turns)`,
  );
  for (const r of rows) console.log(r);
  console.log('\nFunction time to reconcile a whole cache once (p50s summed):');
  for (const t of totals) console.log(t);
  console.log(
    `load average at end: ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
}

try {
  await main();
} catch (err) {
  console.error(`bench:python: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
}
