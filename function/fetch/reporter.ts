// Progress and results where the Function can read them: annotations on the fetch Job itself.
import { readFile } from 'node:fs/promises';
import { request } from 'node:https';

import {
  ANNOTATION_BYTES_DONE,
  ANNOTATION_BYTES_TOTAL,
  ANNOTATION_FETCH_ERROR,
  ANNOTATION_RESOLVED_REVISION,
} from '../contract/job.js';
import type { Logger } from 'pino';

export interface Report {
  bytesDone?: number;
  bytesTotal?: number;
  resolvedRevision?: string;
  /** A string sets the error line; null removes a previous attempt's. */
  fetchError?: string | null;
}

export interface Reporter {
  /** Record `report`; sent at most once per interval unless `force`. Never throws. */
  report(report: Report, force?: boolean): void;
  /** Send whatever is pending and wait for it (best-effort, bounded). */
  flush(): Promise<void>;
}

/** Outside a cluster: progress is in the logs already. */
export const noopReporter: Reporter = {
  report: () => undefined,
  flush: () => Promise.resolve(),
};

export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** How the program reaches the API server from its pod. */
export interface KubeConnection {
  host: string;
  port: number;
  /** Re-read before every request: projected tokens rotate. */
  tokenPath: string;
  caPath: string;
  timeoutMs: number;
}

export interface KubeReporterOptions extends KubeConnection {
  namespace: string;
  jobName: string;
  intervalMs: number;
  log: Logger;
}

/** The connection to the API server when the pod can reach it, else undefined. */
export function kubeConnectionFromEnv(
  env: NodeJS.ProcessEnv,
  dir = SERVICE_ACCOUNT_DIR,
): KubeConnection | undefined {
  const host = env['KUBERNETES_SERVICE_HOST'];
  const port = Number(env['KUBERNETES_SERVICE_PORT'] ?? '443');
  if (host === undefined || host === '' || !Number.isInteger(port)) return undefined;
  return { host, port, tokenPath: `${dir}/token`, caPath: `${dir}/ca.crt`, timeoutMs: 10_000 };
}

/** One request to the API server with the service account's token; the body as text. */
export async function kubeRequest(
  conn: KubeConnection,
  method: 'GET' | 'PATCH',
  path: string,
  patch?: unknown,
): Promise<{ status: number; body: string }> {
  const [token, ca] = await Promise.all([readFile(conn.tokenPath, 'utf8'), readFile(conn.caPath)]);
  const payload = patch === undefined ? undefined : JSON.stringify(patch);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: conn.host,
        port: conn.port,
        method,
        path,
        ca,
        headers: {
          authorization: `Bearer ${token.trim()}`,
          accept: 'application/json',
          ...(payload !== undefined
            ? {
                'content-type': 'application/merge-patch+json',
                'content-length': Buffer.byteLength(payload),
              }
            : {}),
        },
        timeout: conn.timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} timed out`)));
    req.on('error', reject);
    req.end(payload);
  });
}

/** Annotations as a JSON merge patch: strings set a key, null removes it. */
export function annotationsPatch(r: Report): {
  metadata: { annotations: Record<string, string | null> };
} {
  const a: Record<string, string | null> = {};
  if (r.bytesDone !== undefined) a[ANNOTATION_BYTES_DONE] = String(r.bytesDone);
  if (r.bytesTotal !== undefined) a[ANNOTATION_BYTES_TOTAL] = String(r.bytesTotal);
  if (r.resolvedRevision !== undefined) a[ANNOTATION_RESOLVED_REVISION] = r.resolvedRevision;
  if (r.fetchError !== undefined) a[ANNOTATION_FETCH_ERROR] = r.fetchError;
  return { metadata: { annotations: a } };
}

/**
 * Patches the program's own Job through the API server with the pod's service account
 * (RBAC: `patch` on `jobs.batch`, that one name, that namespace). Throttled: at most one
 * PATCH per interval, the latest values win; a failed PATCH is logged and dropped.
 */
export class KubeReporter implements Reporter {
  private pending: Report = {};
  private hasPending = false;
  private lastSent = 0;
  private inFlight: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly opts: KubeReporterOptions) {}

  report(report: Report, force = false): void {
    // A failure is the final word: progress still waiting for its turn is moot and dropped, so
    // the last PATCH carries the error alone whatever the timing.
    this.pending =
      typeof report.fetchError === 'string' ? { ...report } : { ...this.pending, ...report };
    this.hasPending = true;
    const due = this.lastSent + this.opts.intervalMs - Date.now();
    if (force || due <= 0) this.kick();
    else if (this.timer === undefined) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.kick();
      }, due);
      this.timer.unref();
    }
  }

  async flush(): Promise<void> {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    await this.inFlight;
    if (this.hasPending) {
      this.kick();
      await this.inFlight;
    }
  }

  private kick(): void {
    if (this.inFlight !== undefined || !this.hasPending) return;
    const body = annotationsPatch(this.pending);
    this.pending = {};
    this.hasPending = false;
    this.lastSent = Date.now();
    this.inFlight = this.patch(body)
      .catch((err: unknown) => {
        this.opts.log.warn(
          { err: err instanceof Error ? err.message : String(err) },
          'could not patch progress onto the Job (best-effort, continuing)',
        );
      })
      .finally(() => {
        this.inFlight = undefined;
        if (this.hasPending && this.timer === undefined) this.report({});
      });
  }

  private async patch(body: unknown): Promise<void> {
    const { namespace, jobName } = this.opts;
    const path = `/apis/batch/v1/namespaces/${encodeURIComponent(namespace)}/jobs/${encodeURIComponent(jobName)}`;
    const res = await kubeRequest(this.opts, 'PATCH', path, body);
    if (res.status < 200 || res.status >= 300) {
      throw new Error(`PATCH job ${namespace}/${jobName}: HTTP ${res.status}`);
    }
  }
}

/** The in-cluster reporter when the API server is reachable from the pod, else the no-op. */
export function reporterFromEnv(
  env: NodeJS.ProcessEnv,
  target: { namespace: string; jobName: string },
  log: Logger,
  dir = SERVICE_ACCOUNT_DIR,
): Reporter {
  const conn = kubeConnectionFromEnv(env, dir);
  if (conn === undefined) return noopReporter;
  return new KubeReporter({ ...conn, ...target, intervalMs: 5_000, log });
}
