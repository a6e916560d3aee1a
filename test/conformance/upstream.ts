// Driving the upstream Crossplane CLI (built by build-crossplane.sh) against our Function.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseAllDocuments } from 'yaml';
import {
  ROOT,
  fatalMessage,
  isDoc,
  normalizeDocuments,
  rel,
  type Doc,
  type RenderCase,
  type RenderOutcome,
} from './examples.js';

/** The pinned versions, from versions.env (the one place they are set). */
export function pinnedVersions(): Record<string, string> {
  const text = readFileSync(join(ROOT, 'test/conformance/versions.env'), 'utf8');
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (m) out[m[1] as string] = m[2] as string;
  }
  return out;
}

export interface Toolchain {
  cli: string;
  core: string;
  /** Crossplane's own CRDs (from the core module), for validating Compositions and XRDs. */
  coreCrds: string;
  cliVersion: string;
  coreVersion: string;
}

const BUILD_HINT =
  'build it with test/conformance/build-crossplane.sh (about 6 minutes the first time; cached ' +
  'under .cache/bin afterwards). .ci/run builds it before these tests.';

/** The built CLI and core binary; throws (never skips) when they are missing. */
export function toolchain(): Toolchain {
  const v = pinnedVersions();
  const cliVersion = v['CROSSPLANE_CLI_VERSION'] ?? '';
  const coreVersion = v['CROSSPLANE_CORE_VERSION'] ?? '';
  const cli =
    process.env['CROSSPLANE_CLI'] ?? join(ROOT, `.cache/bin/cli-${cliVersion}/crossplane`);
  const core = join(ROOT, `.cache/bin/core-${coreVersion}/crossplane`);
  const coreCrds = join(ROOT, `.cache/bin/core-${coreVersion}/crds`);
  for (const [what, path] of [
    ['crossplane CLI', cli],
    ['crossplane core binary', core],
    ['crossplane core CRDs', coreCrds],
  ] as const) {
    if (!existsSync(path)) throw new Error(`${what} not found at ${rel(path)}: ${BUILD_HINT}`);
  }
  return { cli, core, coreCrds, cliVersion, coreVersion };
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs a command to completion. Asynchronous on purpose: a test worker blocked in spawnSync for
 * the hundreds of CLI calls of the suite cannot answer vitest's RPC, which then times out.
 */
export function run(cmd: string, args: string[]): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      // The CLI reads and may write its config file; keep it out of the user's home.
      env: { ...process.env, CROSSPLANE_CONFIG: join(scratchDir(), 'crossplane-config.yaml') },
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.once('error', reject);
    child.once('close', (code, signal) => {
      resolve({
        code: code ?? (signal !== null ? -1 : 0),
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      });
    });
  });
}

let scratch: string | undefined;
/** A temporary folder for this process's files. */
export function scratchDir(): string {
  scratch ??= mkdtempSync(join(tmpdir(), 'modelcache-conformance-'));
  return scratch;
}

/** Removes the scratch folder (call from afterAll). */
export function removeScratch(): void {
  if (scratch !== undefined) rmSync(scratch, { recursive: true, force: true });
  scratch = undefined;
}

export function parseYamlDocs(text: string): Doc[] {
  return parseAllDocuments(text).flatMap((d) => {
    if (d.errors.length > 0) throw new Error(d.errors.map(String).join('; '));
    const v: unknown = d.toJS();
    if (v === null || v === undefined) return [];
    if (!isDoc(v)) throw new Error('a YAML document that is not an object');
    return [v];
  });
}

// ---------------------------------------------------------------------------------------------
// The Function, started as `npm start` starts it, on a free loopback port.

export interface RunningFunction {
  target: string;
  stop: () => Promise<void>;
}

export async function startFunction(): Promise<RunningFunction> {
  const child: ChildProcess = spawn(
    process.execPath,
    ['--import', 'tsx', 'function/main.ts', '--insecure', '--address', '127.0.0.1:0'],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stderr = '';
  child.stderr?.on('data', (b: Buffer) => (stderr += b.toString()));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`function did not report listening within 30 s: ${stderr}`));
    }, 30_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`function exited (${String(code)}) before listening: ${stderr}`));
    });
    if (!child.stdout) throw new Error('no stdout');
    const lines = createInterface({ input: child.stdout });
    lines.on('line', (line) => {
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
  return {
    target: `127.0.0.1:${port}`,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) {
          resolve();
          return;
        }
        child.once('exit', () => {
          resolve();
        });
        child.kill('SIGTERM');
      }),
  };
}

// ---------------------------------------------------------------------------------------------
// crossplane composition render

/** The render command line for a case, as a user would type it (paths relative to the root). */
export function renderArgs(
  c: RenderCase,
  tc: Toolchain,
  target: string,
  opts: { fullXR?: boolean } = {},
): string[] {
  return [
    'composition',
    'render',
    rel(c.xrPath),
    rel(c.compositionPath),
    rel(c.functionsPath),
    `--crossplane-binary=${tc.core}`,
    `--xrd=${rel(c.xrdPath)}`,
    '--include-function-results',
    ...(opts.fullXR ? ['--include-full-xr'] : []),
    ...(c.observedPath ? [`--observed-resources=${rel(c.observedPath)}`] : []),
    ...c.requiredPaths.map((p) => `--required-resources=${rel(p)}`),
    '--function-annotations=render.crossplane.io/runtime=Development',
    `--function-annotations=render.crossplane.io/runtime-development-target=${target}`,
  ];
}

export async function renderUpstream(
  c: RenderCase,
  tc: Toolchain,
  target: string,
  opts: { fullXR?: boolean } = {},
): Promise<RenderOutcome & { raw: RunResult }> {
  const r = await run(tc.cli, renderArgs(c, tc, target, opts));
  if (r.code === 0) return { documents: normalizeDocuments(parseYamlDocs(r.stdout)), raw: r };
  const fatal = fatalMessage(r.stderr);
  if (fatal === undefined) {
    throw new Error(`crossplane composition render failed (${r.code}): ${r.stderr}`);
  }
  return { fatal, raw: r };
}

// ---------------------------------------------------------------------------------------------
// crossplane resource validate, offline

/**
 * A schema cache folder holding Crossplane's own CRDs under the name `resource validate` looks
 * them up by, so it never tries to download the Crossplane image.
 */
export function validateCache(tc: Toolchain): { cacheDir: string; image: string } {
  const image = `xpkg.crossplane.io/crossplane/crossplane:${tc.coreVersion}`;
  const cacheDir = join(scratchDir(), 'validate-cache');
  const pkgDir = join(cacheDir, image.replace(':', '@'));
  if (!existsSync(pkgDir)) {
    mkdirSync(pkgDir, { recursive: true });
    const crds = spawnSync('bash', ['-c', 'cat "$0"/*.yaml', tc.coreCrds], { encoding: 'utf8' });
    // One stream of documents, as the CLI's own cache stores a package's CRDs.
    writeFileSync(join(pkgDir, 'package.yaml'), crds.stdout.replace(/^(?!---)/, '---\n'));
  }
  return { cacheDir, image };
}

export const PROVIDER_KUBERNETES_CRDS = join(ROOT, 'test/conformance/crds');
export const INPUT_CRD_DIR = join(ROOT, 'package/function/input');

/** Our XRDs, the provider-kubernetes CRDs and the Function's input CRD. */
export function extensions(): string[] {
  return [join(ROOT, 'apis'), PROVIDER_KUBERNETES_CRDS, INPUT_CRD_DIR];
}

export async function validate(
  tc: Toolchain,
  resources: string[],
  moreExtensions: string[] = [],
): Promise<{ code: number; lines: string[]; raw: RunResult }> {
  const { cacheDir, image } = validateCache(tc);
  const r = await run(tc.cli, [
    'resource',
    'validate',
    [...extensions(), ...moreExtensions].join(','),
    resources.join(','),
    `--cache-dir=${cacheDir}`,
    `--crossplane-image=${image}`,
    '--error-on-missing-schemas',
  ]);
  const lines = `${r.stdout}\n${r.stderr}`
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
  return { code: r.code, lines, raw: r };
}

/** Writes documents to a scratch YAML file, for commands that take files. */
export function writeDocs(name: string, docs: Doc[]): string {
  const path = join(scratchDir(), name);
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, docs.map((d) => `---\n${JSON.stringify(d)}\n`).join(''));
  return path;
}
