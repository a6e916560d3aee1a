// Whether the holder of the volume lock is provably gone, so its lock can be taken over at
// once instead of after the stale timeout (a SIGKILLed fetch never releases it). Proof is
// either local (the holder ran on this host, in this pid namespace, and its process is
// dead) or from the API server (the pod named by the holder's host name does not exist,
// or has finished). Anything else, an API error or a
// refusal included, proves nothing: the heartbeat's staleness decides as before.
import { readlinkSync } from 'node:fs';
import { hostname } from 'node:os';

import type { Logger } from 'pino';

import { kubeRequest, type KubeConnection } from './reporter.js';

/** This process's pid namespace (Linux), e.g. `pid:[4026531836]`; undefined elsewhere. */
export const PID_NAMESPACE: string | undefined = (() => {
  try {
    return readlinkSync('/proc/self/ns/pid');
  } catch {
    return undefined;
  }
})();

/** What the lock records of its holder. */
export interface LockHolder {
  host: string;
  pid: number;
  pidNamespace?: string;
  /** When it took the lock (ISO 8601). */
  startedAt: string;
}

export type HolderGone = (holder: LockHolder) => Promise<boolean>;

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists, as someone else's.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** When this process started, on this host's clock. */
const PROCESS_START = Date.now() - process.uptime() * 1000;

/**
 * The holder ran on this host, in this pid namespace (a pod sharing the node's host name
 * has pids of its own), and its process is dead, or it had this very pid and took the
 * lock before this process started (the host rebooted).
 */
export function localHolderGone(holder: LockHolder): boolean {
  if (
    holder.host !== hostname() ||
    PID_NAMESPACE === undefined ||
    holder.pidNamespace !== PID_NAMESPACE ||
    !Number.isInteger(holder.pid) ||
    holder.pid <= 0
  ) {
    return false;
  }
  if (holder.pid !== process.pid) return !processAlive(holder.pid);
  const took = Date.parse(holder.startedAt);
  return Number.isFinite(took) && took < PROCESS_START;
}

function notFoundIsThePod(body: string, name: string): boolean {
  try {
    const status = JSON.parse(body) as {
      reason?: unknown;
      details?: { kind?: unknown; name?: unknown };
    };
    return (
      status.reason === 'NotFound' &&
      status.details?.kind === 'pods' &&
      status.details.name === name
    );
  } catch {
    return false;
  }
}

/** Phases of a pod whose containers will never run again. */
const FINISHED = new Set(['Succeeded', 'Failed']);

export interface PodLookupOptions extends KubeConnection {
  namespace: string;
  log: Logger;
}

/**
 * The pod check, through the API server with the pod's service account (RBAC: `get` on
 * `pods` in the namespace). A pod's host name is its name, which the lock records.
 */
export function podHolderGone(opts: PodLookupOptions): HolderGone {
  return async (holder) => {
    if (localHolderGone(holder)) return true;
    if (holder.host === hostname()) return false;
    const path = `/api/v1/namespaces/${encodeURIComponent(opts.namespace)}/pods/${encodeURIComponent(holder.host)}`;
    try {
      const res = await kubeRequest(opts, 'GET', path);
      // Only a NotFound about this very pod: a 404 for the path itself (an API server or
      // proxy that does not serve pods) proves nothing.
      if (res.status === 404) return notFoundIsThePod(res.body, holder.host);
      if (res.status !== 200) {
        opts.log.debug({ status: res.status, pod: holder.host }, 'cannot look up the lock holder');
        return false;
      }
      const phase = (JSON.parse(res.body) as { status?: { phase?: unknown } }).status?.phase;
      return typeof phase === 'string' && FINISHED.has(phase);
    } catch (err) {
      opts.log.debug(
        { err: err instanceof Error ? err.message : String(err), pod: holder.host },
        'cannot look up the lock holder',
      );
      return false;
    }
  };
}
