// How a simulated kubelet runs a container. One interface, one implementation for the
// prefetch Job: the REAL fetch program (function/fetch/main.ts, built or through tsx) as a
// child process, with the container's environment, its volumes as directories on this
// machine, the pod's service-account token and the cluster's API server on loopback.
import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { ROOT, program, type Program } from '../programs.js';

export interface ContainerSpec {
  /** The container's command, as the Job composes it. */
  command: string[];
  /** Resolved environment (values from Secrets already read by the kubelet). */
  env: Record<string, string>;
  /** mountPath -> host directory. */
  mounts: Record<string, string>;
  /** Files the kubelet provides at fixed paths (service-account dir, termination log). */
  fixedPaths: Record<string, string>;
  /** Where the container's stdout and stderr go. */
  logFile: string;
  /** The API server, as KUBERNETES_SERVICE_HOST/PORT. */
  apiHost: string;
  apiPort: number;
}

export interface RunningContainer {
  readonly pid: number | undefined;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(signal: NodeJS.Signals): void;
}

export interface ContainerRunner {
  /** Whether this runner runs that command (the fetch program's entrypoint in the image). */
  accepts(command: string[]): boolean;
  start(spec: ContainerSpec): RunningContainer;
  readonly describe: string;
}

const PRELOAD = join(dirname(fileURLToPath(import.meta.url)), 'pod-mounts.js');

/** Rewrite absolute paths in the plan that fall under a volume mount to the host directory. */
export function rewritePlan(raw: string, mounts: Record<string, string>): string {
  const sorted = Object.entries(mounts).sort((a, b) => b[0].length - a[0].length);
  const map = (v: unknown): unknown => {
    if (typeof v === 'string' && v.startsWith('/')) {
      for (const [from, to] of sorted) {
        if (v === from) return to;
        if (v.startsWith(`${from}/`)) return `${to}${v.slice(from.length)}`;
      }
      return v;
    }
    if (Array.isArray(v)) return v.map(map);
    if (v !== null && typeof v === 'object') {
      return Object.fromEntries(
        Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, map(x)]),
      );
    }
    return v;
  };
  const plan = JSON.parse(raw) as Record<string, unknown>;
  // Only the paths the program writes to or reads from: the target and the files dir.
  const out: Record<string, unknown> = { ...plan, targetDir: map(plan['targetDir']) };
  const source = plan['source'];
  if (source !== null && typeof source === 'object' && 'dir' in source) {
    out['source'] = {
      ...(source as Record<string, unknown>),
      dir: map((source as Record<string, unknown>)['dir']),
    };
  }
  return JSON.stringify(out);
}

/** The project's fetch program, run for real. */
export class FetchProgramRunner implements ContainerRunner {
  readonly program: Program = program('fetch');
  readonly describe: string;
  /** Every start, for assertions (how many pods actually ran the program). */
  readonly starts: { logFile: string; at: number }[] = [];

  constructor(private readonly entrypoints: string[] = ['/app/dist/function/fetch/main.js']) {
    this.describe = `the fetch program (${this.program.shown})`;
  }

  accepts(command: string[]): boolean {
    return command.some((c) => this.entrypoints.includes(c));
  }

  start(spec: ContainerSpec): RunningContainer {
    const plan = spec.env['MODELCACHE_PLAN'];
    const env: Record<string, string> = {
      ...spec.env,
      ...(plan !== undefined ? { MODELCACHE_PLAN: rewritePlan(plan, spec.mounts) } : {}),
      KUBERNETES_SERVICE_HOST: spec.apiHost,
      KUBERNETES_SERVICE_PORT: String(spec.apiPort),
      HOME: spec.mounts['/tmp'] ?? '/tmp',
      TMPDIR: spec.mounts['/tmp'] ?? '/tmp',
      PATH: process.env['PATH'] ?? '/usr/bin:/bin',
      SIM_POD_MOUNTS: JSON.stringify(spec.fixedPaths),
    };
    const log = createWriteStream(spec.logFile, { flags: 'a' });
    const child = spawn(process.execPath, ['--import', PRELOAD, ...this.program.args], {
      cwd: ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.starts.push({ logFile: spec.logFile, at: Date.now() });
    child.stdout.pipe(log, { end: false });
    child.stderr.pipe(log, { end: false });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>(
      (resolve) => {
        child.once('exit', (code, signal) => {
          // Let the pipes drain before the log is closed.
          setImmediate(() => {
            log.end();
            resolve({ code, signal });
          });
        });
      },
    );
    return {
      pid: child.pid,
      exited,
      kill: (signal) => {
        if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      },
    };
  }
}
