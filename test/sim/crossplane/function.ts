// The real Function, as a separate process serving gRPC on loopback (function/main.ts, the
// container's entrypoint, with --insecure as the Development runtime uses it), and the
// client Crossplane's function runner would be: one RunFunction call per pipeline step.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

import type {
  RunFunctionRequest,
  RunFunctionResponse,
} from '@crossplane-org/function-sdk-typescript';

import { callRunner, newRunnerClient, type RunnerClient } from '../../support/grpc-client.js';
import { ROOT, program, type Program } from '../programs.js';

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address() as AddressInfo;
  await new Promise<void>((resolve) => {
    srv.close(() => {
      resolve();
    });
  });
  return port;
}

/** The Function process. Restartable on the same address, as a Deployment's Service keeps it. */
export class FunctionProcess {
  private child: ChildProcess | undefined;
  private log: WriteStream | undefined;
  port = 0;
  starts = 0;
  readonly program: Program = program('function');

  constructor(private readonly logFile: string) {}

  get target(): string {
    return `127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return (
      this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null
    );
  }

  async start(): Promise<void> {
    if (this.running) return;
    if (this.port === 0) this.port = await freePort();
    this.log ??= createWriteStream(this.logFile, { flags: 'a' });
    const child = spawn(
      process.execPath,
      [...this.program.args, '--insecure', '--address', this.target],
      {
        cwd: ROOT,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, NODE_ENV: 'production' },
      },
    );
    this.child = child;
    this.starts++;
    const log = this.log;
    child.stderr.on('data', (d: Buffer) => log.write(d));
    const lines = createInterface({ input: child.stdout });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`the Function did not start listening on ${this.target} within 30 s`));
      }, 30_000);
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`the Function exited while starting (code ${code}, signal ${signal})`));
      });
      lines.on('line', (line) => {
        log.write(`${line}\n`);
        if (line.includes('"msg":"listening"')) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
  }

  /** SIGKILL: a crashed or OOM-killed Function pod. */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (child && this.running) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    await new Promise<void>((resolve) => {
      if (this.log) this.log.end(resolve);
      else resolve();
    });
    this.log = undefined;
  }
}

/** Crossplane's side of the wire: one client per Function, re-dialled after a failed call. */
export class FunctionRunner {
  private client: RunnerClient | undefined;
  calls = 0;
  failures = 0;
  /** Observers of every request and response (the simulator's invariant checks). */
  readonly taps: ((req: RunFunctionRequest, rsp: RunFunctionResponse) => void)[] = [];

  constructor(
    private readonly functions: Record<string, FunctionProcess>,
    private readonly timeoutMs = 10_000,
  ) {}

  async run(name: string, req: RunFunctionRequest): Promise<RunFunctionResponse> {
    const fn = this.functions[name];
    if (fn === undefined) {
      throw new Error(`cannot find a running Function named ${JSON.stringify(name)}`);
    }
    this.client ??= newRunnerClient(fn.target, undefined, {
      'grpc.max_receive_message_length': 64 * 1024 * 1024,
      'grpc.max_send_message_length': 64 * 1024 * 1024,
      // Fail fast while the Function is down; Crossplane backs off and retries the reconcile.
      'grpc.initial_reconnect_backoff_ms': 100,
      'grpc.max_reconnect_backoff_ms': 500,
    });
    this.calls++;
    try {
      const rsp = await callRunner(this.client, req, this.timeoutMs);
      for (const tap of this.taps) tap(req, rsp);
      return rsp;
    } catch (err) {
      this.failures++;
      this.client.close();
      this.client = undefined;
      throw err;
    }
  }

  close(): void {
    this.client?.close();
    this.client = undefined;
  }
}

export function functionLogPath(dir: string): string {
  return join(dir, 'function.log');
}
