// A small Kubernetes REST client (client-certificate auth over loopback HTTPS) for the harness
// and the stand-in kubelet, plus kubectl for what only kubectl does well (apply of manifests,
// with discovery of plural names).
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { promisify } from 'node:util';

const run = promisify(execFile);

export type Json = Record<string, unknown>;

export interface ClusterAccess {
  /** Short name used in logs: "cp", "wl-1", ... */
  name: string;
  server: string;
  kubeconfig: string;
  caFile: string;
  certFile: string;
  keyFile: string;
}

export class KubeError extends Error {
  constructor(
    readonly status: number,
    readonly body: string,
    what: string,
    /** Set when the server asked for a retry (see retryDelayMs). */
    readonly retryAfterMs?: number,
  ) {
    super(`${what}: HTTP ${status}: ${body.slice(0, 400)}`);
  }
}

/** How many times a request the API server asked to retry is sent again (client-go's default). */
export const MAX_RETRIES = 10;

/**
 * The wait the API server asked for before a retry, in ms, or undefined when the answer is final.
 * As client-go does: a 429 or 5xx that carries Retry-After is retried. A new CRD's list answers
 * 429 "storage is (re)initializing" until its watch cache is ready, which on a loaded machine
 * outlasts the CRD's Established condition.
 */
export function retryDelayMs(status: number, retryAfter: string | undefined): number | undefined {
  if (status !== 429 && status < 500) return undefined;
  if (retryAfter === undefined) return undefined;
  const seconds = Number.parseInt(retryAfter, 10);
  if (!Number.isFinite(seconds) || seconds < 0) return undefined;
  return Math.min(Math.max(seconds, 1), 10) * 1000;
}

export class Kube {
  private readonly agent: Agent;

  constructor(
    readonly access: ClusterAccess,
    private readonly kubectlBin: string,
  ) {
    this.agent = new Agent({
      ca: readFileSync(access.caFile),
      cert: readFileSync(access.certFile),
      key: readFileSync(access.keyFile),
      keepAlive: true,
      maxSockets: 8,
    });
  }

  async request(
    method: string,
    path: string,
    body?: unknown,
    contentType = 'application/json',
  ): Promise<Json> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.once(method, path, body, contentType);
      } catch (err) {
        const wait = err instanceof KubeError ? err.retryAfterMs : undefined;
        if (wait === undefined || attempt >= MAX_RETRIES) throw err;
        await new Promise((r) => setTimeout(r, wait));
      }
    }
  }

  private once(method: string, path: string, body: unknown, contentType: string): Promise<Json> {
    const url = new URL(path, this.access.server);
    const payload = body === undefined ? undefined : JSON.stringify(body);
    return new Promise<Json>((resolve, reject) => {
      const req = request(
        url,
        {
          method,
          agent: this.agent,
          headers: {
            accept: 'application/json',
            ...(payload !== undefined
              ? { 'content-type': contentType, 'content-length': Buffer.byteLength(payload) }
              : {}),
          },
          timeout: 30_000,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            const status = res.statusCode ?? 0;
            if (status < 200 || status >= 300) {
              const retryAfter: string | string[] | undefined = res.headers['retry-after'];
              reject(
                new KubeError(
                  status,
                  text,
                  `${this.access.name} ${method} ${path}`,
                  retryDelayMs(
                    status,
                    typeof retryAfter === 'string' ? retryAfter : retryAfter?.[0],
                  ),
                ),
              );
              return;
            }
            // Health endpoints (/readyz) answer plain text.
            const json = (res.headers['content-type'] ?? '').includes('json');
            resolve(text === '' ? {} : json ? (JSON.parse(text) as Json) : { text });
          });
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`${method} ${path}: timed out`)));
      req.on('error', reject);
      if (payload !== undefined) req.write(payload);
      req.end();
    });
  }

  get(path: string): Promise<Json> {
    return this.request('GET', path);
  }

  /** The object, or undefined when the API answers 404. */
  async getOrUndefined(path: string): Promise<Json | undefined> {
    try {
      return await this.get(path);
    } catch (err) {
      if (err instanceof KubeError && err.status === 404) return undefined;
      throw err;
    }
  }

  async list(path: string): Promise<Json[]> {
    const res = await this.get(path);
    return (res['items'] as Json[] | undefined) ?? [];
  }

  post(path: string, body: unknown): Promise<Json> {
    return this.request('POST', path, body);
  }

  mergePatch(path: string, body: unknown): Promise<Json> {
    return this.request('PATCH', path, body, 'application/merge-patch+json');
  }

  async delete(path: string, body?: unknown): Promise<void> {
    try {
      await this.request('DELETE', path, body);
    } catch (err) {
      if (err instanceof KubeError && err.status === 404) return;
      throw err;
    }
  }

  /**
   * Streams watch events of a collection (`?watch=1`) until `stop()` is called; each event's type
   * and object go to `onEvent`. Reconnects from the last resourceVersion when the server ends it.
   */
  watch(path: string, onEvent: (type: string, o: Json) => void): { stop: () => void } {
    let stopped = false;
    let rv = '';
    let current: ReturnType<typeof request> | undefined;
    const connect = (): void => {
      if (stopped) return;
      const url = new URL(path, this.access.server);
      url.searchParams.set('watch', '1');
      url.searchParams.set('allowWatchBookmarks', 'false');
      if (rv) url.searchParams.set('resourceVersion', rv);
      const req = request(url, { method: 'GET', agent: this.agent }, (res) => {
        let buf = '';
        res.on('data', (c: Buffer) => {
          buf += c.toString('utf8');
          let nl = buf.indexOf('\n');
          while (nl >= 0) {
            const line = buf.slice(0, nl);
            buf = buf.slice(nl + 1);
            nl = buf.indexOf('\n');
            if (!line.trim()) continue;
            const ev = JSON.parse(line) as { type: string; object: Json };
            const meta = ev.object['metadata'] as Json | undefined;
            if (typeof meta?.['resourceVersion'] === 'string') rv = meta['resourceVersion'];
            if (ev.type !== 'ERROR') onEvent(ev.type, ev.object);
            else rv = '';
          }
        });
        res.on('end', () => {
          setTimeout(connect, 200).unref();
        });
        res.on('error', () => undefined);
      });
      req.on('error', () => {
        if (!stopped) setTimeout(connect, 1000).unref();
      });
      req.end();
      current = req;
    };
    connect();
    return {
      stop: () => {
        stopped = true;
        current?.destroy();
      },
    };
  }

  /** kubectl against this cluster; stdout, or a thrown error carrying stderr. */
  async kubectl(args: string[], input?: string): Promise<string> {
    const full = ['--kubeconfig', this.access.kubeconfig, ...args];
    if (input === undefined) {
      const { stdout } = await run(this.kubectlBin, full, { maxBuffer: 64 << 20 });
      return stdout;
    }
    return new Promise<string>((resolve, reject) => {
      const child = execFile(
        this.kubectlBin,
        full,
        { maxBuffer: 64 << 20 },
        (err, stdout, stderr) => {
          if (err) reject(new Error(`kubectl ${args.join(' ')}: ${stderr || err.message}`));
          else resolve(stdout);
        },
      );
      child.stdin?.end(input);
    });
  }

  /** Server-side apply of a YAML/JSON stream (force: the harness owns what it applies). */
  apply(yaml: string): Promise<string> {
    return this.kubectl(
      ['apply', '--server-side', '--force-conflicts', '--field-manager=e2e', '-f', '-'],
      yaml,
    );
  }

  close(): void {
    this.agent.destroy();
  }
}

/** A kubeconfig for the admin client certificate (system:masters) against `server`. */
export function kubeconfigYaml(server: string, ca: string, cert: string, key: string): string {
  const b64 = (f: string): string => readFileSync(f).toString('base64');
  return [
    'apiVersion: v1',
    'kind: Config',
    `clusters: [{name: c, cluster: {server: "${server}", certificate-authority-data: ${b64(ca)}}}]`,
    `users: [{name: admin, user: {client-certificate-data: ${b64(cert)}, client-key-data: ${b64(key)}}}]`,
    'contexts: [{name: c, context: {cluster: c, user: admin}}]',
    'current-context: c',
    '',
  ].join('\n');
}
