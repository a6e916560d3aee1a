// Starts the benchmark server (server-process.ts) in a child process, compiled with tsc first so
// it runs as JavaScript like the shipped image (no TypeScript loader in its memory or its time).
import { execFile, fork, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import type { Codec } from '../../function/server/grpc-server.js';

export interface ServerStats {
  /** Resident set size now, bytes. */
  rss: number;
  /** Peak resident set size of the process so far, bytes (the kernel's high-water mark). */
  maxRss: number;
  heapUsed: number;
  /** Memory outside the JS heap (Buffers): request and response bytes live here. */
  external: number;
}

export interface ServeArgs {
  codec: Codec;
  maxMessageBytes: number;
  flowControlWindow?: number;
  /** Serve mTLS with tls.crt, tls.key and ca.crt from here, as Crossplane dials; else insecure. */
  tlsCertsDir?: string;
}

export type ToServer =
  | { type: 'stats'; gc: boolean }
  | { type: 'measure'; requests: Uint8Array[]; warmup: number; iterations: number }
  | { type: 'floor'; response: Uint8Array }
  | { type: 'exit' };
export type FromServer =
  | { type: 'listening'; port: number }
  | ({ type: 'stats' } & ServerStats)
  | { type: 'measured'; samples: number[] }
  | { type: 'floor'; port: number };

export interface ServerProcess {
  port: number;
  pid: number;
  /** Memory use; with `gc`, after a full garbage collection (live memory, not garbage). */
  stats(gc?: boolean): Promise<ServerStats>;
  /** Time decode + compose + encode in the server process, call i of requests[i % length], ms. */
  measure(requests: Buffer[], warmup: number, iterations: number): Promise<number[]>;
  /**
   * The port of a grpc-js server in the same process, set up as the Function's (same limits and
   * receive windows), that answers every call with `response` and does nothing else: the
   * transport's share of a call of that size.
   */
  floor(response: Buffer): Promise<number>;
  stop(): Promise<void>;
}

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const OUT_DIR = join(ROOT, '.cache', 'bench-dist');
const ENTRY = join(OUT_DIR, 'test', 'bench', 'server-process.js');

let compiled: Promise<void> | undefined;

/** tsc the server entry and everything it imports into .cache/bench-dist (once per process). */
function compile(): Promise<void> {
  compiled ??= (async () => {
    const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    const args = [
      tsc,
      join(ROOT, 'test', 'bench', 'server-process.ts'),
      ...['--outDir', OUT_DIR, '--rootDir', ROOT, '--target', 'ES2022'],
      ...['--module', 'NodeNext', '--moduleResolution', 'NodeNext', '--types', 'node'],
      ...['--skipLibCheck', '--esModuleInterop', '--resolveJsonModule'],
    ];
    try {
      await promisify(execFile)(process.execPath, args, { cwd: ROOT });
    } catch (err) {
      // Type errors (say, in someone's unfinished work) still emit; only no output is fatal.
      if (!existsSync(ENTRY)) throw err;
    }
  })();
  return compiled;
}

export async function forkServer(opts: Partial<ServeArgs> = {}): Promise<ServerProcess> {
  await compile();
  const args: ServeArgs = {
    codec: opts.codec ?? 'fast',
    maxMessageBytes: opts.maxMessageBytes ?? 256 * 2 ** 20,
    ...(opts.flowControlWindow !== undefined ? { flowControlWindow: opts.flowControlWindow } : {}),
    ...(opts.tlsCertsDir !== undefined ? { tlsCertsDir: opts.tlsCertsDir } : {}),
  };
  const child: ChildProcess = fork(ENTRY, ['--serve', JSON.stringify(args)], {
    // BENCH_NODE_FLAGS: extra node/V8 flags for the server, e.g. to try GC settings.
    execArgv: [
      '--expose-gc',
      ...(process.env['BENCH_NODE_FLAGS'] ?? '').split(' ').filter(Boolean),
    ],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    // Structured clone, so request bytes travel as bytes.
    serialization: 'advanced',
  });
  const port = await new Promise<number>((resolve, reject) => {
    child.once('message', (m: FromServer) => {
      if (m.type === 'listening') resolve(m.port);
    });
    child.once('exit', (code) => {
      reject(new Error(`benchmark server exited with ${String(code)}`));
    });
  });
  const send = (m: ToServer): void => {
    child.send(m);
  };
  return {
    port,
    pid: child.pid ?? 0,
    stats: (gc = false) =>
      new Promise((resolve) => {
        child.once('message', (m: FromServer) => {
          if (m.type === 'stats') resolve(m);
        });
        send({ type: 'stats', gc });
      }),
    measure: (requests, warmup, iterations) =>
      new Promise((resolve) => {
        child.once('message', (m: FromServer) => {
          if (m.type === 'measured') resolve(m.samples);
        });
        send({ type: 'measure', requests, warmup, iterations });
      }),
    floor: (response) =>
      new Promise((resolve) => {
        child.once('message', (m: FromServer) => {
          if (m.type === 'floor') resolve(m.port);
        });
        send({ type: 'floor', response });
      }),
    stop: () =>
      new Promise((resolve) => {
        child.once('exit', () => {
          resolve();
        });
        send({ type: 'exit' });
      }),
  };
}
