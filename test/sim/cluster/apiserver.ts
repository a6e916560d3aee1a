// The part of a workload cluster's API server the fetch program uses, over real HTTPS on
// loopback: GET and PATCH (application/merge-patch+json) of a Job, authenticated with the
// pod's projected service-account token and authorized by RBAC (Role/RoleBinding in the
// Job's namespace), with Kubernetes' status codes and messages. The program's in-cluster
// reporter finds it through KUBERNETES_SERVICE_HOST/PORT and the service-account mount
// (function/fetch/reporter.ts reporterFromEnv), which the simulated kubelet provides.
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';

import { generate } from 'selfsigned';

import { isObj, type Json } from '../core/json.js';
import { isApiError, type KObject, type Store } from '../core/store.js';

export interface TokenInfo {
  namespace: string;
  serviceAccount: string;
  /** uid of the ServiceAccount the token was issued for: a recreated account invalidates it. */
  saUid: string;
  pod: string;
}

let certs: Promise<{ cert: string; key: string }> | undefined;

/** One self-signed serving certificate for 127.0.0.1, shared by every simulated API server. */
export function servingCert(): Promise<{ cert: string; key: string }> {
  certs ??= generate([{ name: 'commonName', value: 'kubernetes' }], {
    keyType: 'ec',
    algorithm: 'sha256',
    extensions: [
      { name: 'basicConstraints', cA: true },
      { name: 'subjectAltName', altNames: [{ type: 7, ip: '127.0.0.1' }] },
    ],
  }).then((c) => ({ cert: c.cert, key: c.private }));
  return certs;
}

export interface ApiRequestLog {
  method: string;
  path: string;
  status: number;
  user: string;
}

export class ApiServer {
  private server: Server | undefined;
  port = 0;
  readonly tokens = new Map<string, TokenInfo>();
  readonly requests: ApiRequestLog[] = [];

  constructor(
    private readonly store: Store,
    /** Called after a successful write (the workload controllers react in virtual time). */
    private readonly onWrite: () => void,
  ) {}

  async start(): Promise<void> {
    const { cert, key } = await servingCert();
    const server = createServer({ cert, key }, (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const out = this.handle(
          req.method ?? 'GET',
          req.url ?? '/',
          req.headers.authorization,
          req.headers['content-type'],
          Buffer.concat(chunks).toString('utf8'),
        );
        const body = JSON.stringify(out.body);
        res.writeHead(out.status, {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
        });
        res.end(body);
      });
    });
    this.server = server;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    this.port = (server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    const s = this.server;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => {
      s.close(() => {
        resolve();
      });
    });
  }

  private status(code: number, reason: string, message: string): { status: number; body: Json } {
    return {
      status: code,
      body: {
        kind: 'Status',
        apiVersion: 'v1',
        metadata: {},
        status: 'Failure',
        message,
        reason,
        code,
      },
    };
  }

  private authorized(user: TokenInfo, verb: string, namespace: string, name: string): boolean {
    const bindings = this.store.list('rbac.authorization.k8s.io/v1', 'RoleBinding', { namespace });
    for (const b of bindings) {
      const subjects = Array.isArray(b['subjects']) ? b['subjects'] : [];
      const bound = subjects.some(
        (s) =>
          isObj(s) &&
          s['kind'] === 'ServiceAccount' &&
          s['name'] === user.serviceAccount &&
          (s['namespace'] ?? namespace) === user.namespace,
      );
      const roleRef = isObj(b['roleRef']) ? b['roleRef'] : {};
      if (!bound || roleRef['kind'] !== 'Role') continue;
      const role = this.store.get({
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'Role',
        name: String(roleRef['name']),
        namespace,
      });
      const rules = Array.isArray(role?.['rules']) ? role['rules'] : [];
      for (const r of rules) {
        if (!isObj(r)) continue;
        const has = (field: string, v: string): boolean => {
          const list = r[field];
          return Array.isArray(list) && (list.includes(v) || list.includes('*'));
        };
        const names = r['resourceNames'];
        const nameOk = !Array.isArray(names) || names.length === 0 || names.includes(name);
        if (has('apiGroups', 'batch') && has('resources', 'jobs') && has('verbs', verb) && nameOk) {
          return true;
        }
      }
    }
    return false;
  }

  handle(
    method: string,
    url: string,
    authorization: string | undefined,
    contentType: string | undefined,
    body: string,
  ): { status: number; body: unknown } {
    const log = (status: number, user = 'system:anonymous'): void => {
      this.requests.push({ method, path: url, status, user });
    };
    const token =
      authorization?.startsWith('Bearer ') === true ? authorization.slice(7).trim() : '';
    const user = this.tokens.get(token);
    const sa = user
      ? this.store.get({
          apiVersion: 'v1',
          kind: 'ServiceAccount',
          name: user.serviceAccount,
          namespace: user.namespace,
        })
      : undefined;
    const pod = user
      ? this.store.get({ apiVersion: 'v1', kind: 'Pod', name: user.pod, namespace: user.namespace })
      : undefined;
    // A bound token is valid while its ServiceAccount (same uid) and its pod exist.
    if (!user || !sa || sa.metadata.uid !== user.saUid || !pod) {
      log(401);
      return this.status(401, 'Unauthorized', 'Unauthorized');
    }
    const who = `system:serviceaccount:${user.namespace}:${user.serviceAccount}`;
    const m = /^\/apis\/batch\/v1\/namespaces\/([^/]+)\/jobs\/([^/?]+)/.exec(url);
    if (!m) {
      log(404, who);
      return this.status(404, 'NotFound', 'the server could not find the requested resource');
    }
    const namespace = decodeURIComponent(m[1] ?? '');
    const name = decodeURIComponent(m[2] ?? '');
    const verb = method === 'GET' ? 'get' : method === 'PATCH' ? 'patch' : method.toLowerCase();
    if (!this.authorized(user, verb, namespace, name)) {
      log(403, who);
      return this.status(
        403,
        'Forbidden',
        `jobs.batch "${name}" is forbidden: User "${who}" cannot ${verb} resource "jobs" in API group "batch" in the namespace "${namespace}"`,
      );
    }
    const ref = { apiVersion: 'batch/v1', kind: 'Job', name, namespace };
    if (method === 'GET') {
      const job = this.store.get(ref);
      log(job ? 200 : 404, who);
      return job
        ? { status: 200, body: job }
        : this.status(404, 'NotFound', `jobs.batch "${name}" not found`);
    }
    if (method !== 'PATCH') {
      log(405, who);
      return this.status(405, 'MethodNotAllowed', `method ${method} is not allowed`);
    }
    if (contentType?.split(';')[0]?.trim() !== 'application/merge-patch+json') {
      log(415, who);
      return this.status(
        415,
        'UnsupportedMediaType',
        `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml`,
      );
    }
    let patch: unknown;
    try {
      patch = JSON.parse(body);
    } catch {
      log(400, who);
      return this.status(400, 'BadRequest', 'invalid JSON in the request body');
    }
    if (!isObj(patch)) {
      log(400, who);
      return this.status(400, 'BadRequest', 'the patch must be a JSON object');
    }
    try {
      const updated: KObject = this.store.mergePatch(ref, patch, 'modelcache-fetch');
      log(200, who);
      this.onWrite();
      return { status: 200, body: updated };
    } catch (err) {
      if (isApiError(err, 'NotFound')) {
        log(404, who);
        return this.status(404, 'NotFound', `jobs.batch "${name}" not found`);
      }
      log(422, who);
      return this.status(422, 'Invalid', err instanceof Error ? err.message : String(err));
    }
  }
}
