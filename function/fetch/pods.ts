// Whether the holder of the volume lock is provably gone, so its lock can be taken over at
// once instead of after the stale timeout (a SIGKILLed fetch never releases it). Proof is
// local (the holder ran on this host, in this pid namespace, and its process is dead), or
// from the Job (the holder was an earlier pod of this very Job, whose controller starts a
// pod only once the one before it has failed), or from the API server (the pod named by
// the holder's host name does not exist, or has finished). Anything else, an API error or
// a refusal included, proves nothing: the heartbeat's staleness decides as before.
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

/**
 * The API server names a Job's pods from the generateName `<job>-`, cut to this many
 * characters, plus 5 random ones (apimachinery's SimpleNameGenerator).
 */
const GENERATED_PREFIX_MAX = 58;
const GENERATED_SUFFIX = /^[a-z0-9]{5}$/;

/**
 * Whether a pod (host) name is one the API server generated for a pod of this Job. A Job
 * name too long for the prefix proves nothing: cut, it may be another Job's (the Job of the
 * cache's previous identity differs only in its last characters).
 */
export function isPodOfJob(host: string, jobName: string): boolean {
  const prefix = `${jobName}-`;
  return (
    prefix.length <= GENERATED_PREFIX_MAX &&
    host.startsWith(prefix) &&
    GENERATED_SUFFIX.test(host.slice(prefix.length))
  );
}

/**
 * What makes "an earlier pod of my Job" proof that it stopped: the Job replaces a pod only
 * once it has Failed (not while it is still terminating) and runs one pod at a time. A
 * cluster that does not know `podReplacementPolicy` drops the field, so the Job is read
 * back rather than trusted to be as composed. (A pod force-deleted while its node still runs
 * it breaks this, as it breaks every at-most-one promise Kubernetes makes.)
 */
export function replacesOnlyFailedPods(job: unknown): boolean {
  const spec = (job as { spec?: { podReplacementPolicy?: unknown; parallelism?: unknown } } | null)
    ?.spec;
  return spec?.podReplacementPolicy === 'Failed' && (spec.parallelism ?? 1) === 1;
}

export interface PodLookupOptions extends KubeConnection {
  namespace: string;
  /** The Job this pod runs for (the plan's report target). */
  jobName: string;
  /** This pod's name; the host name in a pod. */
  self?: string;
  log: Logger;
}

/**
 * The checks through the API server with the pod's service account: its own Job (`get`,
 * which its Role allows for that Job alone), then the holder's pod (`get` on `pods`, which
 * it does not grant by default: a refusal proves nothing). A pod's host name is its name,
 * which the lock records.
 */
export function podHolderGone(opts: PodLookupOptions): HolderGone {
  const self = opts.self ?? hostname();
  let jobVerdict: Promise<boolean> | undefined;
  const jobReplacesOnlyFailed = (): Promise<boolean> => {
    jobVerdict ??= (async () => {
      const path = `/apis/batch/v1/namespaces/${encodeURIComponent(opts.namespace)}/jobs/${encodeURIComponent(opts.jobName)}`;
      const res = await kubeRequest(opts, 'GET', path);
      if (res.status !== 200) throw new Error(`GET job: HTTP ${res.status}`);
      return replacesOnlyFailedPods(JSON.parse(res.body));
    })().catch((err: unknown) => {
      // Asked again at the next poll: an error is not an answer.
      jobVerdict = undefined;
      opts.log.debug(
        { err: err instanceof Error ? err.message : String(err), job: opts.jobName },
        'cannot read the Job',
      );
      return false;
    });
    return jobVerdict;
  };
  return async (holder) => {
    if (localHolderGone(holder)) return true;
    if (holder.host === self) return false;
    if (
      isPodOfJob(self, opts.jobName) &&
      isPodOfJob(holder.host, opts.jobName) &&
      (await jobReplacesOnlyFailed())
    ) {
      return true;
    }
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
