// Proves the Dockerfile's build without an image builder (`npm run test:dockerfile`, run by
// .ci/run): replays its WORKDIR/COPY/RUN/ENV steps (read from the Dockerfile itself) in a clean
// copy of the repository, checks the runtime stage's filesystem and settings, starts the built
// Function from its ENTRYPOINT on a free port and calls it over gRPC as Crossplane does, then
// starts the second entrypoint (the fetch program). Exits non-zero on the first failure.
//
// Set KEEP_REPLAY=1 to keep the temporary folder for inspection.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { createInterface } from 'node:readline';
import { Severity } from '@crossplane-org/function-sdk-typescript';
import { DEFAULT_FETCH_COMMAND } from '../../function/api/input.js';
import { RUN_AS_ID } from '../../function/constants.js';
import * as f from '../support/fixtures.js';
import { callRunner, newRunnerClient } from '../support/grpc-client.js';
import { toRunFunctionRequest } from '../support/requests.js';
import { cleanCopy, envOf, last, replay } from './dockerfile.js';
import { ROOT } from './examples.js';

const started = Date.now();
const checks: string[] = [];
function check(ok: boolean, what: string): void {
  if (!ok) throw new Error(`dockerfile replay: ${what}`);
  checks.push(what);
  process.stdout.write(`  ok  ${what}\n`);
}
function elapsed(): string {
  return `${((Date.now() - started) / 1000).toFixed(1)} s`;
}

const tmp = mkdtempSync(join(tmpdir(), 'modelcache-dockerfile-'));
try {
  const context = join(tmp, 'context');
  cleanCopy(ROOT, context);
  process.stdout.write(`== clean copy of the repository in ${context} (${elapsed()})\n`);

  const { roots, stages } = replay(join(ROOT, 'Dockerfile'), context, join(tmp, 'fs'), (l) => {
    process.stdout.write(`== ${l}  [${elapsed()}]\n`);
  });
  const final = stages.at(-1);
  if (!final) throw new Error('dockerfile replay: no stages');
  const root = roots[final.name] as string;
  const inImage = (p: string): string => join(root, posix.normalize(p));

  process.stdout.write(`== checks on the runtime stage (${final.base})\n`);
  check(/distroless\/nodejs20-/.test(final.base), 'runs on a distroless Node.js 20 base');
  check(
    Number(process.versions.node.split('.')[0]) === 20,
    'replayed with Node.js 20, as in the image',
  );
  check(!final.steps.some((s) => s.op === 'RUN'), 'has no RUN step (the base has no shell)');
  const user = last(final, 'USER')?.user ?? '';
  check(user === `${RUN_AS_ID}:${RUN_AS_ID}`, `runs as ${RUN_AS_ID}:${RUN_AS_ID} (USER ${user})`);
  check(last(final, 'EXPOSE')?.ports.includes('9443') === true, 'exposes 9443');
  const entry = last(final, 'ENTRYPOINT')?.argv ?? [];
  check(
    entry.length === 2 && entry[0] === '/nodejs/bin/node' && existsSync(inImage(entry[1] ?? '/')),
    `ENTRYPOINT ${JSON.stringify(entry)} exists in the image`,
  );
  check(
    DEFAULT_FETCH_COMMAND[0] === entry[0] && existsSync(inImage(DEFAULT_FETCH_COMMAND[1] ?? '/')),
    `the fetch program ${JSON.stringify(DEFAULT_FETCH_COMMAND)} exists in the image`,
  );
  // Dev-only per the lockfile (a devDependency that a production package also needs, such as
  // @types/node for protobufjs, is not dev-only and ships).
  const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as {
    packages?: Record<string, { dev?: boolean }>;
  };
  const shipped = readdirSync(inImage('/app/node_modules')).flatMap((d) =>
    d.startsWith('@')
      ? readdirSync(inImage(`/app/node_modules/${d}`)).map((s) => `${d}/${s}`)
      : [d],
  );
  const dev = shipped.filter((d) => lock.packages?.[`node_modules/${d}`]?.dev === true);
  check(
    dev.length === 0 && !shipped.includes('typescript'),
    `ships production dependencies only${dev.length > 0 ? ` (found ${dev.join(', ')})` : ''}`,
  );
  const unreadable: string[] = [];
  const sources: string[] = [];
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      const st = statSync(p);
      const need = st.isDirectory() ? 0o005 : 0o004;
      if ((st.mode & need) !== need) unreadable.push(p.slice(root.length));
      if (st.isDirectory()) walk(p);
      else if (p.startsWith(inImage('/app/dist')) && /\.ts$|\.test\.js$/.test(name)) {
        sources.push(p.slice(root.length));
      }
    }
  };
  walk(root);
  check(
    unreadable.length === 0,
    `every file is readable by uid ${RUN_AS_ID} ${unreadable.slice(0, 3).join(' ')}`,
  );
  check(sources.length === 0, `dist holds compiled code only ${sources.slice(0, 3).join(' ')}`);

  // The ENTRYPOINT, as the Function's pod runs it (Crossplane adds TLS; render dials --insecure).
  process.stdout.write(`== start the built Function (${elapsed()})\n`);
  const workdir = inImage(last(final, 'WORKDIR')?.path ?? '/');
  const env = { ...envOf(final), PATH: process.env['PATH'] ?? '' };
  const child = spawn(
    process.execPath,
    [inImage(entry[1] ?? ''), '--insecure', '--address', '127.0.0.1:0'],
    { cwd: workdir, env, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error('dockerfile replay: the Function did not listen within 30 s'));
    }, 30_000);
    child.once('exit', (code) => {
      reject(
        new Error(`dockerfile replay: the Function exited (${String(code)}) before listening`),
      );
    });
    createInterface({ input: child.stdout }).on('line', (line) => {
      try {
        const rec = JSON.parse(line) as { msg?: string; port?: number };
        if (rec.msg === 'listening' && typeof rec.port === 'number') {
          clearTimeout(timer);
          resolve(rec.port);
        }
      } catch {
        // not a log line
      }
    });
  });
  check(port > 0, `the Function listens on 127.0.0.1:${port}`);

  const client = newRunnerClient(`127.0.0.1:${port}`);
  const cluster = f.inferenceClusterXR('us-east', {
    storageClassName: 'nfs-rwx',
    classExists: true,
  });
  const cache = f.modelCache(f.HF_WEIGHTS);
  const rsp = await callRunner(
    client,
    toRunFunctionRequest(f.request(cache, [cluster]), 'dockerfile-replay'),
  );
  check(rsp.meta?.tag === 'dockerfile-replay', 'RunFunction answers with the request tag');
  check(
    !rsp.results.some((r) => r.severity === Severity.SEVERITY_FATAL),
    'RunFunction composes a ModelCache without a FATAL result',
  );
  check(
    Object.keys(rsp.desired?.resources ?? {}).includes('us-east'),
    'the response asks for the ModelCacheReplica of us-east',
  );
  // The replica, once its namespace exists on the cluster, asks for the claim.
  const replica = f.replicaRequest(cache, cluster);
  const first = await callRunner(client, toRunFunctionRequest(replica, 'replica'));
  const namespace = first.desired?.resources['namespace']?.resource;
  const replicaRsp =
    namespace === undefined
      ? first
      : await callRunner(
          client,
          toRunFunctionRequest(
            { ...replica, observed: { namespace: f.synced(namespace) } },
            'replica',
          ),
        );
  client.close();
  check(
    Object.keys(replicaRsp.desired?.resources ?? {}).includes('pvc'),
    'the ModelCacheReplica of us-east asks for its claim',
  );
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  check((await exited) === 0, 'SIGTERM stops the Function with exit code 0');

  // The second entrypoint, as the prefetch Job runs it, here without a plan: it must load all
  // its modules from the shipped node_modules and refuse to run, naming what is missing.
  const fetch = spawnSync(process.execPath, [inImage(DEFAULT_FETCH_COMMAND[1] ?? '')], {
    cwd: workdir,
    env,
    encoding: 'utf8',
    timeout: 30_000,
  });
  const out = `${fetch.stdout}${fetch.stderr}`;
  check(
    fetch.status !== 0 && out.includes('MODELCACHE_PLAN') && !out.includes('ERR_MODULE_NOT_FOUND'),
    'the fetch program starts from the image and refuses to run without MODELCACHE_PLAN',
  );
  process.stdout.write(`== Dockerfile replayed and checked in ${elapsed()}\n`);
  process.stdout.write(`dockerfile: ${checks.length} passed, 0 failed\n`);
} finally {
  if (process.env['KEEP_REPLAY'] === '1') process.stdout.write(`kept ${tmp}\n`);
  else rmSync(tmp, { recursive: true, force: true });
}
