// The Python tools the fetch tests run against (pinned, installed by test/fetch/tools.sh into
// .cache/fetch-venv): `hf` from huggingface_hub and `moto_server` from moto[server].
// A missing tool fails the test with the command that installs it; it never skips.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const FETCH_VENV =
  process.env['MODELCACHE_FETCH_VENV'] ?? join(ROOT, '.cache', 'fetch-venv');

export function pythonTool(name: 'hf' | 'moto_server'): string {
  const path = join(FETCH_VENV, 'bin', name);
  if (!existsSync(path)) {
    throw new Error(
      `${path} is missing: the fetch tests need huggingface_hub and moto[server] from PyPI. ` +
        'Run `bash test/fetch/tools.sh venv` to install them.',
    );
  }
  return path;
}

export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address() as AddressInfo;
  await new Promise<void>((resolve) =>
    srv.close(() => {
      resolve();
    }),
  );
  return port;
}

export interface Moto {
  endpoint: string;
  stop(): Promise<void>;
}

/** A real S3-compatible server (moto's) on loopback, up when this resolves. */
export async function startMoto(): Promise<Moto> {
  const bin = pythonTool('moto_server');
  for (let tries = 0; ; tries++) {
    const port = await freePort();
    const child: ChildProcess = spawn(bin, ['-H', '127.0.0.1', '-p', String(port)], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, PYTHONUNBUFFERED: '1' },
    });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const endpoint = `http://127.0.0.1:${port}`;
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline && child.exitCode === null) {
      try {
        const res = await fetch(`${endpoint}/moto-api/`);
        await res.body?.cancel();
        return {
          endpoint,
          stop: async () => {
            if (child.exitCode !== null) return;
            const exited = new Promise((r) => child.once('exit', r));
            child.kill('SIGTERM');
            await exited;
          },
        };
      } catch {
        await sleep(100);
      }
    }
    child.kill('SIGKILL');
    if (tries >= 2)
      throw new Error(`moto_server did not start on ${endpoint}: ${stderr.slice(-2000)}`);
  }
}
