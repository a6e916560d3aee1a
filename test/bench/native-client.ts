// Latency over gRPC as a native client sees it: runs native_client.py (grpcio, whose transport is
// C) in a venv of its own. Crossplane's client is Go's gRPC; a grpc-js client in Node spends
// ~3 ms and GC pauses of its own per 1.4 MB request on this machine (measured with a no-op
// server), which would be charged to whichever server it calls.
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const VENV = join(ROOT, '.cache', 'bench-venv');
const DRIVER = join(ROOT, 'test', 'bench', 'native_client.py');
/** Pinned so figures from different days come from the same client. */
export const GRPCIO_VERSION = '1.84.0';

const run = promisify(execFile);

/** The venv's python, created and filled from PyPI when missing. */
export async function nativeClientPython(): Promise<string> {
  const python = join(VENV, 'bin', 'python');
  if (!existsSync(python)) await run('python3', ['-m', 'venv', VENV]);
  try {
    await run(python, ['-c', `import grpc; assert grpc.__version__ == "${GRPCIO_VERSION}"`]);
  } catch {
    await run(python, ['-m', 'pip', 'install', '--quiet', `grpcio==${GRPCIO_VERSION}`], {
      maxBuffer: 16 * 2 ** 20,
    });
  }
  return python;
}

/**
 * Wall time in ms of each call after `warmup` of `warmup + iterations` calls to the server at
 * `address`, call i sending requests[i % length], from a native client process of its own.
 */
export async function nativeLatencies(
  address: string,
  requests: Buffer[],
  warmup: number,
  iterations: number,
): Promise<number[]> {
  const python = await nativeClientPython();
  const dir = mkdtempSync(join(tmpdir(), 'bench-requests-'));
  try {
    const job = {
      address,
      warmup,
      iterations,
      requests: requests.map((bytes, i) => {
        const path = join(dir, `${String(i)}.bin`);
        writeFileSync(path, bytes);
        return path;
      }),
    };
    const child = spawn(python, [DRIVER], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString('utf8')));
    child.stderr.on('data', (d: Buffer) => (err += d.toString('utf8')));
    child.stdin.end(JSON.stringify(job));
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    if (code !== 0) throw new Error(`native client exited ${String(code)}: ${err.slice(-2000)}`);
    return JSON.parse(out) as number[];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
