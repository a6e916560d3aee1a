// The gRPC server as a transport, over real sockets, with a client built the way Crossplane's is
// (same service path, protobuf codec, mTLS with a CA-signed client certificate): a stub handler
// stands in for the Function, so these cover listening, TLS, message limits, errors turned into
// results, logging and the binary's flags and signals — not what the Function answers
// (function-over-grpc.test.ts) nor the codec's bytes (function/codec/server-codec.test.ts).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';

import {
  Ready,
  RunFunctionRequest,
  Severity,
  type RunFunctionResponse,
} from '@crossplane-org/function-sdk-typescript';
import * as grpc from '@grpc/grpc-js';
import { generate, type GenerateResult } from 'selfsigned';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { parseFlags } from '../function/server/flags.js';
import { callRunner, newRunnerClient, type RunnerClient } from './support/grpc-client.js';
import {
  startServer,
  type RunFunctionHandler,
  type RunningServer,
  type StartOptions,
} from '../function/server/grpc-server.js';
import { createLogger, type Logger } from '../function/server/logger.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MiB = 1024 * 1024;

// The defaults the binary would run with, so test (4) exercises the shipped limit.
const parsedDefaults = parseFlags([], {});
if (parsedDefaults.kind !== 'run') {
  throw new Error('default flags must parse');
}
const DEFAULTS = parsedDefaults.options;

function insecureOptions(overrides: Partial<StartOptions> = {}): StartOptions {
  return { ...DEFAULTS, address: '127.0.0.1:0', insecure: true, ...overrides };
}

// --- logging capture --------------------------------------------------------------------------

interface Capture {
  log: Logger;
  lines: () => Record<string, unknown>[];
  raw: () => string;
}

function captureLogs(): Capture {
  const chunks: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      chunks.push(chunk.toString('utf8'));
      done();
    },
  });
  const log = createLogger({ debug: true }, sink);
  const raw = (): string => chunks.join('');
  const lines = (): Record<string, unknown>[] =>
    raw()
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  return { log, lines, raw };
}

// --- client built like Crossplane's ------------------------------------------------------------

const clients: grpc.Client[] = [];

function newClient(
  target: string,
  creds: grpc.ChannelCredentials = grpc.credentials.createInsecure(),
  options: grpc.ChannelOptions = {},
): RunnerClient {
  const client = newRunnerClient(target, creds, options);
  clients.push(client);
  return client;
}

const call = (client: RunnerClient, req: RunFunctionRequest): Promise<RunFunctionResponse> =>
  callRunner(client, req);

// --- servers started by a test are always closed -----------------------------------------------

const servers: RunningServer[] = [];

async function start(
  opts: StartOptions,
  handler: RunFunctionHandler,
  log: Logger = captureLogs().log,
): Promise<RunningServer> {
  const server = await startServer(opts, handler, log);
  servers.push(server);
  return server;
}

afterEach(async () => {
  for (const client of clients.splice(0)) {
    client.close();
  }
  await Promise.all(servers.splice(0).map((s) => s.close(1000)));
});

// --- fixtures ---------------------------------------------------------------------------------

const XR = {
  apiVersion: 'modelplane.ai/v1alpha1',
  kind: 'ModelCache',
  metadata: { name: 'llama', namespace: 'ml-team' },
  spec: { source: { huggingFace: { repo: 'meta/llama' } } },
};

function request(tag: string, extra: Partial<RunFunctionRequest> = {}): RunFunctionRequest {
  return RunFunctionRequest.fromPartial({
    meta: { tag },
    observed: { composite: { resource: XR } },
    ...extra,
  });
}

const FIXED_RESOURCE = {
  apiVersion: 'kubernetes.m.crossplane.io/v1alpha1',
  kind: 'Object',
  metadata: { name: 'llama-cache', namespace: 'ml-team' },
};

/** Echoes the tag and returns one fixed desired resource, like a minimal compose step. */
const echoHandler: RunFunctionHandler = (req) => ({
  meta: { tag: req.meta?.tag ?? '', ttl: { seconds: 60, nanos: 0 } },
  desired: {
    composite: undefined,
    resources: {
      cache: { resource: FIXED_RESOURCE, connectionDetails: {}, ready: Ready.READY_TRUE },
    },
  },
  results: [],
  conditions: [],
  requirements: undefined,
  context: undefined,
  output: undefined,
});

function echoResponse(tag: string): RunFunctionResponse {
  return {
    meta: { tag, ttl: { seconds: 60, nanos: 0 } },
    desired: {
      composite: undefined,
      resources: {
        cache: { resource: FIXED_RESOURCE, connectionDetails: {}, ready: Ready.READY_TRUE },
      },
    },
    results: [],
    conditions: [],
    requirements: undefined,
    context: undefined,
    output: undefined,
  };
}

function fatalResponse(tag: string, message: string): RunFunctionResponse {
  return {
    meta: { tag, ttl: undefined },
    desired: undefined,
    results: [
      {
        severity: Severity.SEVERITY_FATAL,
        message,
        reason: 'InternalError',
        target: undefined,
      },
    ],
    conditions: [],
    requirements: undefined,
    context: undefined,
    output: undefined,
  };
}

/** About `mib` MiB of observed composed resources, as a ModelCache matching a large fleet sends. */
function bigRequest(tag: string, mib: number): RunFunctionRequest {
  const chunk = 'x'.repeat(64 * 1024);
  const resources: Record<string, { resource: Record<string, unknown> }> = {};
  for (let i = 0; i < mib * 16; i++) {
    resources[`cluster-${i}`] = {
      resource: { ...FIXED_RESOURCE, metadata: { name: `c-${i}` }, status: { blob: chunk } },
    };
  }
  return RunFunctionRequest.fromPartial({
    meta: { tag },
    observed: { composite: { resource: XR }, resources },
  });
}

function errorCode(err: unknown): number | undefined {
  return typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'number'
    ? err.code
    : undefined;
}

async function callError(client: RunnerClient, req: RunFunctionRequest): Promise<unknown> {
  try {
    await call(client, req);
  } catch (err) {
    return err;
  }
  throw new Error('call succeeded but an error was expected');
}

// --- tests ------------------------------------------------------------------------------------

describe('startServer (insecure)', () => {
  it('returns the whole handler response with the request tag copied', async () => {
    const server = await start(insecureOptions(), echoHandler);
    const client = newClient(`127.0.0.1:${server.port}`);

    expect(await call(client, request('tag-1'))).toEqual(echoResponse('tag-1'));
  });

  it('binds port 0 to a free port and reports it', async () => {
    const server = await start(insecureOptions(), echoHandler);
    expect(server.port).toBeGreaterThan(0);
  });

  it('logs one debug line per call with tag, duration and XR identity, never the bodies', async () => {
    const capture = captureLogs();
    const secret = 'c2VjcmV0LXRva2Vu';
    const server = await start(insecureOptions(), echoHandler, capture.log);
    const client = newClient(`127.0.0.1:${server.port}`);

    await call(
      client,
      request('tag-log', {
        observed: {
          composite: { resource: XR, connectionDetails: {}, ready: Ready.READY_UNSPECIFIED },
          resources: {
            creds: {
              resource: { apiVersion: 'v1', kind: 'Secret', data: { token: secret } },
              connectionDetails: { token: Buffer.from(secret) },
              ready: Ready.READY_UNSPECIFIED,
            },
          },
        },
      }),
    );

    expect(capture.lines()).toEqual([
      {
        level: 'debug',
        time: expect.any(String) as unknown,
        name: 'function-modelcache',
        tag: 'tag-log',
        durationMs: expect.any(Number) as unknown,
        xrKind: 'ModelCache',
        xrName: 'llama',
        xrNamespace: 'ml-team',
        desiredResources: 1,
        results: 0,
        msg: 'RunFunction',
      },
    ]);
    expect(capture.raw()).not.toContain(secret);
    expect(capture.raw()).not.toContain('llama-cache');
  });

  it('turns a handler exception into a FATAL result with the tag and keeps serving', async () => {
    const capture = captureLogs();
    let calls = 0;
    const flaky: RunFunctionHandler = (req, log) => {
      calls++;
      if (calls === 1) {
        throw new TypeError('boom');
      }
      return echoHandler(req, log);
    };
    const server = await start(insecureOptions(), flaky, capture.log);
    const client = newClient(`127.0.0.1:${server.port}`);

    expect(await call(client, request('tag-fail'))).toEqual(
      fatalResponse('tag-fail', 'internal error: boom'),
    );
    expect(await call(client, request('tag-next'))).toEqual(echoResponse('tag-next'));

    const errors = capture.lines().filter((l) => l.level === 'error');
    expect(errors).toEqual([
      {
        level: 'error',
        time: expect.any(String) as unknown,
        name: 'function-modelcache',
        tag: 'tag-fail',
        error: { type: 'TypeError', message: 'boom', stack: expect.any(String) as unknown },
        msg: 'RunFunction handler failed',
      },
    ]);
  });

  it('turns a non-Error throw into a FATAL result', async () => {
    const server = await start(insecureOptions(), () => {
      // eslint-disable-next-line @typescript-eslint/only-throw-error -- the case under test
      throw 'plain string';
    });
    const client = newClient(`127.0.0.1:${server.port}`);

    expect(await call(client, request('tag-str'))).toEqual(
      fatalResponse('tag-str', 'internal error: plain string'),
    );
  });

  it('turns an unencodable response into a FATAL result instead of a gRPC error', async () => {
    const server = await start(insecureOptions(), (req) => ({
      ...echoResponse(req.meta?.tag ?? ''),
      desired: {
        composite: undefined,
        resources: {
          bad: { resource: { size: 10n }, connectionDetails: {}, ready: Ready.READY_TRUE },
        },
      },
    }));
    const client = newClient(`127.0.0.1:${server.port}`);

    expect(await call(client, request('tag-enc'))).toEqual(
      fatalResponse('tag-enc', 'internal error: Unsupported any value type: bigint'),
    );
  });

  it('copies an empty tag when the request has no meta', async () => {
    const server = await start(insecureOptions(), () => {
      throw new Error('no meta');
    });
    const client = newClient(`127.0.0.1:${server.port}`);

    expect(await call(client, RunFunctionRequest.fromPartial({}))).toEqual(
      fatalResponse('', 'internal error: no meta'),
    );
  });

  it('accepts a 5 MiB request with the default message limit', async () => {
    const server = await start(insecureOptions(), echoHandler);
    const client = newClient(`127.0.0.1:${server.port}`);
    const req = bigRequest('tag-big', 5);
    expect(RunFunctionRequest.encode(req).finish().length).toBeGreaterThan(5 * MiB);

    expect(await call(client, req)).toEqual(echoResponse('tag-big'));
  });

  it('refuses a 5 MiB request with RESOURCE_EXHAUSTED when the limit is 1 MiB', async () => {
    const server = await start(insecureOptions({ maxMessageBytes: MiB }), echoHandler);
    const client = newClient(`127.0.0.1:${server.port}`);

    const err = await callError(client, bigRequest('tag-big', 5));
    expect(errorCode(err)).toBe(grpc.status.RESOURCE_EXHAUSTED);
  });

  it('rejects when the address is already in use', async () => {
    const first = await start(insecureOptions(), echoHandler);
    const address = `127.0.0.1:${first.port}`;

    await expect(
      startServer(insecureOptions({ address }), echoHandler, captureLogs().log),
    ).rejects.toThrow(new RegExp(`^cannot listen on ${address}: `));
  });

  it('refuses calls after close()', async () => {
    const server = await start(insecureOptions(), echoHandler);
    const target = `127.0.0.1:${server.port}`;
    await call(newClient(target), request('before'));

    await server.close();

    const err = await callError(newClient(target), request('after'));
    expect(errorCode(err)).toBe(grpc.status.UNAVAILABLE);
  });
});

// --- mTLS -------------------------------------------------------------------------------------

interface Pki {
  dir: string;
  ca: GenerateResult;
  client: GenerateResult;
  otherClient: GenerateResult;
}

async function makePki(): Promise<Pki> {
  const ca = await generate([{ name: 'commonName', value: 'modelcache test CA' }], {
    keyType: 'ec',
    algorithm: 'sha256',
    extensions: [
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true },
    ],
  });
  const signedBy = (issuer: GenerateResult, cn: string, usage: 'server' | 'client') =>
    generate([{ name: 'commonName', value: cn }], {
      keyType: 'ec',
      algorithm: 'sha256',
      ca: { key: issuer.private, cert: issuer.cert },
      extensions: [
        { name: 'basicConstraints', cA: false },
        { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
        usage === 'server'
          ? { name: 'extKeyUsage', serverAuth: true }
          : { name: 'extKeyUsage', clientAuth: true },
        {
          name: 'subjectAltName',
          altNames: [{ type: 2, value: 'localhost' }],
        },
      ],
    });
  const server = await signedBy(ca, 'localhost', 'server');
  const client = await signedBy(ca, 'crossplane', 'client');
  const otherCa = await generate([{ name: 'commonName', value: 'some other CA' }], {
    keyType: 'ec',
    algorithm: 'sha256',
    extensions: [{ name: 'basicConstraints', cA: true, critical: true }],
  });
  const otherClient = await signedBy(otherCa, 'intruder', 'client');

  const dir = await mkdtemp(join(tmpdir(), 'modelcache-tls-'));
  await writeFile(join(dir, 'tls.crt'), server.cert);
  await writeFile(join(dir, 'tls.key'), server.private);
  await writeFile(join(dir, 'ca.crt'), ca.cert);
  return { dir, ca, client, otherClient };
}

describe('startServer (mTLS)', () => {
  let pki: Pki;

  beforeAll(async () => {
    pki = await makePki();
  });

  afterAll(async () => {
    await rm(pki.dir, { recursive: true, force: true });
  });

  // Dial the IP but verify the DNS name, as Crossplane dials the function Service by name.
  function tlsClient(port: number, creds: grpc.ChannelCredentials): RunnerClient {
    return newClient(`127.0.0.1:${port}`, creds, { 'grpc.ssl_target_name_override': 'localhost' });
  }

  function tlsOptions(): StartOptions {
    return { ...DEFAULTS, address: '127.0.0.1:0', insecure: false, tlsCertsDir: pki.dir };
  }

  it('serves a client presenting a certificate signed by ca.crt', async () => {
    const server = await start(tlsOptions(), echoHandler);
    const creds = grpc.credentials.createSsl(
      Buffer.from(pki.ca.cert),
      Buffer.from(pki.client.private),
      Buffer.from(pki.client.cert),
    );
    const client = tlsClient(server.port, creds);

    expect(await call(client, request('tag-tls'))).toEqual(echoResponse('tag-tls'));
  });

  it('refuses a client without a client certificate', async () => {
    const server = await start(tlsOptions(), echoHandler);
    const creds = grpc.credentials.createSsl(Buffer.from(pki.ca.cert));
    const client = tlsClient(server.port, creds);

    const err = await callError(client, request('tag-anon'));
    expect(errorCode(err)).toBe(grpc.status.UNAVAILABLE);
  });

  it('refuses a client whose certificate is signed by another CA', async () => {
    const server = await start(tlsOptions(), echoHandler);
    const creds = grpc.credentials.createSsl(
      Buffer.from(pki.ca.cert),
      Buffer.from(pki.otherClient.private),
      Buffer.from(pki.otherClient.cert),
    );
    const client = tlsClient(server.port, creds);

    const err = await callError(client, request('tag-intruder'));
    expect(errorCode(err)).toBe(grpc.status.UNAVAILABLE);
  });

  it('refuses a plaintext client', async () => {
    const server = await start(tlsOptions(), echoHandler);
    const client = newClient(`127.0.0.1:${server.port}`);

    const err = await callError(client, request('tag-plain'));
    expect(errorCode(err)).toBe(grpc.status.UNAVAILABLE);
  });

  it('rejects with a message naming the missing files when the cert dir does not exist', async () => {
    const dir = join(pki.dir, 'missing');
    await expect(
      startServer({ ...tlsOptions(), tlsCertsDir: dir }, echoHandler, captureLogs().log),
    ).rejects.toThrow(
      `TLS certificate files not found: ${dir}/tls.crt, ${dir}/tls.key, ${dir}/ca.crt. ` +
        'Point --tls-certs-dir (or TLS_SERVER_CERTS_DIR) at the directory holding tls.crt, ' +
        'tls.key and ca.crt, or pass --insecure for local development.',
    );
  });
});

// --- the real entrypoint ----------------------------------------------------------------------

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

const children: ChildProcess[] = [];

afterAll(() => {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
    }
  }
});

function launch(command: string, args: string[]): { child: ChildProcess; exited: Promise<Exit> } {
  const child = spawn(command, args, {
    cwd: ROOT,
    env: { ...process.env, TLS_SERVER_CERTS_DIR: '', MAX_MESSAGE_BYTES: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
  // 'close', not 'exit': it fires after stdout and stderr are drained.
  const exited = new Promise<Exit>((resolve) => {
    child.on('close', (code, signal) => {
      resolve({ code, signal, stdout, stderr });
    });
  });
  return { child, exited };
}

/** Resolve with the first JSON log line whose msg matches, as the process writes it. */
function waitForLog(child: ChildProcess, msg: string): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    let buffered = '';
    const onData = (d: Buffer): void => {
      buffered += d.toString('utf8');
      for (const line of buffered.split('\n')) {
        if (!line.startsWith('{')) continue;
        try {
          const parsed = JSON.parse(line) as Record<string, unknown>;
          if (parsed.msg === msg) {
            child.stdout?.off('data', onData);
            resolve(parsed);
            return;
          }
        } catch {
          // A partial line; the rest arrives with the next chunk.
        }
      }
    };
    child.stdout?.on('data', onData);
    child.on('exit', (code) => {
      reject(new Error(`exited with ${String(code)} before logging "${msg}"`));
    });
  });
}

describe('function/main.ts', () => {
  it('exits non-zero naming the missing certificate file when certs are absent', async () => {
    const { exited } = launch('npx', [
      'tsx',
      'function/main.ts',
      '--tls-certs-dir',
      '/nonexistent',
    ]);
    const exit = await exited;

    expect(exit.code).toBe(1);
    const message =
      'TLS certificate files not found: /nonexistent/tls.crt, /nonexistent/tls.key, ' +
      '/nonexistent/ca.crt. Point --tls-certs-dir (or TLS_SERVER_CERTS_DIR) at the directory ' +
      'holding tls.crt, tls.key and ca.crt, or pass --insecure for local development.';
    expect(exit.stderr).toBe(`function-modelcache: ${message}\n`);
    expect(
      exit.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as unknown),
    ).toEqual([
      {
        level: 'fatal',
        time: expect.any(String) as unknown,
        name: 'function-modelcache',
        msg: message,
      },
    ]);
  });

  it('exits 2 with a usage hint on an unknown flag', async () => {
    const { exited } = launch(process.execPath, ['--import', 'tsx', 'function/main.ts', '--nope']);
    expect(await exited).toEqual({
      code: 2,
      signal: null,
      stdout: '',
      stderr:
        "function-modelcache: unknown flag --nope\nTry 'function-modelcache --help' for usage.\n",
    });
  });

  it('serves on the logged port and exits 0 on SIGTERM', async () => {
    // node --import tsx rather than the tsx CLI: one process, so SIGTERM reaches main.ts directly,
    // as it does in the container.
    const { child, exited } = launch(process.execPath, [
      '--import',
      'tsx',
      'function/main.ts',
      '--insecure',
      '--address',
      '127.0.0.1:0',
    ]);
    const listening = await waitForLog(child, 'listening');
    expect(listening).toEqual({
      level: 'info',
      time: expect.any(String) as unknown,
      name: 'function-modelcache',
      address: '127.0.0.1:0',
      port: expect.any(Number) as unknown,
      tls: 'insecure',
      maxMessageBytes: 64 * MiB,
      msg: 'listening',
    });

    const client = newClient(`127.0.0.1:${String(listening.port)}`);
    const rsp = await call(client, request('tag-main'));
    expect(rsp.meta?.tag).toBe('tag-main');

    child.kill('SIGTERM');
    const exit = await exited;
    expect({ code: exit.code, signal: exit.signal, stderr: exit.stderr }).toEqual({
      code: 0,
      signal: null,
      stderr: '',
    });
    // Lines without a tag are the process lifecycle; per-call lines belong to the dispatcher.
    const lifecycle = exit.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { msg: string; tag?: string })
      .filter((l) => l.tag === undefined)
      .map((l) => l.msg);
    expect(lifecycle).toEqual(['listening', 'shutting down', 'stopped']);
  });
});
