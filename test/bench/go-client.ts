// The benchmarks' client: test/bench/goclient, a Go program dialling the Function as Crossplane
// v2.3.4 does (grpc-go, 4 MiB receive limit, the request marshalled by grpc-go on every call).
// Built by goclient/build.sh into .cache/bin/ (reused while its sources are unchanged).
//
// Requests travel to it as a file of length-prefixed protobuf messages, which it unmarshals once
// into Go messages, as Crossplane holds a built message; what goes on the wire is Go's marshal.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const BUILD = fileURLToPath(new URL('goclient/build.sh', import.meta.url));

let built: Promise<string> | undefined;

/** The client binary's path, building it on first use (Go from the module proxy when cold). */
export function goClientBinary(): Promise<string> {
  built ??= promisify(execFile)('bash', [BUILD], { maxBuffer: 16 * 2 ** 20 }).then(
    ({ stdout }) => stdout.trim(),
    (err: unknown) => {
      const stderr = (err as { stderr?: string }).stderr ?? '';
      throw new Error(
        `cannot build the Go benchmark client: ${stderr.slice(-2000) || String(err)}`,
      );
    },
  );
  return built;
}

/** Messages as the Go client reads them: a 4-byte big-endian length before each. */
export function frames(messages: readonly Uint8Array[]): Buffer {
  const parts: Buffer[] = [];
  for (const m of messages) {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(m.length);
    parts.push(len, Buffer.from(m.buffer, m.byteOffset, m.length));
  }
  return Buffer.concat(parts);
}

export function unframe(bytes: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at < bytes.length;) {
    const len = bytes.readUInt32BE(at);
    out.push(bytes.subarray(at + 4, at + 4 + len));
    at += 4 + len;
  }
  return out;
}

export interface Latency {
  p50: number;
  p99: number;
  mean: number;
  min: number;
  max: number;
  sum: number;
}

export interface CallError {
  /** grpc-go's name of the status code, e.g. ResourceExhausted. */
  code: string;
  count: number;
  message: string;
}

export interface CallResult {
  target: string;
  /** Measured calls made (warm-up excluded); `ok` of them succeeded. */
  calls: number;
  ok: number;
  concurrency: number;
  /** proto.Size of each request, in the order given. */
  requestBytes: number[];
  /** proto.Size of the response to each request; -1 where none succeeded. */
  responseBytes: number[];
  /** Of the successful measured calls, ms; null when none succeeded. */
  latencyMs: Latency | null;
  /** Wall time of the measured calls, ms. */
  wallMs: number;
  samples?: number[];
  errors: CallError[];
}

export interface CallOptions {
  warmup: number;
  iterations: number;
  /** Calls in flight at once on the one connection (default 1). */
  concurrency?: number;
  /** Return every measured call's latency. */
  samples?: boolean;
  /** Stop after this many failed calls (default 5): a refused size fails every call alike. */
  maxErrors?: number;
  /** mTLS as Crossplane dials: the client directory of goCerts(). Default: insecure. */
  tlsCertsDir?: string;
}

export interface CallOutcome extends CallResult {
  /** The response to each request (Go's deterministic marshal), empty where none succeeded. */
  responses: Buffer[];
}

/** Call `target` warmup + iterations times, call i sending requests[i % length]. */
export async function goCall(
  target: string,
  requests: readonly Uint8Array[],
  opts: CallOptions,
): Promise<CallOutcome> {
  const bin = await goClientBinary();
  const dir = mkdtempSync(join(tmpdir(), 'bench-go-'));
  try {
    const reqPath = join(dir, 'requests.bin');
    const rspPath = join(dir, 'responses.bin');
    writeFileSync(reqPath, frames(requests));
    const args = [
      'call',
      ...['-target', target, '-requests', reqPath, '-save-responses', rspPath],
      ...['-warmup', String(opts.warmup), '-iterations', String(opts.iterations)],
      ...['-concurrency', String(opts.concurrency ?? 1)],
      ...['-max-errors', String(opts.maxErrors ?? 5)],
      ...(opts.samples === true ? ['-samples'] : []),
      ...(opts.tlsCertsDir !== undefined ? ['-tls-certs-dir', opts.tlsCertsDir] : []),
    ];
    const { stdout } = await promisify(execFile)(bin, args, { maxBuffer: 64 * 2 ** 20 });
    const result = JSON.parse(stdout) as CallResult;
    return { ...result, responses: unframe(readFileSync(rspPath)) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface MarshalStats {
  bytes: number;
  copies: number;
  /** How many different byte strings the copies were. */
  distinct: number;
  marshalMs: number;
  unmarshalMs: number;
}

/**
 * What Crossplane would put on the wire: `copies` fresh marshals by Go of each request, in
 * order (request 0's copies first), with Go's codec timings and how many copies differed.
 */
export async function goMarshal(
  requests: readonly Uint8Array[],
  copies: number,
): Promise<{ bytes: Buffer[]; stats: MarshalStats[] }> {
  const bin = await goClientBinary();
  const dir = mkdtempSync(join(tmpdir(), 'bench-go-'));
  try {
    const reqPath = join(dir, 'requests.bin');
    const outPath = join(dir, 'marshals.bin');
    writeFileSync(reqPath, frames(requests));
    const { stdout } = await promisify(execFile)(
      bin,
      ['marshal', '-requests', reqPath, '-copies', String(copies), '-out', outPath],
      { maxBuffer: 16 * 2 ** 20 },
    );
    const stats = (JSON.parse(stdout) as { requests: MarshalStats[] }).requests;
    return { bytes: unframe(readFileSync(outPath)), stats };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface FloorServer {
  address: string;
  stop(): Promise<void>;
}

/**
 * A Go gRPC server that reads each request's bytes and answers `response`'s bytes, doing no
 * protobuf work: with the Go client, what the transport and Crossplane's own codec cost alone.
 */
export async function goFloorServer(
  response: Uint8Array,
  tlsCertsDir?: string,
): Promise<FloorServer> {
  const bin = await goClientBinary();
  const dir = mkdtempSync(join(tmpdir(), 'bench-go-'));
  const rspPath = join(dir, 'response.bin');
  writeFileSync(rspPath, frames([response]));
  const tls = tlsCertsDir !== undefined ? ['-tls-certs-dir', tlsCertsDir] : [];
  const child: ChildProcess = spawn(bin, ['serve', '-response', rspPath, ...tls], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const address = await new Promise<string>((resolve, reject) => {
    if (!child.stdout) throw new Error('no stdout');
    const lines = createInterface({ input: child.stdout });
    lines.once('line', (line) => {
      resolve((JSON.parse(line) as { listening: string }).listening);
    });
    child.once('exit', (code) => {
      reject(new Error(`Go floor server exited with ${String(code)}`));
    });
  });
  return {
    address,
    stop: () =>
      new Promise((resolve) => {
        child.once('exit', () => {
          rmSync(dir, { recursive: true, force: true });
          resolve();
        });
        // It stops when its stdin closes.
        child.stdin?.end();
      }),
  };
}

export interface Certs {
  /** tls.crt, tls.key, ca.crt of the server (valid for 127.0.0.1). */
  server: string;
  /** tls.crt, tls.key, ca.crt of the client, as Crossplane's --tls-client-certs-dir. */
  client: string;
}

/** A throwaway CA with a server and a client certificate, under `dir`. */
export async function goCerts(dir: string): Promise<Certs> {
  const bin = await goClientBinary();
  await promisify(execFile)(bin, ['certs', '-out', dir]);
  return { server: join(dir, 'server'), client: join(dir, 'client') };
}
