// The harness runs inside a private network namespace holding only loopback: it re-executes
// itself under `unshare -n` (lo brought up first), so every process it starts inherits a
// network with no route anywhere but 127.0.0.0/8 (DNS included).
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';

export const IN_NETNS = 'MODELCACHE_E2E_NETNS';

/** Re-runs `argv` inside a fresh network namespace; returns its exit status. */
export function reexecInPrivateNetwork(argv: string[]): number {
  const res = spawnSync(
    'unshare',
    ['--net', '--', 'sh', '-c', 'ip link set lo up && exec "$@"', 'sh', ...argv],
    { stdio: 'inherit', env: { ...process.env, [IN_NETNS]: '1' } },
  );
  if (res.error) throw res.error;
  return res.status ?? 1;
}

/**
 * Proves the namespace is sealed before anything starts: only `lo` exists, and a connection to
 * an outside address fails at once (no route) instead of reaching anything.
 */
export async function assertSealed(): Promise<void> {
  // /proc/net is the reading task's namespace (sysfs would show the one it was mounted in).
  const links = readFileSync('/proc/net/dev', 'utf8')
    .split('\n')
    .slice(2)
    .map((l) => l.split(':')[0]?.trim() ?? '')
    .filter((l) => l !== '')
    .sort();
  if (links.join(',') !== 'lo') {
    throw new Error(`the e2e network namespace has interfaces ${links.join(', ')}; want only lo`);
  }
  const outcome = await new Promise<string>((resolve) => {
    const s = connect({ host: '192.0.2.1', port: 443, timeout: 3000 });
    s.on('connect', () => {
      s.destroy();
      resolve('connected');
    });
    s.on('timeout', () => {
      s.destroy();
      resolve('timeout');
    });
    s.on('error', (err: NodeJS.ErrnoException) => {
      resolve(err.code ?? 'error');
    });
  });
  if (outcome !== 'ENETUNREACH') {
    throw new Error(
      `a connection to 192.0.2.1 from the e2e namespace ended in ${outcome}; want ENETUNREACH`,
    );
  }
}
